// The dispatcher: it looks at which destinations have entries due and starts connection workers for
// them within the connection limits, when woken, when the next entry falls due, or every poll interval.

package relay

import (
	"context"
	"sync"
	"time"
)

// Relay delivers the outbound queue. Create it with New, then call Run in a goroutine.
type Relay struct {
	opt     Options
	q       Queue
	wake    chan struct{}
	mxRoute Route // for domains no route names: MX hosts, STARTTLS and certificate verification required
	commits *groupCommit

	mu       sync.Mutex
	total    int            // workers running
	perKey   map[string]int // workers per destination key
	perDom   map[string]int // workers per domain
	workers  sync.WaitGroup
	stopping bool
}

// New checks opt and returns a Relay working on q.
func New(q Queue, opt Options) (*Relay, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	for i, rt := range opt.Routes {
		if rt.TLS == None {
			opt.Log.Warn("relay: route sends mail in PLAIN TEXT (tls = \"none\")", "route", i, "domains", rt.Domains, "smart_host", rt.SmartHost)
		}
	}
	r := &Relay{opt: opt, q: q, wake: make(chan struct{}, 1), mxRoute: Route{TLS: Verify},
		perKey: map[string]int{}, perDom: map[string]int{}}
	r.commits = &groupCommit{q: q, log: func(id string, err error) {
		opt.Log.Error("relay: recording an outcome failed; the entry is attempted again when its lease lapses", "queue_id", id, "err", err)
	}}
	return r, nil
}

// Wake tells the relay something was queued, so it looks at the queue now rather than at the next poll.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, then lets attempts under way finish (for at most ShutdownGrace, after
// which their connections are closed and they are retried later) and returns.
func (r *Relay) Run(ctx context.Context) error {
	defer r.workers.Wait()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.mu.Lock()
			r.stopping = true
			r.mu.Unlock()
			return nil
		case <-r.wake:
		case <-t.C:
		}
		r.dispatch(ctx)
		t.Reset(r.untilNext(ctx))
	}
}

// Flush attempts every entry due now, and the notices those attempts queue, and returns once those
// attempts are over. For tests and a manual flush; Run does the same continuously.
func (r *Relay) Flush(ctx context.Context) error {
	for round := 0; round < 10; round++ {
		started, err := r.dispatchErr(ctx)
		r.workers.Wait()
		if err != nil || started == 0 {
			return err
		}
	}
	return ctx.Err()
}

// untilNext is how long the dispatcher sleeps: until the next entry is due, at most PollInterval.
func (r *Relay) untilNext(ctx context.Context) time.Duration {
	wait := r.opt.PollInterval
	if next, ok, err := r.q.NextDue(ctx); err == nil && ok {
		if d := next.Sub(r.opt.Now()); d < wait {
			wait = max(d, 50*time.Millisecond)
		}
	}
	return wait
}

func (r *Relay) dispatch(ctx context.Context) {
	if _, err := r.dispatchErr(ctx); err != nil && ctx.Err() == nil {
		r.opt.Log.Warn("relay: reading the queue failed", "err", err)
	}
}

// dispatchErr starts workers for the due destinations and returns how many it started.
func (r *Relay) dispatchErr(ctx context.Context) (int, error) {
	due, err := r.q.DueDomains(ctx, r.opt.Now())
	if err != nil {
		return 0, err
	}
	started := 0
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range due {
		dest := r.destination(d.Domain)
		want := (d.Due + r.opt.MessagesPerConnection - 1) / r.opt.MessagesPerConnection
		for r.perDom[d.Domain] < want && r.perKey[dest.key] < dest.limit && r.total < r.opt.MaxConnections && !r.stopping {
			r.total++
			r.perKey[dest.key]++
			r.perDom[d.Domain]++
			started++
			r.workers.Add(1)
			go r.work(ctx, d.Domain, dest)
		}
	}
	return started, nil
}

// finished releases a worker's places and wakes the dispatcher, which may have more for them.
func (r *Relay) finished(domain string, dest destination) {
	r.mu.Lock()
	r.total--
	r.perKey[dest.key]--
	r.perDom[domain]--
	if r.perKey[dest.key] == 0 {
		delete(r.perKey, dest.key)
	}
	if r.perDom[domain] == 0 {
		delete(r.perDom, domain)
	}
	r.mu.Unlock()
	r.Wake()
	r.workers.Done()
}
