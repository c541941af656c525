// An attempt's outcome: delivered; a temporary failure retried with exponential backoff and jitter
// until the lifetime ends (with one delay warning on the way); or a permanent failure, which ends
// retries at once. Failure and warning DSNs are recorded in the same transaction as the outcome.

package relay

import (
	"fmt"
	"time"

	"cafgate/gateway/dsn"
	"cafgate/mailbox"
)

// result turns an attempt's outcome into what the store records.
func (r *Relay) result(c *mailbox.Claimed, s *session, answer string, f *failure) mailbox.QueueResult {
	out := mailbox.Outcome{At: r.opt.Now()}
	if s != nil {
		out.Host, out.TLS = s.host, s.tls
	}
	switch {
	case f == nil:
		out.Answer = answer
		r.opt.Log.Info("relay: delivered", "queue_id", c.ID, "kind", c.Kind, "rcpt", c.Recipient, "host", out.Host, "tls", out.TLS, "answer", answer)
		return mailbox.QueueResult{Lease: c.Lease, State: mailbox.QueueDelivered, Outcome: out}
	case f.permanent:
		return r.fail(c, f, out)
	}
	return r.retry(c, f, out)
}

// fail gives the entry up and queues the failure report to its sender.
func (r *Relay) fail(c *mailbox.Claimed, f *failure, out mailbox.Outcome) mailbox.QueueResult {
	out.Host, out.Answer, out.Cause = f.host, f.answer, f.cause
	out.Notice = r.notice(c, dsn.Recipient{Action: dsn.Failed, Status: f.status, RemoteMTA: remoteMTA(f), Diagnostic: f.answer,
		LastAttempt: out.At}, "")
	r.opt.Log.Warn("relay: given up", "queue_id", c.ID, "kind", c.Kind, "rcpt", c.Recipient, "cause", f.cause,
		"host", f.host, "status", f.status, "answer", f.answer)
	return mailbox.QueueResult{Lease: c.Lease, State: mailbox.QueueFailed, Outcome: out}
}

// retry queues the entry for a later attempt, or gives it up when its lifetime is over.
func (r *Relay) retry(c *mailbox.Claimed, f *failure, out mailbox.Outcome) mailbox.QueueResult {
	deadline := c.FirstQueued.Add(r.opt.Lifetime)
	if !out.At.Before(deadline) {
		expired := *f
		expired.permanent, expired.cause, expired.status = true, mailbox.CauseExpired, "5.4.7"
		expired.answer = "no delivery within " + humanDuration(r.opt.Lifetime) + "; the last attempt ended with: " + f.answer
		return r.fail(c, &expired, out)
	}
	out.Host, out.Answer = f.host, f.answer
	out.Next = out.At.Add(r.backoff(c.Attempts + 1))
	if out.Next.After(deadline) {
		out.Next = deadline
	}
	if r.opt.DelayWarning > 0 && !c.DelayWarned && out.At.Sub(c.FirstQueued) >= r.opt.DelayWarning {
		out.Notice = r.notice(c, dsn.Recipient{Action: dsn.Delayed, Status: f.status, RemoteMTA: remoteMTA(f),
			Diagnostic: f.answer, LastAttempt: out.At, WillRetryUntil: deadline}, "")
	}
	r.opt.Log.Info("relay: deferred", "queue_id", c.ID, "kind", c.Kind, "rcpt", c.Recipient, "host", f.host,
		"status", f.status, "answer", f.answer, "next", out.Next, "warned", out.Notice != nil)
	return mailbox.QueueResult{Lease: c.Lease, State: mailbox.QueueQueued, Outcome: out}
}

// backoff is the wait before attempt n+1 after n attempts: RetryMin doubled per attempt up to RetryMax,
// times a random factor in [0.75, 1.25) so entries that failed together do not return together.
func (r *Relay) backoff(n int) time.Duration {
	d := r.opt.RetryMin
	for i := 1; i < n && d < r.opt.RetryMax; i++ {
		d *= 2
	}
	d = min(d, r.opt.RetryMax)
	return time.Duration(float64(d) * (0.75 + 0.5*r.opt.Rand()))
}

// notice builds the DSN about c for its sender; nil for a DSN (never reported on) or if it cannot be
// built (logged: the outcome is still recorded).
func (r *Relay) notice(c *mailbox.Claimed, rc dsn.Recipient, explanation string) *mailbox.Outbound {
	o, err := Notice(r.opt.Hostname, &c.QueueEntry, c.Content, rc, explanation, r.opt.Now())
	if err != nil {
		r.opt.Log.Error("relay: building the report to the sender failed", "queue_id", c.ID, "err", err)
		return nil
	}
	return o
}

func remoteMTA(f *failure) string {
	if f.host == "" || !f.fromServer() {
		return ""
	}
	return f.host
}

// fromServer tells whether the answer is the server's reply rather than the gateway's own reason.
func (f *failure) fromServer() bool {
	a := f.answer
	return len(a) >= 4 && a[0] >= '2' && a[0] <= '5' && a[3] == ' '
}

// humanDuration writes whole days as days ("5 days"), anything else as Go does ("90m0s").
func humanDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == day:
		return "1 day"
	case d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return d.String()
}
