package ldif

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"cafgate/directory"
)

// Directory is a practitioner directory loaded once from an LDIF file. It is safe for concurrent use;
// nothing changes after Open.
type Directory struct {
	name    string
	domains []string          // lower case
	byMail  map[string][]*rec // lower-case mail -> entries holding it
	dummy   string            // {SSHA} of a random password, checked when there is no entry to check
}

// rec is one entry with a mail address.
type rec struct {
	p         directory.Practitioner
	passwords []string // userPassword values
}

var _ directory.Directory = (*Directory)(nil)

// Open loads the LDIF file at path as the directory called name, answering for the mail domains
// listed. Every entry with a mail attribute is a practitioner; entries without one (the base, ou=people)
// are skipped. A syntax error, a value the cafgate schema does not allow, or a mail address outside
// domains is an error naming the entry.
func Open(path, name string, domains []string) (*Directory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", name, err)
	}
	entries, err := Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("directory %s: %s: %w", name, path, err)
	}
	d, err := New(entries, name, domains)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %s: %w", name, path, err)
	}
	return d, nil
}

// New is Open for entries already parsed.
func New(entries []Entry, name string, domains []string) (*Directory, error) {
	d := &Directory{name: name, byMail: map[string][]*rec{}, dummy: HashSSHA(randomPassword())}
	for _, dom := range domains {
		d.domains = append(d.domains, strings.ToLower(strings.TrimSpace(dom)))
	}
	if len(d.domains) == 0 {
		return nil, fmt.Errorf("no mail domains given for directory %q", name)
	}
	for _, e := range entries {
		if err := d.add(e); err != nil {
			return nil, fmt.Errorf("entry %s: %w", quoteDN(e.DN), err)
		}
	}
	return d, nil
}

func (d *Directory) add(e Entry) error {
	mails := e.Get(attrMail)
	if len(mails) == 0 {
		return nil
	}
	p, err := toPractitioner(e)
	if err != nil {
		return err
	}
	p.Directory = d.name
	r := &rec{p: p}
	for _, v := range e.Get(attrPassword) {
		r.passwords = append(r.passwords, string(v))
	}
	var seen []string
	for _, m := range mails {
		mail := strings.ToLower(string(m))
		if !d.serves(mail) {
			return fmt.Errorf("mail %q is not in this directory's domains %v", m, d.domains)
		}
		if !slices.Contains(seen, mail) {
			seen = append(seen, mail)
			d.byMail[mail] = append(d.byMail[mail], r)
		}
	}
	return nil
}

// serves reports whether the domain of mail (lower case) is one of the directory's.
func (d *Directory) serves(mail string) bool {
	at := strings.LastIndexByte(mail, '@')
	return at > 0 && slices.Contains(d.domains, mail[at+1:])
}

// Name returns the directory's name.
func (d *Directory) Name() string { return d.name }

// Lookup returns a copy of the entry with this mail address (case-insensitive): ErrNotFound when none
// (or the domain is not this directory's), ErrAmbiguous when more than one entry holds it.
func (d *Directory) Lookup(ctx context.Context, mail string) (*directory.Practitioner, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", directory.ErrUnavailable, err)
	}
	mail = strings.ToLower(mail)
	rs := d.byMail[mail]
	switch len(rs) {
	case 0:
		return nil, fmt.Errorf("%w: directory %s", directory.ErrNotFound, d.name)
	case 1:
		return rs[0].practitioner(mail), nil
	}
	return nil, fmt.Errorf("%w: %d entries in directory %s hold this mail address", directory.ErrAmbiguous, len(rs), d.name)
}

// Authenticate checks mail and password against the entry's {SSHA} userPassword. Every refusal is
// directory.ErrBadCredentials wrapping the reason (unknown user, ambiguous entry, empty or wrong password,
// no usable userPassword), and a password is hashed in every case so that the answers take alike long.
// Vetting and the disabled flag are not checked here: the caller calls Practitioner.Standing.
func (d *Directory) Authenticate(ctx context.Context, mail, password string) (*directory.Practitioner, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", directory.ErrUnavailable, err)
	}
	mail = strings.ToLower(mail)
	rs := d.byMail[mail]
	if len(rs) != 1 || password == "" {
		checkSSHA(d.dummy, password)
		reason := "unknown user"
		switch {
		case password == "":
			reason = errEmptyPassword.Error()
		case len(rs) > 1:
			reason = "more than one entry holds this mail address"
		}
		return nil, fmt.Errorf("%w: directory %s: %s", directory.ErrBadCredentials, d.name, reason)
	}
	if err := rs[0].checkPassword(d.dummy, password); err != nil {
		return nil, fmt.Errorf("%w: directory %s: %v", directory.ErrBadCredentials, d.name, err)
	}
	return rs[0].practitioner(mail), nil
}

// checkPassword accepts password if one {SSHA} userPassword value matches it. Values in other schemes
// are never accepted.
func (r *rec) checkPassword(dummy, password string) error {
	var usable []string
	for _, v := range r.passwords {
		if len(v) >= len(sshaPrefix) && strings.EqualFold(v[:len(sshaPrefix)], sshaPrefix) {
			usable = append(usable, v)
		}
	}
	if len(usable) == 0 {
		checkSSHA(dummy, password)
		if len(r.passwords) == 0 {
			return errNoPassword
		}
		return errUnsupportedScheme
	}
	err := errWrongPassword
	for _, v := range usable {
		switch e := checkSSHA(v, password); e {
		case nil:
			return nil
		case errEmptyPassword, errMalformedHash:
			err = e
		}
	}
	return err
}

// practitioner returns a deep copy of the entry, with Mail the address it was found by.
func (r *rec) practitioner(mail string) *directory.Practitioner {
	p := r.p
	p.Mail = mail
	p.Roles = slices.Clone(r.p.Roles)
	p.Certificates = nil
	for _, c := range r.p.Certificates {
		p.Certificates = append(p.Certificates, slices.Clone(c))
	}
	return &p
}
