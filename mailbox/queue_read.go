// Reading the queue: listings and single entries (metadata), and an entry's content for an operator's
// drop notice. All on the read pool.

package mailbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

const queueColumns = `id, message_id, kind, about, env_from, recipient, domain, header_message_id, state,
	attempts, next_attempt_at, first_queued_at, updated_at, delay_warned, last_host, last_answer, size`

// scanQueueEntry scans queueColumns, then any extra destinations.
func scanQueueEntry(sc scanner, e *QueueEntry, extra ...any) error {
	var next, first, updated string
	dest := append([]any{&e.ID, &e.MessageID, &e.Kind, &e.About, &e.From, &e.Recipient, &e.Domain,
		&e.HeaderMessageID, &e.State, &e.Attempts, &next, &first, &updated, &e.DelayWarned, &e.LastHost,
		&e.LastAnswer, &e.Size}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return err
	}
	var err error
	if e.NextAttempt, err = parseQueueTime(next); err != nil {
		return err
	}
	if e.FirstQueued, err = parseQueueTime(first); err != nil {
		return err
	}
	e.Updated, err = parseQueueTime(updated)
	return err
}

func parseQueueTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: bad timestamp %q in the queue", ErrCorrupt, s)
	}
	return t, nil
}

// QueueFilter selects entries for QueueList.
type QueueFilter struct {
	State     string // only this state; empty for every state
	MessageID string // only entries for this accepted message
	Limit     int    // default 100, at most 10000
}

// QueueList returns entries in the order they were first queued.
func (s *Store) QueueList(ctx context.Context, f QueueFilter) ([]QueueEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 10000)
	q, args := `SELECT `+queueColumns+` FROM queue WHERE 1 = 1`, []any{}
	if f.State != "" {
		q, args = q+` AND state = ?`, append(args, f.State)
	}
	if f.MessageID != "" {
		q, args = q+` AND message_id = ?`, append(args, f.MessageID)
	}
	rows, err := s.rdb.QueryContext(ctx, q+` ORDER BY first_queued_at, rowid LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []QueueEntry
	for rows.Next() {
		var e QueueEntry
		if err := scanQueueEntry(rows, &e); err != nil {
			return nil, classifyQueue(err)
		}
		out = append(out, e)
	}
	return out, classify(rows.Err())
}

// QueueGet returns the entry with queue ID id; it wraps ErrNotFound when there is none.
func (s *Store) QueueGet(ctx context.Context, id string) (*QueueEntry, error) {
	var e QueueEntry
	err := scanQueueEntry(s.rdb.QueryRowContext(ctx, `SELECT `+queueColumns+` FROM queue WHERE id = ?`, id), &e)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: queue entry %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, classifyQueue(err)
	}
	return &e, nil
}

// QueueContent returns the decrypted content of entry id, or nil once it was delivered or failed
// (content is purged then) and for a package copy queued by recipe (built only when it is sent). It
// wraps ErrNotFound or ErrCorrupt.
func (s *Store) QueueContent(ctx context.Context, id string) ([]byte, error) {
	var form sql.NullString
	var nonce, sealed []byte
	err := s.rdb.QueryRowContext(ctx, `SELECT c.form, c.nonce, c.content FROM queue q
		LEFT JOIN queue_contents c ON c.id = q.id WHERE q.id = ?`, id).Scan(&form, &nonce, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: queue entry %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, classify(err)
	}
	if sealed == nil || form.String == formRecipe {
		return nil, nil
	}
	return s.seal.openQueue(id, formCopy, nonce, sealed)
}

// Certificate returns the certificate (DER) whose SHA-256 is sum, stored with a queued recipe that
// names it (Outbound.Certificates). A certificate not stored is ErrCorrupt: the recipe naming it
// cannot be built; one whose bytes no longer hash to sum is ErrCorrupt too.
func (s *Store) Certificate(ctx context.Context, sum []byte) ([]byte, error) {
	var der []byte
	err := s.rdb.QueryRowContext(ctx, `SELECT der FROM certificates WHERE sha256 = ?`, sum).Scan(&der)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: no stored certificate %x", ErrCorrupt, sum)
	}
	if err != nil {
		return nil, classify(err)
	}
	if got := sha256.Sum256(der); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("%w: the stored certificate %x does not match its hash", ErrCorrupt, sum)
	}
	return der, nil
}
