package directory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// counting is a directory in memory that counts the requests it answers and can be made to fail.
type counting struct {
	mu      sync.Mutex
	entries map[string]*Practitioner
	fail    error // when set, every request answers it
	lookups int
	auths   int
}

func (c *counting) Lookup(_ context.Context, mail string) (*Practitioner, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lookups++
	if c.fail != nil {
		return nil, c.fail
	}
	p, ok := c.entries[strings.ToLower(mail)]
	if !ok {
		return nil, fmt.Errorf("%w: test", ErrNotFound)
	}
	return clonePractitioner(p), nil
}

func (c *counting) Authenticate(_ context.Context, mail, _ string) (*Practitioner, error) {
	c.mu.Lock()
	c.auths++
	c.mu.Unlock()
	return c.Lookup(context.Background(), mail)
}

func (c *counting) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lookups, c.auths
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestCache(t *testing.T) {
	ann := &Practitioner{Mail: "ann@x.test", Roles: []Role{RolePractitioner}, Certificates: [][]byte{[]byte("DER")}}
	d := &counting{entries: map[string]*Practitioner{"ann@x.test": ann}}
	clk := &clock{t: time.Unix(1e9, 0)}
	c := NewCache(d, 10*time.Second, 100, clk.now)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		p, err := c.Lookup(ctx, "Ann@X.test")
		if err != nil || p.Mail != "ann@x.test" {
			t.Fatalf("Lookup: %v, %v", p, err)
		}
		p.Roles[0], p.Certificates[0][0] = RoleAuditor, 'X' // callers get copies
		if _, err := c.Lookup(ctx, "bob@x.test"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Lookup of an unknown address: %v", err)
		}
	}
	if l, _ := d.counts(); l != 2 {
		t.Errorf("3 rounds of look-ups reached the directory %d times, want 2", l)
	}
	if p, _ := c.Lookup(ctx, "ann@x.test"); p.Roles[0] != RolePractitioner || string(p.Certificates[0]) != "DER" {
		t.Errorf("the cache handed out shared state: %+v", p)
	}
	// Sign-in is never cached.
	for i := 0; i < 3; i++ {
		c.Authenticate(ctx, "ann@x.test", "pw")
	}
	if _, a := d.counts(); a != 3 {
		t.Errorf("3 sign-ins reached the directory %d times", a)
	}
	// After ttl the directory is asked again; a failure is passed on and not kept; nor is a stale answer.
	clk.t = clk.t.Add(10 * time.Second)
	d.fail = fmt.Errorf("%w: down", ErrUnavailable)
	if _, err := c.Lookup(ctx, "ann@x.test"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Lookup with the directory down: %v", err)
	}
	if _, err := c.Lookup(ctx, "bob@x.test"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Lookup of a formerly unknown address with the directory down: %v", err)
	}
	d.fail = nil
	must := func(p *Practitioner, err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	l0, _ := d.counts()
	must(c.Lookup(ctx, "ann@x.test"))
	must(c.Lookup(ctx, "ann@x.test"))
	if l, _ := d.counts(); l != l0+1 {
		t.Errorf("after recovery: %d directory look-ups for 2, want 1", l-l0)
	}
	d.fail = fmt.Errorf("%w: two", ErrAmbiguous)
	clk.t = clk.t.Add(time.Minute)
	c.Lookup(ctx, "ann@x.test")
	c.Lookup(ctx, "ann@x.test")
	if l, _ := d.counts(); l != l0+3 {
		t.Error("an ambiguous answer was cached")
	}
}

func TestCacheBounded(t *testing.T) {
	d := &counting{entries: map[string]*Practitioner{}}
	clk := &clock{t: time.Unix(1e9, 0)}
	c := NewCache(d, time.Minute, 10, clk.now)
	for i := 0; i < 100; i++ {
		c.Lookup(context.Background(), fmt.Sprintf("u%d@x.test", i))
	}
	if n := len(c.m); n > 10 {
		t.Errorf("cache holds %d answers, max 10", n)
	}
	off := NewCache(d, 0, 10, nil)
	l0, _ := d.counts()
	off.Lookup(context.Background(), "u1@x.test")
	off.Lookup(context.Background(), "u1@x.test")
	if l, _ := d.counts(); l != l0+2 {
		t.Error("a cache with ttl 0 cached")
	}
}
