// A round's parsed packages: the recipients of one package are usually in the same round, so the
// package is read from the store, decrypted and parsed once for all of them instead of once each. An
// entry lives only while a recipient of the round still needs it, so no more packages are held in
// memory than the workers are working on.

package deliver

import (
	"context"
	"fmt"
	"sync"

	"cafgate/envelope/pkg"
	"cafgate/mailbox"
)

// parsedPackages hands out each package of a round, read and parsed by the first worker that asks.
type parsedPackages struct {
	store Store
	mu    sync.Mutex
	m     map[string]*parsedEntry
}

type parsedEntry struct {
	once  sync.Once
	users int // recipients of the round not yet done with it
	pk    *pkg.Package
	err   error
}

// newParsedPackages counts, for each package of work, how many of its recipients the round has.
func newParsedPackages(store Store, work []mailbox.DeliveryWork) *parsedPackages {
	c := &parsedPackages{store: store, m: make(map[string]*parsedEntry)}
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
func (c *parsedPackages) get(ctx context.Context, id string) (pk *pkg.Package, done func(), err error) {
	c.mu.Lock()
	e := c.m[id]
	if e == nil { // not counted (a caller outside a round): read on its own
		e = &parsedEntry{users: 1}
	}
	c.mu.Unlock()
	e.once.Do(func() {
		msg, err := c.store.Message(ctx, id)
		if err != nil {
			e.err = fmt.Errorf("reading the message: %w", err)
			return
		}
		e.pk, e.err = pkg.ParseBytes(msg.Content, pkg.DefaultLimits())
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

// errStoredPackage is a stored package that no longer parses.
type errStoredPackage struct{ err error }

func (e errStoredPackage) Error() string {
	return "the stored package no longer parses: " + e.err.Error()
}
func (e errStoredPackage) Unwrap() error { return e.err }
