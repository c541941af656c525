// The delivery hold: an operator's switch that stops the delivery pipeline from taking pending
// recipients (sealing copies, queueing them, storing them in hosted mailboxes) while intake goes on
// accepting. Kept in the settings table (name "delivery_held"), so it survives restarts and a
// `cafgate queue pause` beside a running gateway is seen at the pipeline's next round.

package mailbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"
)

const deliveryHeldSetting = "delivery_held"

// DeliveryHold is the state of the hold: who set it, when and why.
type DeliveryHold struct {
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// HoldDelivery sets the hold (replacing who/why/when if it was already set).
func (s *Store) HoldDelivery(ctx context.Context, h DeliveryHold) error {
	if s.wdb == nil {
		return errors.New("mailbox: the store is read-only")
	}
	h.Since = h.Since.UTC()
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	_, err = s.wdb.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES (?, ?)
		ON CONFLICT(name) DO UPDATE SET value = excluded.value`, deliveryHeldSetting, string(b))
	return classify(err)
}

// ReleaseDelivery lifts the hold; it reports whether one was set.
func (s *Store) ReleaseDelivery(ctx context.Context) (bool, error) {
	if s.wdb == nil {
		return false, errors.New("mailbox: the store is read-only")
	}
	r, err := s.wdb.ExecContext(ctx, `DELETE FROM settings WHERE name = ?`, deliveryHeldSetting)
	if err != nil {
		return false, classify(err)
	}
	n, err := r.RowsAffected()
	return n > 0, err
}

// DeliveryHeld reports the hold; ok is false when delivery runs.
func (s *Store) DeliveryHeld(ctx context.Context) (h DeliveryHold, ok bool, err error) {
	var v string
	err = s.rdb.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, deliveryHeldSetting).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return DeliveryHold{}, false, nil
	}
	if err != nil {
		return DeliveryHold{}, false, classify(err)
	}
	if err := json.Unmarshal([]byte(v), &h); err != nil {
		// A value the gateway cannot read still holds: fail closed.
		return DeliveryHold{Reason: "unreadable hold setting"}, true, nil
	}
	return h, true, nil
}

// Held is DeliveryHeld for the pipeline's Options.Held.
func (s *Store) Held(ctx context.Context) (bool, error) {
	_, ok, err := s.DeliveryHeld(ctx)
	return ok, err
}
