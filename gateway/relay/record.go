// Recording outcomes: each worker gathers a few, then hands them to the relay's group commit, which
// writes what all workers handed in meanwhile in one transaction (one fsync).

package relay

import (
	"context"
	"sync"
	"time"

	"cafgate/mailbox"
)

// A worker holds at most maxUnrecorded outcomes, none older than maxUnrecordedAge, before writing them.
// A crash loses at most those (and what other workers hold); their entries are sent again when their
// leases lapse: the documented duplicate, with the same Message-ID.
const (
	maxUnrecorded    = 8
	maxUnrecordedAge = 20 * time.Millisecond
)

// recorder holds outcomes not yet written.
type recorder struct {
	r       *Relay
	ctx     context.Context
	pending []mailbox.QueueResult
	oldest  time.Time
}

func (rc *recorder) add(res mailbox.QueueResult) {
	if len(rc.pending) == 0 {
		rc.oldest = time.Now()
	}
	rc.pending = append(rc.pending, res)
	if len(rc.pending) >= maxUnrecorded {
		rc.flush()
	}
}

func (rc *recorder) flushIfDue() {
	if len(rc.pending) > 0 && time.Since(rc.oldest) >= maxUnrecordedAge {
		rc.flush()
	}
}

// flush hands the pending outcomes to the relay's group commit and returns once they are written.
func (rc *recorder) flush() {
	if len(rc.pending) == 0 {
		return
	}
	rc.r.commits.submit(rc.ctx, rc.pending)
	rc.pending = rc.pending[:0]
}

// groupCommit writes the outcomes of all workers: whoever holds the write turn takes everything
// submitted meanwhile, so concurrent workers share one transaction (one fsync) instead of queueing
// for one each. submit returns once the caller's outcomes are written (or their failure logged).
type groupCommit struct {
	q       Queue
	log     func(id string, err error)
	mu      sync.Mutex // guards pending
	pending []mailbox.QueueResult
	turn    sync.Mutex // one Record at a time
}

func (g *groupCommit) submit(ctx context.Context, rs []mailbox.QueueResult) {
	g.mu.Lock()
	g.pending = append(g.pending, rs...)
	g.mu.Unlock()
	g.turn.Lock()
	defer g.turn.Unlock()
	g.mu.Lock()
	batch := g.pending
	g.pending = nil
	g.mu.Unlock()
	if len(batch) == 0 {
		return // another worker's turn wrote them
	}
	errs, err := g.q.RecordOutcomes(ctx, batch)
	for i, res := range batch {
		e := err
		if e == nil {
			e = errs[i]
		}
		if e != nil {
			g.log(res.Lease.ID, e)
		}
	}
}
