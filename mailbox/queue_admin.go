// Operator actions on a queue entry (`cafgate queue hold | retry | drop`): each checks the state, changes
// the row and writes its ledger event in one transaction. An entry being sent is left alone (ErrBusy)
// until its attempt ends or its lease lapses.

package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// queueAdminRow is what an operator action needs to know about the entry.
type queueAdminRow struct {
	state, msgID, kind, rcpt string
	next                     time.Time
}

// loadForAdmin reads entry id inside tx. A sending entry whose lease has lapsed is treated as queued,
// after recording the lapsed attempt; one still leased gives ErrBusy.
func (s *Store) loadForAdmin(ctx context.Context, tx *sql.Tx, id string, now time.Time) (*queueAdminRow, error) {
	var r queueAdminRow
	var next string
	err := tx.QueryRowContext(ctx, `SELECT state, message_id, kind, recipient, next_attempt_at FROM queue WHERE id = ?`, id).
		Scan(&r.state, &r.msgID, &r.kind, &r.rcpt, &next)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: queue entry %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	if r.next, err = parseQueueTime(next); err != nil {
		return nil, err
	}
	if r.state != QueueSending {
		return &r, nil
	}
	if r.next.After(now) {
		return nil, fmt.Errorf("%w: queue entry %s (until %s at the latest)", ErrBusy, id, r.next.Format(time.RFC3339))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE queue SET state = 'queued', attempts = attempts + 1, updated_at = ? WHERE id = ?`,
		formatTime(now), id); err != nil {
		return nil, err
	}
	r.state = QueueQueued
	return &r, appendEvent(ctx, tx, event{At: now, Type: EventLeaseExpired, MessageID: r.msgID, Data: queueAdminData{
		QueueID: id, Kind: r.kind, Recipient: r.rcpt,
		Reason: "the previous attempt did not finish; the receiving MTA may have the message already (same Message-ID)",
	}})
}

// Hold keeps a queued entry back until Release or RetryNow. Holding a held entry does nothing.
func (s *Store) Hold(ctx context.Context, id string) error {
	now := s.opt.Now()
	return s.queueTx(ctx, func(tx *sql.Tx) error {
		r, err := s.loadForAdmin(ctx, tx, id, now)
		if err != nil {
			return err
		}
		switch r.state {
		case QueueHeld:
			return nil
		case QueueQueued:
			return s.queueAdminUpdate(ctx, tx, id, r, now, `state = 'held'`, nil, EventHeld, "", "")
		}
		return fmt.Errorf("%w: queue entry %s is %s", ErrQueueState, id, r.state)
	})
}

// Release queues a held entry for an attempt now.
func (s *Store) Release(ctx context.Context, id string) error {
	now := s.opt.Now()
	return s.queueTx(ctx, func(tx *sql.Tx) error {
		r, err := s.loadForAdmin(ctx, tx, id, now)
		if err != nil {
			return err
		}
		if r.state != QueueHeld {
			return fmt.Errorf("%w: queue entry %s is %s, not held", ErrQueueState, id, r.state)
		}
		return s.queueAdminUpdate(ctx, tx, id, r, now, `state = 'queued', next_attempt_at = ?`, []any{formatTime(now)}, EventReleased, "", "")
	})
}

// RetryNow makes a queued entry due now (a held one is released). Delivered and failed entries stay so.
func (s *Store) RetryNow(ctx context.Context, id string) error {
	now := s.opt.Now()
	return s.queueTx(ctx, func(tx *sql.Tx) error {
		r, err := s.loadForAdmin(ctx, tx, id, now)
		if err != nil {
			return err
		}
		ev := EventRetryRequested
		switch r.state {
		case QueueHeld:
			ev = EventReleased
		case QueueQueued:
		default:
			return fmt.Errorf("%w: queue entry %s is %s", ErrQueueState, id, r.state)
		}
		return s.queueAdminUpdate(ctx, tx, id, r, now, `state = 'queued', next_attempt_at = ?`, []any{formatTime(now)}, ev, "", "")
	})
}

// Drop gives up a queued or held entry for reason (required): failed, content purged, "dropped" event,
// and notice (the failure DSN to the sender, or nil) queued in the same transaction.
func (s *Store) Drop(ctx context.Context, id, reason string, notice *Outbound) error {
	reason = queueLine(reason)
	if reason == "" {
		return fmt.Errorf("%w: dropping queue entry %s needs a reason", ErrInvalid, id)
	}
	now := s.opt.Now()
	return s.queueTx(ctx, func(tx *sql.Tx) error {
		r, err := s.loadForAdmin(ctx, tx, id, now)
		if err != nil {
			return err
		}
		if r.state != QueueQueued && r.state != QueueHeld {
			return fmt.Errorf("%w: queue entry %s is %s", ErrQueueState, id, r.state)
		}
		noticeID := ""
		if notice != nil {
			if noticeID, err = s.insertOutbound(ctx, tx, now, notice, true); err != nil {
				return err
			}
		}
		if err := purgeQueueContent(ctx, tx, id); err != nil {
			return err
		}
		return s.queueAdminUpdate(ctx, tx, id, r, now, `state = 'failed', last_host = '', last_answer = ?`,
			[]any{queueLine("dropped by an operator: " + reason)}, EventDropped, reason, noticeID)
	})
}

// queueAdminUpdate applies set (with its args) to entry id and writes the operator event.
func (s *Store) queueAdminUpdate(ctx context.Context, tx *sql.Tx, id string, r *queueAdminRow, now time.Time,
	set string, args []any, evType, reason, notice string) error {
	args = append(append(args, formatTime(now)), id)
	if _, err := tx.ExecContext(ctx, `UPDATE queue SET `+set+`, updated_at = ? WHERE id = ?`, args...); err != nil {
		return err
	}
	return appendEvent(ctx, tx, event{At: now, Type: evType, MessageID: r.msgID, Data: queueAdminData{
		QueueID: id, Kind: r.kind, Recipient: r.rcpt, Reason: reason, Notice: notice,
	}})
}
