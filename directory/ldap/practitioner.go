package ldap

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"

	"cafgate/directory"
	"cafgate/directory/ldif"
)

// reader maps entries to practitioners for one directory.
type reader struct {
	m        Map
	groups   []*goldap.DN // parsed m.GroupRoles[i].DN
	agency   string       // fixed agency, or ""
	agencies []string     // agencies an entry may name when agency is ""
	name     string       // the directory's name
}

func newReader(m Map, agency string, agencies []string, name string) (*reader, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	r := &reader{m: m, agency: agency, agencies: agencies, name: name}
	for _, g := range m.GroupRoles {
		dn, _ := goldap.ParseDN(g.DN) // checked above
		r.groups = append(r.groups, dn)
	}
	if agency == "" && (m.Agency == "" || len(agencies) == 0) {
		return nil, fmt.Errorf("set a fixed agency, or an agency attribute and the agencies it may name")
	}
	return r, nil
}

// practitioner maps e, found by the lower-case address mail. A value the map cannot read (an unknown
// role, a malformed time, Boolean or integer, two values of a single-valued attribute, an agency the
// directory may not name, an entry that does not hold mail) is an error: the directory is not guessed at.
func (r *reader) practitioner(e *goldap.Entry, mail string) (*directory.Practitioner, error) {
	if !r.holdsMail(e, mail) {
		return nil, fmt.Errorf("the entry returned does not hold the address searched for")
	}
	p := &directory.Practitioner{DN: e.DN, Mail: mail, Directory: r.name}
	for _, a := range r.m.Name {
		if vs := values(e, a); len(vs) > 0 {
			p.Name = string(vs[0])
			break
		}
	}
	var err error
	if p.Agency, err = r.agencyOf(e); err != nil {
		return nil, err
	}
	if p.Roles, err = r.rolesOf(e); err != nil {
		return nil, err
	}
	if r.m.Certificate != "" {
		for _, c := range values(e, r.m.Certificate) {
			p.Certificates = append(p.Certificates, slices.Clone(c))
		}
	}
	if v, err := single(e, r.m.Vetting); err != nil {
		return nil, err
	} else if v != "" {
		if p.VettingValidUntil, err = ldif.ParseGeneralizedTime(v); err != nil {
			return nil, fmt.Errorf("%s: %w", r.m.Vetting, err)
		}
	}
	if p.Disabled, err = r.disabled(e); err != nil {
		return nil, err
	}
	sensitive, err := boolean(e, r.m.Sensitive)
	if err != nil {
		return nil, err
	}
	p.SensitiveService = p.SensitiveService || sensitive
	if err := r.applyGroups(e, p); err != nil {
		return nil, err
	}
	return p, nil
}

func (r *reader) holdsMail(e *goldap.Entry, mail string) bool {
	for _, a := range r.m.Mail {
		for _, v := range values(e, a) {
			if strings.EqualFold(string(v), mail) {
				return true
			}
		}
	}
	return false
}

func (r *reader) agencyOf(e *goldap.Entry) (string, error) {
	if r.agency != "" {
		return r.agency, nil
	}
	v, err := single(e, r.m.Agency)
	if err != nil {
		return "", err
	}
	for _, a := range r.agencies {
		if strings.EqualFold(a, v) {
			return a, nil
		}
	}
	if v == "" {
		return "", fmt.Errorf("the entry has no %s", r.m.Agency)
	}
	return "", fmt.Errorf("%s %q is not one of the agencies this directory may name", r.m.Agency, v)
}

func (r *reader) rolesOf(e *goldap.Entry) ([]directory.Role, error) {
	var out []directory.Role
	if r.m.Roles == "" {
		return out, nil
	}
	for _, v := range values(e, r.m.Roles) {
		role, ok := knownRole(string(v))
		if !ok {
			return nil, fmt.Errorf("%s %q is not a cafgate role", r.m.Roles, v)
		}
		if !slices.Contains(out, role) {
			out = append(out, role)
		}
	}
	return out, nil
}

// applyGroups adds the roles and the sensitive-service flag of the listed groups the entry is in.
func (r *reader) applyGroups(e *goldap.Entry, p *directory.Practitioner) error {
	if r.m.Groups == "" || len(r.groups) == 0 {
		return nil
	}
	for _, v := range values(e, r.m.Groups) {
		dn, err := goldap.ParseDN(string(v))
		if err != nil {
			return fmt.Errorf("%s value %q is not a DN", r.m.Groups, v)
		}
		for i, g := range r.groups {
			if !g.EqualFold(dn) {
				continue
			}
			gr := r.m.GroupRoles[i]
			if gr.Role != "" && !slices.Contains(p.Roles, gr.Role) {
				p.Roles = append(p.Roles, gr.Role)
			}
			p.SensitiveService = p.SensitiveService || gr.SensitiveService
		}
	}
	return nil
}

func (r *reader) disabled(e *goldap.Entry) (bool, error) {
	if r.m.DisabledBits == 0 {
		return boolean(e, r.m.Disabled)
	}
	v, err := single(e, r.m.Disabled)
	if err != nil || v == "" {
		return false, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return false, fmt.Errorf("%s %q is not an integer", r.m.Disabled, v)
	}
	return n&r.m.DisabledBits != 0, nil
}

// values returns the values of attribute name, compared case-insensitively and ignoring a ";binary"
// option on either side (servers answer userCertificate;binary as either).
func values(e *goldap.Entry, name string) [][]byte {
	if name == "" {
		return nil
	}
	key := attrKey(name)
	var out [][]byte
	for _, a := range e.Attributes {
		if attrKey(a.Name) == key {
			out = append(out, a.ByteValues...)
		}
	}
	return out
}

func attrKey(name string) string {
	parts := strings.Split(strings.ToLower(name), ";")
	kept := parts[:1]
	for _, o := range parts[1:] {
		if o != "binary" {
			kept = append(kept, o)
		}
	}
	return strings.Join(kept, ";")
}

// single returns the one value of a single-valued attribute, "" when absent or name is "".
func single(e *goldap.Entry, name string) (string, error) {
	vs := values(e, name)
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return string(vs[0]), nil
	}
	return "", fmt.Errorf("%s has %d values; it is single-valued", name, len(vs))
}

// boolean reads an LDAP Boolean (TRUE or FALSE); absent is false.
func boolean(e *goldap.Entry, name string) (bool, error) {
	v, err := single(e, name)
	switch {
	case err != nil:
		return false, err
	case v == "" || v == "FALSE":
		return false, nil
	case v == "TRUE":
		return true, nil
	}
	return false, fmt.Errorf("%s %q is not an LDAP Boolean (TRUE or FALSE)", name, v)
}
