// Reading links: by token (the pickup page; the secret is checked in constant time), by ID and as a
// list (the CLI). Reads never change a link: opening the page (a GET, which mail scanners prefetch)
// consumes nothing.

package mailbox

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// linkColumns are the columns scanLink reads, from pickup_links l joined with messages m.
const linkColumns = `l.id, l.message_id, l.recipient, coalesce(l.episode_ref, ''), l.state, l.created_at,
	l.expires_at, l.max_downloads, l.downloads, l.failures, l.queue_id, coalesce(l.opened_at, ''),
	coalesce(l.ended_at, ''), l.ended_by, l.end_reason, m.agency, m.received_at`

const linkFrom = ` FROM pickup_links l JOIN messages m ON m.id = l.message_id`

func scanLink(sc scanner, l *Link, extra ...any) error {
	var created, expires, opened, ended, received string
	dest := append([]any{&l.ID, &l.MessageID, &l.Recipient, &l.Episode, &l.State, &created, &expires,
		&l.MaxDownloads, &l.Downloads, &l.Failures, &l.QueueID, &opened, &ended, &l.EndedBy, &l.EndReason,
		&l.Agency, &received}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return err
	}
	for _, f := range []struct {
		s string
		t *time.Time
	}{{created, &l.Created}, {expires, &l.Expires}, {opened, &l.Opened}, {ended, &l.Ended}, {received, &l.Received}} {
		if f.s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, f.s)
		if err != nil {
			return fmt.Errorf("%w: link %s: time %q", ErrCorrupt, l.ID, f.s)
		}
		*f.t = t
	}
	return nil
}

// OpenLink finds the link a token names and checks its secret in constant time. It returns the link
// whatever its state (the caller asks Usable); a malformed token, an unknown ID and a wrong secret all
// give ErrLinkNotFound. It changes nothing.
func (s *Store) OpenLink(ctx context.Context, token string) (*Link, error) {
	id, secret, ok := splitLinkToken(token)
	if !ok {
		return nil, ErrLinkNotFound
	}
	var l Link
	var hash []byte
	err := scanLink(s.rdb.QueryRowContext(ctx, `SELECT `+linkColumns+`, l.secret_hash`+linkFrom+` WHERE l.id = ?`, id), &l, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		// Hash anyway, so an unknown ID costs what a wrong secret does.
		sum := sha256.Sum256([]byte(secret))
		subtle.ConstantTimeCompare(sum[:], make([]byte, len(sum)))
		return nil, ErrLinkNotFound
	}
	if err != nil {
		return nil, classifyPickup(err)
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], hash) != 1 {
		return nil, ErrLinkNotFound
	}
	return &l, nil
}

// LinkByID returns a link's metadata: ErrLinkNotFound when there is none.
func (s *Store) LinkByID(ctx context.Context, id string) (*Link, error) {
	var l Link
	err := scanLink(s.rdb.QueryRowContext(ctx, `SELECT `+linkColumns+linkFrom+` WHERE l.id = ?`, id), &l)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrLinkNotFound, id)
	}
	if err != nil {
		return nil, classifyPickup(err)
	}
	return &l, nil
}

// LinkFilter selects links for ListLinks; zero fields select everything.
type LinkFilter struct {
	State     string // LinkActive, LinkRevoked or LinkExpired
	Recipient string
	MessageID string
	Episode   string
	Limit     int // default 1000
}

// ListLinks returns links, newest first.
func (s *Store) ListLinks(ctx context.Context, f LinkFilter) ([]Link, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"l.state", f.State}, {"l.recipient", strings.ToLower(f.Recipient)},
		{"l.message_id", f.MessageID}, {"l.episode_ref", f.Episode}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	q := `SELECT ` + linkColumns + linkFrom
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	q += " ORDER BY l.created_at DESC, l.id LIMIT ?"
	rows, err := s.rdb.QueryContext(ctx, q, append(args, f.Limit)...)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []Link
	for rows.Next() {
		var l Link
		if err := scanLink(rows, &l); err != nil {
			return nil, classifyPickup(err)
		}
		out = append(out, l)
	}
	return out, classify(rows.Err())
}

// LinksRevocableBy returns the links mail may revoke as a practitioner, newest first: those still
// active and not past their expiry at now, to packages mail sent or of episodes mail leads now.
func (s *Store) LinksRevocableBy(ctx context.Context, mail string, now time.Time, limit int) ([]Link, error) {
	mail = strings.ToLower(strings.TrimSpace(mail))
	if limit <= 0 {
		limit = 200
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+linkColumns+linkFrom+` LEFT JOIN episodes e ON e.ref = l.episode_ref
		WHERE l.state = 'active' AND l.expires_at > ? AND (lower(m.sender) = ? OR lower(e.lead) = ?)
		ORDER BY l.created_at DESC, l.id LIMIT ?`, formatTime(now), mail, mail, limit)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []Link
	for rows.Next() {
		var l Link
		if err := scanLink(rows, &l); err != nil {
			return nil, classifyPickup(err)
		}
		out = append(out, l)
	}
	return out, classify(rows.Err())
}
