// Recording what a claimed entry's delivery attempt came to: delivered, retried later, or failed. Each
// checks the lease, changes the row, writes the ledger event and queues the DSN (if any) in one
// transaction, so a crash cannot leave a failure without its bounce or a bounce without its failure.

package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Outcome is what one delivery attempt came to.
type Outcome struct {
	At     time.Time // when (the relay's clock)
	Host   string    // the MTA that gave the answer; empty when none was reached
	Answer string    // its answer or the local reason; stored as one bounded line
	TLS    string    // the connection's protection, e.g. "TLS1.3" or "none"
	Next   time.Time // Retry: when to try again
	Cause  string    // Fail: CauseRejected, CauseExpired, CauseUnroutable or CauseCorrupt
	// Notice is a DSN to queue in the same transaction: a "delayed" one with Retry (the entry is then
	// marked warned), a "failed" one with Fail. Queuing the same notice twice queues it once.
	Notice *Outbound
}

// QueueResult is one claimed entry's outcome, for RecordOutcomes: State is QueueDelivered (as Done),
// QueueQueued (as Retry) or QueueFailed (as Fail).
type QueueResult struct {
	Lease   Lease
	State   string
	Outcome Outcome
}

// Done records that the receiving MTA accepted the entry: delivered, content purged, "relayed" event.
func (s *Store) Done(ctx context.Context, l Lease, o Outcome) error {
	return s.recordOne(ctx, QueueResult{Lease: l, State: QueueDelivered, Outcome: o})
}

// Retry records a temporary failure: the entry is queued again for o.Next with a "deferred" event, and
// o.Notice (a delay warning) is queued with it.
func (s *Store) Retry(ctx context.Context, l Lease, o Outcome) error {
	return s.recordOne(ctx, QueueResult{Lease: l, State: QueueQueued, Outcome: o})
}

// Fail records that the entry is given up (o.Cause says why): failed, content purged, "bounced" event,
// and o.Notice (the failure DSN to the sender) queued with it.
func (s *Store) Fail(ctx context.Context, l Lease, o Outcome) error {
	return s.recordOne(ctx, QueueResult{Lease: l, State: QueueFailed, Outcome: o})
}

func (s *Store) recordOne(ctx context.Context, r QueueResult) error {
	if err := checkResult(&r, s.opt.Now); err != nil {
		return err
	}
	return s.queueTx(ctx, func(tx *sql.Tx) error { return s.finishTx(ctx, tx, r) })
}

// RecordOutcomes writes several outcomes in one transaction (one fsync for all), each inside its own
// savepoint: errs[i] is results[i]'s own refusal (ErrLeaseLost, ErrInvalid, ErrDuplicate), which leaves
// nothing of it written and the others recorded; err is a failure of the whole transaction (full,
// unavailable), which records none of them.
func (s *Store) RecordOutcomes(ctx context.Context, results []QueueResult) (errs []error, err error) {
	ctx = uncancelled(ctx)
	errs = make([]error, len(results))
	// Outcomes that queue a report to the sender are stored durably before it can be sent; the others
	// tell nobody anything yet, and one lost to a power failure is an attempt made again (the
	// documented duplicate, with the same Message-ID), so they do not wait for the disk (lazyTx).
	tx := s.lazyTx
	for _, r := range results {
		if r.Outcome.Notice != nil {
			tx = s.queueTx
		}
	}
	// First all of them without savepoints (two statements less each): a refusal is rare, and if one
	// comes the transaction is rolled back and written again with a savepoint around each.
	err = tx(ctx, func(tx *sql.Tx) error {
		for i := range results {
			r := results[i]
			if errs[i] = checkResult(&r, s.opt.Now); errs[i] != nil {
				continue
			}
			if err := s.finishTx(ctx, tx, r); err != nil {
				if err = classifyQueue(err); isOutcomeRefusal(err) {
					return errWithSavepoints{err}
				}
				return err // full, unavailable: nothing of the batch can be trusted to commit
			}
		}
		return nil
	})
	var retry errWithSavepoints
	if !errors.As(err, &retry) {
		return errs, err
	}
	err = tx(ctx, func(tx *sql.Tx) error {
		for i := range results {
			errs[i] = nil
			r := results[i]
			if errs[i] = checkResult(&r, s.opt.Now); errs[i] != nil {
				continue
			}
			if _, err := tx.ExecContext(ctx, `SAVEPOINT queue_result`); err != nil {
				return err
			}
			if errs[i] = s.finishTx(ctx, tx, r); errs[i] != nil {
				errs[i] = classifyQueue(errs[i])
				if !isOutcomeRefusal(errs[i]) {
					return errs[i] // full, unavailable: nothing of the batch can be trusted to commit
				}
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO queue_result`); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `RELEASE queue_result`); err != nil {
				return err
			}
		}
		return nil
	})
	return errs, err
}

// isOutcomeRefusal tells an outcome's own refusal, which leaves the others of its batch to be
// recorded, from a failure of the whole transaction.
func isOutcomeRefusal(err error) bool {
	return errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrDuplicate)
}

// errWithSavepoints ends RecordOutcomes' first pass: an outcome failed, so the batch is written again
// with each outcome in a savepoint of its own.
type errWithSavepoints struct{ err error }

func (e errWithSavepoints) Error() string { return e.err.Error() }
func (e errWithSavepoints) Unwrap() error { return e.err }

// checkResult refuses a result missing what its state needs and fills in its time.
func checkResult(r *QueueResult, now func() time.Time) error {
	if r.Outcome.At.IsZero() {
		r.Outcome.At = now()
	}
	switch {
	case r.State == QueueQueued && r.Outcome.Next.IsZero():
		return fmt.Errorf("%w: retry of %s without a next attempt time", ErrInvalid, r.Lease.ID)
	case r.State == QueueFailed && r.Outcome.Cause == "":
		return fmt.Errorf("%w: failure of %s without a cause", ErrInvalid, r.Lease.ID)
	case r.State != QueueDelivered && r.State != QueueQueued && r.State != QueueFailed:
		return fmt.Errorf("%w: outcome state %q", ErrInvalid, r.State)
	}
	return nil
}

// finishTx moves a leased entry to r.State inside tx, queues its notice and writes its event.
func (s *Store) finishTx(ctx context.Context, tx *sql.Tx, r QueueResult) error {
	l, o := r.Lease, r.Outcome
	d := queueAttemptData{QueueID: l.ID, Host: o.Host, Answer: queueLine(o.Answer), TLS: o.TLS, Cause: o.Cause}
	var msgID string
	err := tx.QueryRowContext(ctx, queueFinishSQL(r.State), queueFinishArgs(l, o, r.State)...).Scan(&msgID, &d.Kind, &d.Recipient, &d.Attempt)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: queue entry %s, claim %d", ErrLeaseLost, l.ID, l.Token)
	}
	if err != nil {
		return err
	}
	if r.State == QueueQueued {
		next := o.Next.UTC()
		d.Next = &next
	} else if err := purgeQueueContent(ctx, tx, l.ID); err != nil {
		return err
	}
	if o.Notice != nil {
		if d.Notice, err = s.insertOutbound(ctx, tx, o.At, o.Notice, true); err != nil {
			return err
		}
	}
	return appendEvent(ctx, tx, event{At: o.At, Type: resultEvent(r.State), MessageID: msgID, Data: d})
}

// resultEvent is the ledger event of an outcome state.
func resultEvent(state string) string {
	switch state {
	case QueueDelivered:
		return EventRelayed
	case QueueQueued:
		return EventDeferred
	}
	return EventBounced
}

// queueFinishSQL updates a leased entry to state (finishTx purges the content of a final one).
func queueFinishSQL(state string) string {
	set := `state = ?, attempts = attempts + 1, updated_at = ?, last_host = ?, last_answer = ?`
	switch state {
	case QueueQueued:
		set += `, next_attempt_at = ?, delay_warned = max(delay_warned, ?)`
	}
	return `UPDATE queue SET ` + set + ` WHERE id = ? AND state = 'sending' AND lease = ?
		RETURNING message_id, kind, recipient, attempts`
}

func queueFinishArgs(l Lease, o Outcome, state string) []any {
	args := []any{state, formatTime(o.At), queueLine(o.Host), queueLine(o.Answer)}
	if state == QueueQueued {
		args = append(args, formatTime(o.Next), o.Notice != nil)
	}
	return append(args, l.ID, l.Token)
}

// purgeQueueContent deletes entry id's content: it is delivered or failed, and nothing sends it again.
func purgeQueueContent(ctx context.Context, tx *sql.Tx, id string) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM queue_contents WHERE id = ?`, id)
	return err
}
