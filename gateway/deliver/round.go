// What a round works out once for several recipients. The recipients of one package are usually in
// the same round, so the package is read from the store, decrypted and parsed once for all of them
// instead of once each; an entry lives only while a recipient of the round still needs it, so no more
// packages are held in memory than the workers are working on. And a recipient of several packages in
// the round has their certificates parsed and validated once: a round lasts well under a second,
// shorter than any revocation list's update.

package deliver

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

	"cafgate/directory"
	"cafgate/envelope/pkg"
	"cafgate/envelope/smime"
	"cafgate/mailbox"
)

// roundCache hands out each package of a round, read and parsed by the first worker that asks, and
// each recipient's usable certificate, worked out by the first worker that asks.
type roundCache struct {
	store  Store
	shared *packageCache // the Builder's, when the pipeline has one: packages are read once for both
	mu     sync.Mutex
	m      map[string]*parsedEntry
	certs  map[string]*certEntry
	plans  map[string]*planEntry
}

type planEntry struct {
	mu   sync.Mutex
	done bool
	plan smime.Plan
}

type certEntry struct {
	once sync.Once
	cert *x509.Certificate // nil: none usable
}

type parsedEntry struct {
	once  sync.Once
	users int // recipients of the round not yet done with it
	pk    *pkg.Package
	err   error
}

// newRoundCache counts, for each package of work, how many of its recipients the round has.
func newRoundCache(store Store, work []mailbox.DeliveryWork, shared *packageCache) *roundCache {
	c := &roundCache{store: store, shared: shared, m: make(map[string]*parsedEntry), certs: make(map[string]*certEntry),
		plans: make(map[string]*planEntry)}
	for _, w := range work {
		e := c.m[w.MessageID]
		if e == nil {
			e = &parsedEntry{}
			c.m[w.MessageID] = e
		}
		e.users++
	}
	return c
}

// get returns the package id, parsed, as a copy of its own (a shallow one: the step may change its
// manifest's fields, never the documents). done must be called once the caller no longer needs it.
func (c *roundCache) get(ctx context.Context, id string) (pk *pkg.Package, done func(), err error) {
	c.mu.Lock()
	e := c.m[id]
	if e == nil { // not counted (a caller outside a round): read on its own
		e = &parsedEntry{users: 1}
	}
	c.mu.Unlock()
	e.once.Do(func() {
		if c.shared != nil { // read into the cache the relay's attempts build the copies from
			e.pk, e.err = c.shared.get(ctx, c.store, id)
			return
		}
		content, err := c.store.MessageContent(ctx, id)
		if err != nil {
			e.err = fmt.Errorf("reading the message: %w", err)
			return
		}
		e.pk, e.err = pkg.ParseBytes(content, pkg.DefaultLimits())
		if e.err != nil {
			e.err = errStoredPackage{e.err}
		}
	})
	done = func() {
		c.mu.Lock()
		if e.users--; e.users <= 0 {
			delete(c.m, id)
		}
		c.mu.Unlock()
	}
	if e.err != nil {
		return nil, done, e.err
	}
	cp := *e.pk
	return &cp, done, nil
}

// usable returns the recipient's usable certificate, found by find the first time it is asked for
// the same directory certificates, mail address and agency.
func (c *roundCache) usable(e *directory.Practitioner, find func() *x509.Certificate) *x509.Certificate {
	h := sha256.New()
	for _, der := range e.Certificates {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(der))))
		h.Write(der)
	}
	key := string(h.Sum(nil)) + "\x00" + strings.ToLower(e.Mail) + "\x00" + e.Agency
	c.mu.Lock()
	ce := c.certs[key]
	if ce == nil {
		ce = &certEntry{}
		c.certs[key] = ce
	}
	c.mu.Unlock()
	ce.once.Do(func() { ce.cert = find() })
	return ce.cert
}

// plan returns the encryption plan for a recipient's certificate, worked out by work the first time
// the round asks for the same address, agency and certificate (the plan reads what the store knows
// of the recipient's mail client, which a round does not see change). A failed work is not kept.
func (c *roundCache) plan(mail, agency string, cert *x509.Certificate, work func() (smime.Plan, error)) (smime.Plan, error) {
	fp := sha256.Sum256(cert.Raw)
	key := string(fp[:]) + "\x00" + strings.ToLower(mail) + "\x00" + agency
	c.mu.Lock()
	pe := c.plans[key]
	if pe == nil {
		pe = &planEntry{}
		c.plans[key] = pe
	}
	c.mu.Unlock()
	pe.mu.Lock()
	defer pe.mu.Unlock()
	if !pe.done {
		pl, err := work()
		if err != nil {
			return smime.Plan{}, err
		}
		pe.plan, pe.done = pl, true
	}
	return pe.plan, nil
}

// errStoredPackage is a stored package that no longer parses.
type errStoredPackage struct{ err error }

func (e errStoredPackage) Error() string {
	return "the stored package no longer parses: " + e.err.Error()
}
func (e errStoredPackage) Unwrap() error { return e.err }
