// The write turn: who writes next on the single writer connection. database/sql hands a freed
// connection to a random waiter, so with the relay's workers, the delivery pipeline and the acceptance
// writer all waiting, an acceptance (a client waiting for its 250) got one turn in many. Acceptance
// goes first; the background writers follow in the order they asked.

package mailbox

import (
	"context"
	"sync"
)

type writeTurn struct {
	mu        sync.Mutex
	held      bool
	high, low []chan struct{} // waiters in arrival order; a closed channel hands the turn over
}

// acquire waits for the turn; high goes before every low waiter. On an error (ctx ended) the caller
// does not hold the turn.
func (t *writeTurn) acquire(ctx context.Context, high bool) error {
	t.mu.Lock()
	if !t.held {
		t.held = true
		t.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	if high {
		t.high = append(t.high, ch)
	} else {
		t.low = append(t.low, ch)
	}
	t.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
	}
	t.mu.Lock()
	for _, q := range []*[]chan struct{}{&t.high, &t.low} {
		for i, c := range *q {
			if c == ch {
				*q = append((*q)[:i], (*q)[i+1:]...)
				t.mu.Unlock()
				return ctx.Err()
			}
		}
	}
	t.mu.Unlock()
	t.release() // handed over while giving up: pass it on
	return ctx.Err()
}

// release hands the turn to the first high waiter, else the first low one.
func (t *writeTurn) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, q := range []*[]chan struct{}{&t.high, &t.low} {
		if len(*q) > 0 {
			close((*q)[0])
			*q = (*q)[1:]
			return
		}
	}
	t.held = false
}
