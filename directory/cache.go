package directory

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
)

// Cache answers look-ups from memory for a short time: an entry, or "no such practitioner", is reused
// for ttl. ErrUnavailable and ErrAmbiguous are never kept, and sign-in always goes to the directory.
// It holds at most max answers; when full, expired answers are dropped and then, if still full, an
// arbitrary one. Callers get their own copy of every entry.
type Cache struct {
	dir Directory
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]cached
}

type cached struct {
	p     *Practitioner // nil: ErrNotFound
	err   error
	until time.Time
}

var _ Directory = (*Cache)(nil)

// NewCache wraps d. now is the clock (time.Now when nil); ttl <= 0 or max <= 0 turns caching off.
func NewCache(d Directory, ttl time.Duration, max int, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{dir: d, ttl: ttl, max: max, now: now, m: map[string]cached{}}
}

// Authenticate is the wrapped directory's, never cached.
func (c *Cache) Authenticate(ctx context.Context, mail, password string) (*Practitioner, error) {
	return c.dir.Authenticate(ctx, mail, password)
}

// Lookup answers from the cache when it holds an answer younger than ttl, else asks the directory.
func (c *Cache) Lookup(ctx context.Context, mail string) (*Practitioner, error) {
	if c.ttl <= 0 || c.max <= 0 {
		return c.dir.Lookup(ctx, mail)
	}
	key := strings.ToLower(mail)
	now := c.now()
	c.mu.Lock()
	hit, ok := c.m[key]
	c.mu.Unlock()
	if ok && now.Before(hit.until) {
		if hit.p == nil {
			return nil, hit.err
		}
		return clonePractitioner(hit.p), nil
	}
	p, err := c.dir.Lookup(ctx, mail)
	switch {
	case err == nil:
		c.store(key, cached{p: clonePractitioner(p), until: now.Add(c.ttl)})
	case errors.Is(err, ErrNotFound) && !errors.Is(err, ErrUnavailable):
		c.store(key, cached{err: err, until: now.Add(c.ttl)})
	default:
		c.mu.Lock()
		delete(c.m, key) // a stale answer is not kept past a failure
		c.mu.Unlock()
	}
	return p, err
}

func (c *Cache) store(key string, e cached) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		now := c.now()
		for k, v := range c.m {
			if !now.Before(v.until) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = e
}

// clonePractitioner returns a deep copy of p.
func clonePractitioner(p *Practitioner) *Practitioner {
	q := *p
	q.Roles = slices.Clone(p.Roles)
	q.Certificates = make([][]byte, len(p.Certificates))
	for i, c := range p.Certificates {
		q.Certificates[i] = slices.Clone(c)
	}
	if p.Certificates == nil {
		q.Certificates = nil
	}
	return &q
}
