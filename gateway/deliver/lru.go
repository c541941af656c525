package deliver

import (
	"container/list"
	"sync"
)

// onceLRU keeps values loaded by key, each loaded once however many ask for it at the same time, at
// most maxN of them and about maxBytes of their sizes, least recently used first out. A failed load
// is not kept: the next get loads again.
type onceLRU[V any] struct {
	maxN, maxBytes int

	mu    sync.Mutex
	order *list.List // of *lruEntry[V], most recently used first
	m     map[string]*list.Element
	bytes int
}

type lruEntry[V any] struct {
	key  string
	once sync.Once
	v    V     // set by once
	size int   // set by once
	err  error // set by once
	held int   // the bytes counted in onceLRU.bytes for it (under onceLRU.mu)
}

func newOnceLRU[V any](maxN, maxBytes int) *onceLRU[V] {
	return &onceLRU[V]{maxN: maxN, maxBytes: maxBytes, order: list.New(), m: make(map[string]*list.Element)}
}

// get returns the value of key, loading it with load (the value and its size in bytes) if it is not
// kept.
func (c *onceLRU[V]) get(key string, load func() (V, int, error)) (V, error) {
	c.mu.Lock()
	el := c.m[key]
	if el == nil {
		el = c.order.PushFront(&lruEntry[V]{key: key})
		c.m[key] = el
	} else {
		c.order.MoveToFront(el)
	}
	e := el.Value.(*lruEntry[V])
	c.mu.Unlock()
	e.once.Do(func() { e.v, e.size, e.err = load() })
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.err != nil {
		if c.m[key] == el {
			c.order.Remove(el)
			delete(c.m, key)
		}
		var zero V
		return zero, e.err
	}
	if c.m[key] == el && e.held == 0 {
		e.held = e.size
		c.bytes += e.held
	}
	for c.order.Len() > 1 && (c.order.Len() > c.maxN || c.bytes > c.maxBytes) {
		old := c.order.Remove(c.order.Back()).(*lruEntry[V])
		c.bytes -= old.held
		delete(c.m, old.key)
	}
	return e.v, nil
}

// len is how many values are kept, and their bytes.
func (c *onceLRU[V]) len() (n, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len(), c.bytes
}
