// One group-commit transaction: every message row, its recipients and its "accepted" ledger event.

package mailbox

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"cafgate/mailbox/ledger"
)

// tsLayout is the fixed-width UTC timestamp stored in TEXT columns, so they also sort as text.
const tsLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(tsLayout) }

// writeBatch inserts batch in one BEGIN IMMEDIATE transaction on the writer connection and commits it.
// If COMMIT reports an error, it checks whether the rows are nonetheless there, so a caller is never told
// a committed message failed.
func (s *Store) writeBatch(batch []*pending) error {
	ctx := context.Background() // one caller giving up must not abort a transaction others share
	s.turn.acquire(ctx, true)   // never fails: the context does not end
	defer s.turn.release()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	at := s.opt.Now()
	led, err := ledger.NewAppender(ctx, tx) // the batch's events extend the ledger's Merkle tree
	if err != nil {
		tx.Rollback()
		return err
	}
	for _, p := range batch {
		if err := writePending(ctx, tx, led, p, at); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		if s.allPresent(ctx, batch) && s.eventsPresent(ctx, batch) {
			s.opt.Log.Warn("mailbox commit reported an error but the batch is stored", "size", len(batch), "err", err)
			return nil
		}
		return err
	}
	return nil
}

// insertRow writes one message, its recipients and its "accepted" event.
func insertRow(ctx context.Context, tx *sql.Tx, led *ledger.Appender, r *row, at time.Time) error {
	now := formatTime(at)
	res, err := tx.ExecContext(ctx, `INSERT INTO messages
		(id, sender, sender_dn, agency, via, remote_addr, received_at, accepted_at, size, digest, content_nonce, content)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.id, r.sender, r.senderDN, r.agency, r.via, r.remote, formatTime(r.receivedAt), now, r.size, r.digest, r.nonce, r.sealed)
	if err != nil {
		return fmt.Errorf("message %s: %w", r.id, err)
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("message %s: %w", r.id, err)
	}
	for i, rcpt := range r.recipients {
		_, err := tx.ExecContext(ctx, `INSERT INTO recipients (message_id, ord, rcpt, updated_at, msg_seq) VALUES (?, ?, ?, ?, ?)`,
			r.id, i, rcpt, now, seq)
		if err != nil {
			return fmt.Errorf("message %s recipient %d: %w", r.id, i, err)
		}
	}
	return appendAccepted(ctx, led, r, at)
}

// allPresent reports whether every message of batch is stored with the digest it was given.
func (s *Store) allPresent(ctx context.Context, batch []*pending) bool {
	ids := make([]any, 0, len(batch))
	want := make(map[string]string, len(batch))
	for _, p := range batch {
		if p.row != nil { // lone ledger events are checked by eventsPresent
			ids = append(ids, p.row.id)
			want[p.row.id] = p.row.digest
		}
	}
	if len(ids) == 0 {
		return true
	}
	q := `SELECT id, digest FROM messages WHERE id IN (?` + strings.Repeat(",?", len(ids)-1) + `)`
	rows, err := s.wdb.QueryContext(ctx, q, ids...)
	if err != nil {
		return false
	}
	defer rows.Close()
	found := 0
	for rows.Next() {
		var id, digest string
		if rows.Scan(&id, &digest) != nil || want[id] != digest {
			return false
		}
		found++
	}
	return rows.Err() == nil && found == len(ids)
}
