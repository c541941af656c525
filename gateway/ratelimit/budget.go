package ratelimit

import "sync"

// Budget bounds the bytes that all requests under way hold in memory at once (message data being
// received, uploads being read): each takes what it needs before holding it and gives it back after.
type Budget struct {
	mu   sync.Mutex
	used int64
	max  int64
}

// NewBudget returns a budget of max bytes.
func NewBudget(max int64) *Budget { return &Budget{max: max} }

// Take reserves n bytes; it reports false, reserving nothing, when that would pass the budget.
func (b *Budget) Take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

// Give returns n bytes taken before.
func (b *Budget) Give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}

// InUse is the bytes taken and not given back (tests check every request gives back what it took).
func (b *Budget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
