// Recording outcomes: each worker hands its outcomes to the relay's one committer as it goes and keeps
// sending; the committer writes whatever all workers handed in meanwhile in one transaction (one
// fsync). A worker waits for its outcomes to be written only at the end of its batch, before it
// claims the next one.

package relay

import (
	"context"
	"sync"
	"time"

	"cafgate/mailbox"
)

// A worker hands its outcomes over every maxUnrecorded outcomes or maxUnrecordedAge, whichever comes
// first, and waits for them at the end of its batch. A crash loses at most the outcomes of the batches
// being sent (MessagesPerConnection per worker); their entries are sent again when their leases lapse:
// the documented duplicate, with the same Message-ID.
const (
	maxUnrecorded    = 8
	maxUnrecordedAge = 20 * time.Millisecond
)

// recorder holds one batch's outcomes not yet handed over, and what it handed over.
type recorder struct {
	r       *Relay
	ctx     context.Context
	pending []mailbox.QueueResult
	oldest  time.Time
	handed  []<-chan struct{} // closed once written
}

func (rc *recorder) add(res mailbox.QueueResult) {
	if len(rc.pending) == 0 {
		rc.oldest = time.Now()
	}
	rc.pending = append(rc.pending, res)
	if len(rc.pending) >= maxUnrecorded {
		rc.handOver()
	}
}

func (rc *recorder) flushIfDue() {
	if len(rc.pending) > 0 && time.Since(rc.oldest) >= maxUnrecordedAge {
		rc.handOver()
	}
}

// handOver gives the pending outcomes to the committer without waiting.
func (rc *recorder) handOver() {
	if len(rc.pending) == 0 {
		return
	}
	rc.handed = append(rc.handed, rc.r.commits.submit(rc.ctx, rc.pending))
	rc.pending = nil
}

// flush hands over the rest and returns once everything this recorder handed over is written.
func (rc *recorder) flush() {
	rc.handOver()
	for _, done := range rc.handed {
		<-done
	}
	rc.handed = nil
}

// groupCommit writes the outcomes of all workers: one goroutine at a time takes everything submitted
// so far and writes it in one transaction, so concurrent workers share a transaction (one fsync)
// instead of queueing for one each, and none of them waits while it is written.
type groupCommit struct {
	q       Queue
	log     func(id string, err error)
	mu      sync.Mutex // guards the fields below
	pending []mailbox.QueueResult
	waiters []chan struct{}
	running bool // a writer goroutine is at work
}

// submit queues rs for writing and returns a channel closed once they are written (or their failure
// logged).
func (g *groupCommit) submit(ctx context.Context, rs []mailbox.QueueResult) <-chan struct{} {
	done := make(chan struct{})
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending = append(g.pending, rs...)
	g.waiters = append(g.waiters, done)
	if !g.running {
		g.running = true
		go g.write(context.WithoutCancel(ctx)) // outcomes are recorded even while shutting down
	}
	return done
}

// write records what was submitted, batch after batch, until nothing is left.
func (g *groupCommit) write(ctx context.Context) {
	for {
		g.mu.Lock()
		batch, waiters := g.pending, g.waiters
		g.pending, g.waiters = nil, nil
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			for _, w := range waiters {
				close(w)
			}
			return
		}
		g.mu.Unlock()
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
		for _, w := range waiters {
			close(w)
		}
	}
}
