// One-time links to the pickup page: a link is good for one package and one recipient, until it
// expires, is revoked or its downloads are used up. Its token is an ID (not secret) and a 256-bit
// secret from crypto/rand; only the secret's SHA-256 is stored, and it is compared in constant time.
// Issuing a link, queueing its notification and the "notified" event commit in one transaction.

package mailbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"cafgate/mailbox/ledger"
)

// Link states.
const (
	LinkActive  = "active"  // can be opened (unless past its expiry, used up or locked)
	LinkRevoked = "revoked" // withdrawn by a person or automatically
	LinkExpired = "expired" // its lifetime passed (marked by ExpireLinks)
)

// Defaults of a LinkRequest.
const (
	DefaultLinkLifetime     = 7 * 24 * time.Hour
	DefaultLinkMaxDownloads = 10
)

// Errors of the link operations, tested with errors.Is.
var (
	// ErrLinkNotFound: no link has this token or ID (or the token's secret does not match).
	ErrLinkNotFound = errors.New("mailbox: no such link")
	// ErrLinkExpired: the link's lifetime has passed.
	ErrLinkExpired = errors.New("mailbox: link expired")
	// ErrLinkRevoked: the link was revoked.
	ErrLinkRevoked = errors.New("mailbox: link revoked")
	// ErrLinkUsedUp: every download the link allows has been made.
	ErrLinkUsedUp = errors.New("mailbox: link has no downloads left")
)

// Link is a one-time link's metadata; it never carries the secret.
type Link struct {
	ID           string
	MessageID    string
	Recipient    string
	Episode      string // "" when the message named no known episode
	State        string
	Created      time.Time
	Expires      time.Time
	MaxDownloads int
	Downloads    int
	Failures     int // refused sign-ins through the link since the last unlock
	QueueID      string
	Opened       time.Time // zero until the first sign-in
	Ended        time.Time // when revoked or expired
	EndedBy      string
	EndReason    string
	// From the message: the sending agency and when the package was received.
	Agency   string
	Received time.Time
}

// Usable returns nil when the link may be signed in to and downloaded from at now, else
// ErrLinkRevoked, ErrLinkExpired or ErrLinkUsedUp.
func (l *Link) Usable(now time.Time) error {
	switch {
	case l.State == LinkRevoked:
		return ErrLinkRevoked
	case l.State == LinkExpired || !now.Before(l.Expires):
		return ErrLinkExpired
	case l.Downloads >= l.MaxDownloads:
		return ErrLinkUsedUp
	}
	return nil
}

// LinkRequest asks for a one-time link for one recipient of an accepted message.
type LinkRequest struct {
	MessageID    string
	Recipient    string
	Episode      string        // optional: taken from the recipient's decision when empty
	Lifetime     time.Duration // default DefaultLinkLifetime
	MaxDownloads int           // default DefaultLinkMaxDownloads
}

// IssuedLink is a new link with its token. The token exists only here: the store keeps its hash.
type IssuedLink struct {
	Link
	Token string
}

// Token layout: the link ID, then the secret (base64url, no padding) with nothing between.
const (
	linkIDLen     = 17 // "L" + 16 base32 characters (80 bits)
	linkSecretLen = 43 // 32 bytes base64url
	// LinkTokenLen is the length of a link token.
	LinkTokenLen = linkIDLen + linkSecretLen
)

var linkIDEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// newLinkToken returns a fresh link ID, secret and the secret's hash.
func newLinkToken() (id, secret string, hash []byte, err error) {
	b := make([]byte, 10+32)
	if _, err := rand.Read(b); err != nil {
		return "", "", nil, err
	}
	id = "L" + linkIDEncoding.EncodeToString(b[:10])
	secret = base64.RawURLEncoding.EncodeToString(b[10:])
	h := sha256.Sum256([]byte(secret))
	return id, secret, h[:], nil
}

// splitLinkToken takes a token apart; ok is false for anything not shaped like one.
func splitLinkToken(token string) (id, secret string, ok bool) {
	if len(token) != LinkTokenLen || token[0] != 'L' {
		return "", "", false
	}
	id, secret = token[:linkIDLen], token[linkIDLen:]
	if _, err := linkIDEncoding.DecodeString(id[1:]); err != nil {
		return "", "", false
	}
	if b, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(b) != 32 {
		return "", "", false
	}
	return id, secret, true
}

// ValidLinkID reports whether id is shaped like a link ID (for the CLI's arguments).
func ValidLinkID(id string) bool {
	if len(id) != linkIDLen || id[0] != 'L' {
		return false
	}
	_, err := linkIDEncoding.DecodeString(id[1:])
	return err == nil
}

// IssueLinkTx creates a link inside tx at time at. It checks that the message exists and names the
// recipient. The returned token must reach the recipient (the notification) and nobody else.
func (s *Store) IssueLinkTx(ctx context.Context, tx *sql.Tx, at time.Time, req LinkRequest) (*IssuedLink, error) {
	req, err := checkLinkRequest(req)
	if err != nil {
		return nil, err
	}
	var agency, received string
	err = tx.QueryRowContext(ctx, `SELECT m.agency, m.received_at FROM recipients r JOIN messages m ON m.id = r.message_id
		WHERE r.message_id = ? AND r.rcpt = ?`, req.MessageID, req.Recipient).Scan(&agency, &received)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: message %s has no recipient %s", ErrNotFound, req.MessageID, req.Recipient)
	}
	if err != nil {
		return nil, classify(err)
	}
	if req.Episode == "" {
		if req.Episode, err = decisionEpisode(ctx, tx, req.MessageID, req.Recipient); err != nil {
			return nil, err
		}
	}
	id, secret, hash, err := newLinkToken()
	if err != nil {
		return nil, err
	}
	l := Link{ID: id, MessageID: req.MessageID, Recipient: req.Recipient, Episode: req.Episode, State: LinkActive,
		Created: at.UTC(), Expires: at.Add(req.Lifetime).UTC(), MaxDownloads: req.MaxDownloads, Agency: agency}
	l.Received, _ = time.Parse(time.RFC3339Nano, received)
	_, err = tx.ExecContext(ctx, `INSERT INTO pickup_links (id, secret_hash, message_id, recipient, episode_ref,
		state, created_at, expires_at, max_downloads) VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?)`,
		id, hash, l.MessageID, l.Recipient, nullString(l.Episode), formatTime(l.Created), formatTime(l.Expires), l.MaxDownloads)
	if err != nil {
		return nil, classify(err)
	}
	return &IssuedLink{Link: l, Token: id + secret}, nil
}

// checkLinkRequest validates req and fills its defaults.
func checkLinkRequest(req LinkRequest) (LinkRequest, error) {
	req.Recipient = strings.ToLower(strings.TrimSpace(req.Recipient))
	if req.MessageID == "" || !ValidAddress(req.Recipient) {
		return req, fmt.Errorf("%w: a link needs a message ID and a valid recipient", ErrInvalid)
	}
	if req.Lifetime < 0 || req.MaxDownloads < 0 {
		return req, fmt.Errorf("%w: link lifetime and download limit must not be negative", ErrInvalid)
	}
	if req.Lifetime == 0 {
		req.Lifetime = DefaultLinkLifetime
	}
	if req.MaxDownloads == 0 {
		req.MaxDownloads = DefaultLinkMaxDownloads
	}
	return req, nil
}

// decisionEpisode returns the episode of the recipient's decision, or "".
func decisionEpisode(ctx context.Context, tx *sql.Tx, messageID, rcpt string) (string, error) {
	var ref sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT episode_ref FROM decisions WHERE message_id = ? AND rcpt = ?`,
		messageID, rcpt).Scan(&ref)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", classify(err)
	}
	return ref.String, nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// BuildNotice makes the notification for a new link; it is called inside the transaction and must not
// block. The Outbound's MessageID is set to the link's message.
type BuildNotice func(l *IssuedLink) (*Outbound, error)

// Notify issues a link for req, builds its notification with build, queues it and writes the
// "notified" event, all in one transaction of its own. It returns the link (without its token).
func (s *Store) Notify(ctx context.Context, req LinkRequest, build BuildNotice) (*Link, error) {
	var out *Link
	err := s.pickupTx(ctx, func(tx *sql.Tx) error {
		l, err := s.NotifyTx(ctx, tx, s.opt.Now(), req, build)
		out = l
		return err
	})
	return out, err
}

// NotifyTx is Notify inside the caller's transaction (the pipeline's step for one recipient).
func (s *Store) NotifyTx(ctx context.Context, tx *sql.Tx, at time.Time, req LinkRequest, build BuildNotice) (*Link, error) {
	l, err := s.IssueLinkTx(ctx, tx, at, req)
	if err != nil {
		return nil, err
	}
	o, err := build(l)
	if err != nil {
		return nil, fmt.Errorf("mailbox: building the notification for link %s: %w", l.ID, err)
	}
	o.MessageID = l.MessageID
	if o.About == "" {
		o.About = "pickup/" + l.ID
	}
	ids, err := s.EnqueueTx(ctx, tx, at, o)
	if err != nil {
		return nil, err
	}
	l.QueueID = ids[0]
	if _, err := tx.ExecContext(ctx, `UPDATE pickup_links SET queue_id = ? WHERE id = ?`, l.QueueID, l.ID); err != nil {
		return nil, classify(err)
	}
	err = appendEvent(ctx, tx, event{At: at, Type: ledger.Notified, MessageID: l.MessageID, Data: linkEventData{
		Recipient: l.Recipient, Link: l.ID, QueueID: l.QueueID, Expires: formatTime(l.Expires),
	}})
	if err != nil {
		return nil, err
	}
	link := l.Link
	return &link, nil
}

// pickupTx runs fn in one write transaction on the writer connection and commits.
func (s *Store) pickupTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.wdb == nil {
		return fmt.Errorf("%w: store opened read-only", ErrUnavailable)
	}
	select {
	case <-s.closed:
		return fmt.Errorf("%w: store closed", ErrUnavailable)
	default:
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return classifyPickup(err)
	}
	return classify(tx.Commit())
}

// classifyPickup is classify for errors that may already be one of the store's own sentinels.
func classifyPickup(err error) error {
	for _, known := range []error{ErrLinkNotFound, ErrLinkExpired, ErrLinkRevoked, ErrLinkUsedUp, ErrNotFound,
		ErrInvalid, ErrCorrupt, ErrTOTPRefused, ErrTOTPNotEnrolled, ErrEnrolmentRefused} {
		if errors.Is(err, known) {
			return err
		}
	}
	return classify(err)
}
