// Package ldap is a practitioner directory in an agency's LDAP server (OpenLDAP, Active Directory, an
// LDAP front of another directory), read through an attribute map (the cafgate schema or an Active
// Directory style map) and never written to. Sign-in searches as a service account (size limit 2,
// every value escaped) and then binds as the entry on a connection of its own; look-ups reuse a pool
// of service connections. Every failure to get an answer in time is directory.ErrUnavailable, never
// "not found", and the next request tries again, so the directory recovers by itself.
package ldap

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"cafgate/directory"
)

// maxPassword is the longest password sent to a bind; longer ones are refused without asking.
const maxPassword = 1024

// Directory is one LDAP practitioner directory. It is safe for concurrent use.
type Directory struct {
	o       Options
	ep      endpoint
	rd      *reader
	pool    *pool
	log     *slog.Logger
	domains []string
	attrs   []string
	dummyDN string // a DN that does not exist, bound to when there is no entry, so refusals take alike long
	down    atomic.Bool
}

var _ directory.Directory = (*Directory)(nil)

// New checks o and returns the directory. It does not connect: the first request does, so a
// directory that is down at start answers ErrUnavailable until it comes up.
func New(o Options) (*Directory, error) {
	if err := o.check(); err != nil {
		return nil, fmt.Errorf("directory %s: %w", o.Name, err)
	}
	ep, err := o.endpoint()
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", o.Name, err)
	}
	rd, err := newReader(o.Map, o.Agency, o.Agencies, o.Name)
	if err != nil {
		return nil, fmt.Errorf("directory %s: attribute map: %w", o.Name, err)
	}
	d := &Directory{o: o, ep: ep, rd: rd, log: o.Log, attrs: o.Map.attributes(),
		dummyDN: "cn=cafgate-no-such-entry," + o.BaseDN}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	for _, dom := range o.Domains {
		d.domains = append(d.domains, strings.ToLower(strings.TrimSpace(dom)))
	}
	d.pool = newPool(o.PoolSize, func(ctx context.Context) (*conn, error) {
		return dial(ctx, d.ep, d.o.ConnectTimeout, d.o.BindDN, d.o.BindPassword)
	})
	if ep.plain {
		d.log.Error("INSECURE: LDAP directory without TLS; the service password and practitioners' passwords cross the network in clear",
			"directory", o.Name, "url", o.URL, "setting", "insecure_plain")
	}
	return d, nil
}

// Name returns the directory's name.
func (d *Directory) Name() string { return d.o.Name }

// Dials returns how many service connections have been dialled, for tests and benchmarks.
func (d *Directory) Dials() int64 { return d.pool.dials.Load() }

// Close closes the pooled connections. Requests after Close answer ErrUnavailable.
func (d *Directory) Close() { d.pool.close() }

// accept lower-cases mail and reports whether it is a plausible address in one of the directory's
// domains without control characters. Nothing else is checked: every value is escaped before it goes
// into a filter.
func (d *Directory) accept(mail string) (string, bool) {
	mail = strings.ToLower(mail)
	at := strings.LastIndexByte(mail, '@')
	if at <= 0 || len(mail) > 254 || strings.ContainsFunc(mail, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return mail, false
	}
	return mail, slices.Contains(d.domains, mail[at+1:])
}

// Lookup finds the entry with this mail address: ErrNotFound, ErrAmbiguous or ErrUnavailable (which
// also covers an entry the attribute map cannot read).
func (d *Directory) Lookup(ctx context.Context, mail string) (*directory.Practitioner, error) {
	mail, ok := d.accept(mail)
	if !ok {
		return nil, fmt.Errorf("%w: directory %s: not one of its domains", directory.ErrNotFound, d.o.Name)
	}
	es, err := d.search(ctx, mail)
	switch {
	case err == errTooMany || len(es) > 1:
		d.health(nil)
		return nil, fmt.Errorf("%w: directory %s", directory.ErrAmbiguous, d.o.Name)
	case err != nil:
		return nil, d.unavailable("search", err)
	case len(es) == 0:
		d.health(nil)
		return nil, fmt.Errorf("%w: directory %s", directory.ErrNotFound, d.o.Name)
	}
	p, err := d.rd.practitioner(es[0], mail)
	if err != nil {
		return nil, d.unavailable("entry "+es[0].DN+" does not fit the attribute map", err)
	}
	d.health(nil)
	return p, nil
}

// Authenticate finds the entry by mail as the service account, then binds as the entry with password
// on a connection of its own, which is closed afterwards. Every refusal is ErrBadCredentials with the
// reason wrapped; a directory that cannot answer is ErrUnavailable. An empty password is never sent.
// Vetting and the disabled flag are left to the caller (Practitioner.Standing).
func (d *Directory) Authenticate(ctx context.Context, mail, password string) (*directory.Practitioner, error) {
	mail, ok := d.accept(mail)
	switch {
	case !ok:
		return nil, d.refused("unknown user (not one of the directory's domains)")
	case password == "":
		return nil, d.refused("empty password")
	case len(password) > maxPassword:
		return nil, d.refused("password too long")
	}
	es, err := d.search(ctx, mail)
	if err != nil && err != errTooMany {
		return nil, d.unavailable("search", err)
	}
	if len(es) != 1 || err == errTooMany {
		d.bind(ctx, d.dummyDN, password) // the same work as a real refusal; its answer is not used
		if len(es) == 0 {
			return nil, d.refused("unknown user")
		}
		return nil, d.refused("more than one entry holds this mail address")
	}
	if err := d.bind(ctx, es[0].DN, password); err != nil {
		if userRefusal(err) {
			d.health(nil)
			return nil, d.refused(fmt.Sprintf("bind as %s refused: %v", es[0].DN, err))
		}
		return nil, d.unavailable("bind as the practitioner", err)
	}
	p, err := d.rd.practitioner(es[0], mail)
	if err != nil {
		return nil, d.unavailable("entry "+es[0].DN+" does not fit the attribute map", err)
	}
	d.health(nil)
	return p, nil
}

// bind dials a fresh connection and binds as dn; the connection is closed whatever happens, so a
// practitioner's identity never reaches the pool.
func (d *Directory) bind(ctx context.Context, dn, password string) error {
	c, err := dial(ctx, d.ep, d.o.ConnectTimeout, "", "")
	if err != nil {
		return err
	}
	defer c.Close()
	c.within(ctx, d.o.Timeout)
	return c.Bind(dn, password)
}

// search looks mail up under the base DN with a size limit of 2. A pooled connection the server
// dropped while idle is retried once on a fresh one.
func (d *Directory) search(ctx context.Context, mail string) ([]*goldap.Entry, error) {
	req := &goldap.SearchRequest{
		BaseDN: d.o.BaseDN, Scope: goldap.ScopeWholeSubtree, DerefAliases: goldap.NeverDerefAliases,
		SizeLimit: 2, TimeLimit: int(math.Ceil(d.o.Timeout.Seconds())), Filter: d.filter(mail), Attributes: d.attrs,
	}
	for attempt := 0; ; attempt++ {
		start := time.Now()
		c, err := d.pool.get(ctx, d.o.Timeout)
		if err != nil {
			return nil, err
		}
		limit := c.within(ctx, d.o.Timeout)
		res, err := c.Search(req)
		if goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) {
			d.pool.put(c, true)
			return res.Entries, errTooMany
		}
		broken := err != nil && isNetwork(err)
		d.pool.put(c, !broken)
		if err == nil {
			return res.Entries, nil
		}
		if broken && c.reused && attempt == 0 && ctx.Err() == nil && time.Since(start) < limit {
			continue
		}
		return nil, err
	}
}

// filter is the map's filter ANDed with an equality match of mail on every mail attribute. mail is
// escaped (RFC 4515): *, (, ), \, NUL and non-ASCII bytes cannot change the filter.
func (d *Directory) filter(mail string) string {
	v := goldap.EscapeFilter(mail)
	var b strings.Builder
	b.WriteString("(&")
	b.WriteString(d.o.Map.Filter)
	if len(d.o.Map.Mail) > 1 {
		b.WriteString("(|")
	}
	for _, a := range d.o.Map.Mail {
		b.WriteString("(" + a + "=" + v + ")")
	}
	if len(d.o.Map.Mail) > 1 {
		b.WriteString(")")
	}
	b.WriteString(")")
	return b.String()
}

// Check connects and binds as the service account on a fresh connection and reads the base entry:
// what `cafgate directory test` shows before it looks anyone up.
func (d *Directory) Check(ctx context.Context) error {
	c, err := dial(ctx, d.ep, d.o.ConnectTimeout, d.o.BindDN, d.o.BindPassword)
	if err != nil {
		return d.unavailable("connect and bind", err)
	}
	defer c.Close()
	c.within(ctx, d.o.Timeout)
	_, err = c.Search(&goldap.SearchRequest{BaseDN: d.o.BaseDN, Scope: goldap.ScopeBaseObject,
		Filter: "(objectClass=*)", Attributes: []string{"1.1"}, SizeLimit: 1})
	if err != nil {
		return d.unavailable("read the base DN "+d.o.BaseDN, err)
	}
	d.health(nil)
	return nil
}
