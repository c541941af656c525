// A package's status for the HTTPS API: the message's metadata (never its content), each recipient's
// decision, and the delivery entries queued for it.

package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// PackageStatus is what the sender's agency may know of an accepted package.
type PackageStatus struct {
	Summary
	Decisions  []StoredDecision // in recipient order; empty when none were recorded
	Deliveries []QueueEntry     // KindMessage entries for this message, in the order they were queued
}

// PackageStatus returns the status of message id without reading its content; it wraps ErrNotFound.
func (s *Store) PackageStatus(ctx context.Context, id string) (*PackageStatus, error) {
	var st PackageStatus
	err := scanSummary(s.rdb.QueryRowContext(ctx, `SELECT `+summaryColumns+` FROM messages m WHERE m.id = ?`, id), &st.Summary)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, clipInput(id))
	}
	if err != nil {
		return nil, classify(err)
	}
	if st.Decisions, err = s.Decisions(ctx, id); err != nil {
		return nil, err
	}
	entries, err := s.QueueList(ctx, QueueFilter{MessageID: id, Limit: 10000})
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Kind == KindMessage {
			st.Deliveries = append(st.Deliveries, e)
		}
	}
	return &st, nil
}
