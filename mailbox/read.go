// Reading: one message with its content decrypted and its digest checked, and listings of metadata
// that never include content.

package mailbox

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Summary is a stored message's metadata; it never carries content.
type Summary struct {
	Seq        int64 // store order; ListOptions.After takes it as a cursor
	ID         string
	Sender     string
	SenderDN   string
	Agency     string
	Recipients []string // in submission order
	Via        string
	RemoteAddr string
	ReceivedAt time.Time
	AcceptedAt time.Time // when the writer's transaction began
	Size       int       // content bytes
	Digest     string    // SHA-256 of the content, lower-case hex
}

// Stored is a message read back, content decrypted and checked against its digest.
type Stored struct {
	Summary
	Content []byte
}

// ListOptions selects a page of summaries in store order.
type ListOptions struct {
	Limit int   // default 100, at most 1000
	After int64 // only messages with Seq > After; 0 from the start
}

const summaryColumns = `m.seq, m.id, m.sender, m.sender_dn, m.agency, m.via, m.remote_addr, m.received_at,
	m.accepted_at, m.size, m.digest,
	(SELECT json_group_array(r.rcpt ORDER BY r.ord) FROM recipients r WHERE r.message_id = m.id)`

// Message returns the message with id, decrypted. It wraps ErrNotFound when there is none and
// ErrCorrupt when the content does not authenticate or does not match its digest or size.
func (s *Store) Message(ctx context.Context, id string) (*Stored, error) {
	ctx = uncancelled(ctx)
	row := s.rdb.QueryRowContext(ctx, `SELECT `+summaryColumns+`, m.content_nonce, m.content
		FROM messages m WHERE m.id = ?`, id)
	var st Stored
	var nonce, sealed []byte
	err := scanSummary(row, &st.Summary, &nonce, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, classify(err)
	}
	if st.Content, err = s.unseal(&st.Summary, nonce, sealed); err != nil {
		return nil, err
	}
	return &st, nil
}

// MessageContent is Message's content alone: for the delivery pipeline and relay, which read each
// package they make copies of and need nothing else of it (Message also gathers its recipients). The
// content is what was accepted as message id, or ErrCorrupt: AES-GCM authenticates it, bound to the
// ID, and its size is checked. Its SHA-256 is not taken again here (a pass over every byte of every
// package read for delivery): the digest column is compared with the content by Message, which
// the API and the pickup page read through, and by `cafgate message verify`.
func (s *Store) MessageContent(ctx context.Context, id string) ([]byte, error) {
	ctx = uncancelled(ctx)
	var size int
	var nonce, sealed []byte
	err := s.rdb.QueryRowContext(ctx, `SELECT size, content_nonce, content FROM messages WHERE id = ?`, id).
		Scan(&size, &nonce, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, classify(err)
	}
	if sealed == nil {
		return nil, fmt.Errorf("%w: message %s has no stored content", ErrCorrupt, id)
	}
	plain, err := s.seal.open(id, nonce, sealed)
	if err != nil {
		return nil, err
	}
	if len(plain) != size {
		return nil, fmt.Errorf("%w: message %s content is not its recorded size", ErrCorrupt, id)
	}
	return plain, nil
}

// unseal decrypts content and checks it against the summary's size and digest.
func (s *Store) unseal(sum *Summary, nonce, sealed []byte) ([]byte, error) {
	if sealed == nil {
		return nil, fmt.Errorf("%w: message %s has no stored content", ErrCorrupt, sum.ID)
	}
	plain, err := s.seal.open(sum.ID, nonce, sealed)
	if err != nil {
		return nil, err
	}
	d := sha256.Sum256(plain)
	if len(plain) != sum.Size || !equalConstantTime(hex.EncodeToString(d[:]), sum.Digest) {
		return nil, fmt.Errorf("%w: message %s content does not match its recorded digest", ErrCorrupt, sum.ID)
	}
	return plain, nil
}

// List returns up to opt.Limit summaries with Seq > opt.After, in store order.
func (s *Store) List(ctx context.Context, opt ListOptions) ([]Summary, error) {
	if opt.Limit <= 0 {
		opt.Limit = 100
	}
	opt.Limit = min(opt.Limit, 1000)
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+summaryColumns+` FROM messages m
		WHERE m.seq > ? ORDER BY m.seq LIMIT ?`, opt.After, opt.Limit)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []Summary
	for rows.Next() {
		var sum Summary
		if err := scanSummary(rows, &sum); err != nil {
			return nil, classify(err)
		}
		out = append(out, sum)
	}
	return out, classify(rows.Err())
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanSummary scans summaryColumns, then any extra destinations.
func scanSummary(sc scanner, sum *Summary, extra ...any) error {
	var received, accepted, rcpts string
	dest := append([]any{&sum.Seq, &sum.ID, &sum.Sender, &sum.SenderDN, &sum.Agency, &sum.Via, &sum.RemoteAddr,
		&received, &accepted, &sum.Size, &sum.Digest, &rcpts}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return err
	}
	var err error
	if sum.ReceivedAt, err = time.Parse(time.RFC3339Nano, received); err != nil {
		return fmt.Errorf("message %s received_at: %w", sum.ID, err)
	}
	if sum.AcceptedAt, err = time.Parse(time.RFC3339Nano, accepted); err != nil {
		return fmt.Errorf("message %s accepted_at: %w", sum.ID, err)
	}
	if err := json.Unmarshal([]byte(rcpts), &sum.Recipients); err != nil {
		return fmt.Errorf("message %s recipients: %w", sum.ID, err)
	}
	return nil
}
