// The delivery pipeline's rows: which accepted recipients still wait for their copy, and the one
// transaction that records what was done for one of them (state, ledger event, queued mail).

package mailbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"cafgate/mailbox/ledger"
	"cafgate/policy"
)

// Recipient states the delivery pipeline moves a recipient through. A recipient starts "pending".
const (
	StatePending   = "pending"   // accepted, not yet handled by the pipeline
	StateQueued    = "queued"    // an S/MIME copy is in the outbound queue
	StateDelivered = "delivered" // an S/MIME copy is in the recipient's mailbox hosted here
	StateNotified  = "notified"  // a notification with a one-time link is in the outbound queue
	StateRefused   = "refused"   // the decision refused this recipient, or the pipeline could not serve them
	StateWaiting   = "waiting"   // no route yet: no valid certificate and no pickup page (not finished)
)

// DeliveryWork is one accepted message's recipient that the pipeline has not handled yet, with the
// decision made for it at acceptance (Decided false when none was recorded: a crash came between
// the message's commit and its decisions').
type DeliveryWork struct {
	MessageID  string
	Recipient  string
	Sender     string
	Agency     string
	ReceivedAt time.Time
	Decided    bool
	Decision   policy.Decision
}

// pendingDeliveriesQuery walks recipients_pending (migration 0010) in acceptance order.
const pendingDeliveriesQuery = `SELECT r.message_id, r.rcpt, m.sender, m.agency, m.received_at,
			d.result, d.reason, d.allowed, d.withheld, d.override
		FROM recipients r JOIN messages m ON m.id = r.message_id
		LEFT JOIN decisions d ON d.message_id = r.message_id AND d.rcpt = r.rcpt
		WHERE r.state = ? ORDER BY r.msg_seq, r.ord LIMIT ?`

// PendingDeliveries returns up to limit recipients still pending, oldest message first.
func (s *Store) PendingDeliveries(ctx context.Context, limit int) ([]DeliveryWork, error) {
	ctx = uncancelled(ctx)
	rows, err := s.rdb.QueryContext(ctx, pendingDeliveriesQuery, StatePending, limit)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []DeliveryWork
	for rows.Next() {
		var w DeliveryWork
		var received string
		var result, reason, allowed, withheld sql.NullString
		var override sql.NullInt64
		if err := rows.Scan(&w.MessageID, &w.Recipient, &w.Sender, &w.Agency, &received, &result, &reason, &allowed, &withheld, &override); err != nil {
			return nil, classify(err)
		}
		if w.ReceivedAt, err = time.Parse(time.RFC3339Nano, received); err != nil {
			return nil, fmt.Errorf("%w: message %s: received_at %q", ErrCorrupt, w.MessageID, received)
		}
		if result.Valid {
			w.Decided = true
			w.Decision = policy.Decision{Recipient: w.Recipient, Result: policy.Result(result.String),
				Reason: policy.Reason(reason.String), Override: override.Int64 == 1}
			if err := json.Unmarshal([]byte(allowed.String), &w.Decision.Allowed); err != nil {
				return nil, fmt.Errorf("%w: decision of %s for %s: %v", ErrCorrupt, w.MessageID, w.Recipient, err)
			}
			if err := json.Unmarshal([]byte(withheld.String), &w.Decision.Withheld); err != nil {
				return nil, fmt.Errorf("%w: decision of %s for %s: %v", ErrCorrupt, w.MessageID, w.Recipient, err)
			}
		}
		out = append(out, w)
	}
	return out, classify(rows.Err())
}

// DeliveryStep is what the pipeline did for one recipient: its new state, the ledger event that
// records it, and the mail to queue (an S/MIME copy, or a notification), all committed together.
type DeliveryStep struct {
	MessageID string
	Recipient string
	State     string
	EventType string // a ledger type (ledger.Encrypted, ledger.Revoked...); empty for none
	EventData any
	Outbound  []*Outbound
	Hosted    *Delivery // a copy for a mailbox hosted here, stored with its "delivered" event
	// Link asks for a one-time link and its notification (built by Notice), queued for the relay, or
	// stored in the recipient's hosted mailbox when LinkHosted; with its "notified" event.
	Link       *LinkRequest
	Notice     BuildNotice
	LinkHosted bool
	At         time.Time
}

// FinishDelivery commits step in one transaction. A recipient no longer pending (another worker, or a
// run before a crash, got there first) makes it a no-op that reports done=false.
func (s *Store) FinishDelivery(ctx context.Context, step DeliveryStep) (done bool, err error) {
	ctx = uncancelled(ctx)
	err = s.queueTx(ctx, func(tx *sql.Tx) error {
		done, err = s.finishStepTx(ctx, tx, step)
		return err
	})
	return done, err
}

// FinishDeliveries commits several steps in one transaction (group commit: one durable commit for
// all of them), each exactly as FinishDelivery would; done[i] is step i's done. On error nothing of
// any step is stored (all stay pending) and done is all false: the caller may try them one by one.
func (s *Store) FinishDeliveries(ctx context.Context, steps []DeliveryStep) (done []bool, err error) {
	ctx = uncancelled(ctx)
	done = make([]bool, len(steps))
	err = s.queueTx(ctx, func(tx *sql.Tx) error {
		for i, step := range steps {
			d, err := s.finishStepTx(ctx, tx, step)
			if err != nil {
				return err
			}
			done[i] = d
		}
		return nil
	})
	if err != nil {
		clear(done)
	}
	return done, err
}

// finishStepTx records step within tx; done=false when the recipient is no longer pending.
func (s *Store) finishStepTx(ctx context.Context, tx *sql.Tx, step DeliveryStep) (done bool, err error) {
	res, err := tx.ExecContext(ctx, `UPDATE recipients SET state = ?, updated_at = ?
		WHERE message_id = ? AND rcpt = ? AND state = ?`,
		step.State, formatTime(step.At), step.MessageID, step.Recipient, StatePending)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	if err := openReportTx(ctx, tx, step.MessageID, step.At); err != nil { // the sender's report becomes due
		return false, err
	}
	if step.EventType != "" {
		if err := appendEvent(ctx, tx, event{At: step.At, Type: step.EventType, MessageID: step.MessageID, Data: step.EventData}); err != nil {
			return false, err
		}
	}
	if step.Link != nil {
		if err := s.notifyStep(ctx, tx, step); err != nil {
			return false, err
		}
	}
	if step.Hosted != nil {
		_, err := s.DeliverToMailboxTx(ctx, tx, step.At, step.Hosted)
		if err != nil && !errors.Is(err, ErrDuplicate) { // a duplicate was delivered before a crash
			return false, err
		}
	}
	if len(step.Outbound) > 0 {
		if _, err := s.EnqueueTx(ctx, tx, step.At, step.Outbound...); err != nil {
			return false, err
		}
	}
	return true, nil
}

// EncryptedEvent is the ledger data of a copy sealed to a recipient's certificate.
func EncryptedEvent(rcpt, certSHA256 string, sections []policy.Section) ledger.EncryptedData {
	d := ledger.EncryptedData{Recipient: rcpt, Cert: certSHA256}
	for _, s := range sections {
		d.Sections = append(d.Sections, string(s))
	}
	return d
}

// notifyStep issues step's one-time link and sends its notification: queued for the relay
// (NotifyTx), or, for a mailbox hosted here, stored in it with the "notified" event.
func (s *Store) notifyStep(ctx context.Context, tx *sql.Tx, step DeliveryStep) error {
	if !step.LinkHosted {
		_, err := s.NotifyTx(ctx, tx, step.At, *step.Link, step.Notice)
		return err
	}
	l, err := s.IssueLinkTx(ctx, tx, step.At, *step.Link)
	if err != nil {
		return err
	}
	o, err := step.Notice(l)
	if err != nil {
		return fmt.Errorf("mailbox: building the notification for link %s: %w", l.ID, err)
	}
	d := &Delivery{MessageID: l.MessageID, Recipient: l.Recipient, Content: o.Content, Key: "pickup/" + l.ID}
	if _, err := s.DeliverToMailboxTx(ctx, tx, step.At, d); err != nil {
		return err
	}
	return appendEvent(ctx, tx, event{At: step.At, Type: ledger.Notified, MessageID: l.MessageID,
		Data: linkEventData{Recipient: l.Recipient, Link: l.ID, Expires: formatTime(l.Expires)}})
}
