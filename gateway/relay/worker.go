// A connection worker: it claims a batch of due entries for one domain, sends them over one session
// (reconnecting if the connection breaks), records each outcome, and repeats until nothing of that
// domain is due. A watchdog closes the connection before the batch's lease can lapse, and soon after
// shutdown begins, so a lease is never outlived by the attempt that holds it.

package relay

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/emersion/go-smtp"

	"cafgate/mailbox"
)

func (r *Relay) work(ctx context.Context, domain string, dest destination) {
	defer r.finished(domain, dest)
	defer func() {
		if p := recover(); p != nil { // the entries it held are retried when their leases lapse
			r.opt.Log.Error("relay: a delivery worker panicked", "domain", domain, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	var down *failure // the destination could not be reached: every later entry of this worker fares alike
	var s *session    // kept from batch to batch while there is work: one connection, not one per batch
	defer func() { s.close() }()
	for ctx.Err() == nil {
		batch, err := r.q.Claim(ctx, mailbox.ClaimOptions{Domain: domain, Limit: r.opt.MessagesPerConnection,
			Now: r.opt.Now(), Lease: r.opt.Lease})
		if err != nil {
			if ctx.Err() == nil {
				r.opt.Log.Warn("relay: claiming from the queue failed", "domain", domain, "err", err)
			}
			return
		}
		if len(batch) == 0 {
			return
		}
		down = r.sendBatch(ctx, domain, dest.route, batch, down, &s)
	}
}

// sendBatch attempts every entry of batch and returns the destination failure, if one was met.
// *sp is the worker's session: used if still sound, replaced when it breaks, and given up when the
// batch's watchdog closed it.
func (r *Relay) sendBatch(ctx context.Context, domain string, rt *Route, batch []*mailbox.Claimed, down *failure, sp **session) *failure {
	rec := &recorder{r: r, ctx: context.WithoutCancel(ctx)} // outcomes are recorded even while shutting down
	defer rec.flush()
	claimed := time.Now()
	g := r.watch(ctx)
	defer g.stop()
	s := *sp
	defer func() {
		if g.fired() && s != nil {
			s.broken = true // the watchdog closed its connection
		}
		if s != nil && s.broken {
			s.close()
			s = nil
		}
		*sp = s
	}()
	if s != nil {
		g.set(s.raw)
	}
	// Entries that can share one pipelined group of transactions wait in group until it is full or
	// the next entry cannot join it (sendGroup).
	var group []*mailbox.Claimed
	var groupOpts []*smtp.MailOptions
	groupBytes := 0
	flush := func() {
		if len(group) == 0 {
			return
		}
		if r.opt.onGroup != nil {
			r.opt.onGroup(len(group))
		}
		answers, fails := s.sendGroup(group, groupOpts)
		for i, c := range group {
			rec.add(r.result(c, s, answers[i], fails[i]))
		}
		group, groupOpts, groupBytes = group[:0], groupOpts[:0], 0
	}
	for i, c := range batch {
		rec.flushIfDue()
		if g.fired() || ctx.Err() != nil || time.Since(claimed)+r.opt.attemptBudget() >= r.opt.Lease-leaseMargin(r.opt.Lease) {
			// No attempt now: the lease could lapse during it, or the gateway is stopping. The
			// group waiting to be sent is given back unattempted with the rest.
			r.unclaim(rec.ctx, append(slices.Clip(group), batch[i:]...))
			return down
		}
		switch {
		case c.ContentErr != nil:
			rec.add(r.result(c, nil, "", permf(mailbox.CauseCorrupt, "", "5.3.0",
				"the gateway's stored copy failed its integrity check and cannot be sent")))
			continue
		case down != nil:
			rec.add(r.result(c, nil, "", down))
			continue
		case c.Recipe != nil:
			if f := r.build(ctx, c); f != nil {
				rec.add(r.result(c, nil, "", f))
				continue
			}
		}
		if s == nil || s.broken {
			s.close()
			var f *failure
			if s, f = r.open(ctx, domain, rt); f != nil {
				down = f
				rec.add(r.result(c, nil, "", f))
				continue
			}
			g.set(s.raw)
		}
		if !s.groupable(c) {
			flush()
			if s.broken { // the group broke the connection: this entry waits for the next batch
				r.unclaim(rec.ctx, batch[i:])
				return down
			}
			answer, f := s.send(c)
			rec.add(r.result(c, s, answer, f))
			continue
		}
		opts, f := s.mailOptions(c)
		if f != nil {
			rec.add(r.result(c, s, "", f))
			continue
		}
		if len(group) > 0 && (len(group) == r.opt.groupMax() || groupBytes+len(c.Content) > groupMaxBytes) {
			flush()
			if s.broken {
				r.unclaim(rec.ctx, batch[i:])
				return down
			}
		}
		group, groupOpts, groupBytes = append(group, c), append(groupOpts, opts), groupBytes+len(c.Content)
	}
	flush()
	return down
}

// build builds and seals the copy of c, queued by recipe, into c.Content for this attempt.
func (r *Relay) build(ctx context.Context, c *mailbox.Claimed) *failure {
	var err error
	if r.opt.Build == nil {
		err = fmt.Errorf("%w: no builder of copies queued by recipe", mailbox.ErrCorrupt)
	} else {
		c.Content, err = r.opt.Build(ctx, c)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mailbox.ErrCorrupt):
		r.opt.Log.Error("relay: the copy cannot be built; failing the entry", "queue_id", c.ID, "err", err)
		return permf(mailbox.CauseCorrupt, "", "5.3.0",
			"the gateway could not build the recipient's copy: the stored package or its recipe failed its integrity check")
	}
	r.opt.Log.Warn("relay: the copy could not be built now; trying later", "queue_id", c.ID, "err", err)
	return tempf("", "4.3.0", "the gateway could not read the stored package to build the recipient's copy")
}

// unclaim gives entries back unattempted.
func (r *Relay) unclaim(ctx context.Context, cs []*mailbox.Claimed) {
	for _, c := range cs {
		if err := r.q.Unclaim(ctx, c.Lease, r.opt.Now()); err != nil {
			r.opt.Log.Warn("relay: giving an entry back failed; it is retried when its lease lapses", "queue_id", c.ID, "err", err)
		}
	}
}
