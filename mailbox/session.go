// Sessions of the pickup page, kept in the store of record so a restart signs nobody out and every
// node serving the page sees the same sessions. The cookie is "S" + an ID (not secret) + a 256-bit
// secret from crypto/rand; only the secret's SHA-256 is stored, and it is compared in constant time.
// The form token (CSRF) of a session is derived from the secret, so it is not stored either. A session
// ends when idle too long, at its maximum age whatever happens, at sign-out, when its link is revoked
// or expires, when the practitioner's links are revoked for a disabled entry, when the account is
// locked out and when the authenticator is reset.

package mailbox

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Session kinds.
const (
	SessionPackage = "package" // signed in through a link with both factors: may see that link's package
	SessionEnrol   = "enrol"   // password and enrolment code given; the new authenticator awaits its first code
	SessionLinks   = "links"   // signed in with both factors to manage the links of packages sent or led
)

// DefaultSessionsPerPractitioner bounds the open sessions of one practitioner; the oldest ends first.
const DefaultSessionsPerPractitioner = 10

// ErrSessionNotFound: no live session has this cookie (unknown, wrong secret, ended, idle or too old).
var ErrSessionNotFound = errors.New("mailbox: no such session")

// Cookie layout: "S", the ID (10 bytes, base32), the secret (32 bytes, base64url), nothing between.
const (
	sessionIDLen     = 17
	sessionSecretLen = 43
	// SessionCookieLen is the length of a session cookie's value.
	SessionCookieLen = sessionIDLen + sessionSecretLen
)

// NewSession asks for a session.
type NewSession struct {
	Kind   string // SessionPackage, SessionEnrol or SessionLinks
	Mail   string
	LinkID string // SessionPackage: the link signed in through
	// Return is, for SessionEnrol, the token of the link enrolment started from ("" for none). It is
	// stored sealed under a key derived from the cookie's secret, so only the cookie's holder can read it.
	Return string
	Idle   time.Duration // ends after this long unused (required)
	Max    time.Duration // ends this long after creation whatever happens (required)
	Limit  int           // open sessions per practitioner; default DefaultSessionsPerPractitioner
}

// Session is a live session. It never carries the secret.
type Session struct {
	ID        string
	Kind      string
	Mail      string
	LinkID    string
	Reason    string
	Return    string // SessionEnrol: the link token to return to, "" for none
	CSRF      string // the form token of the session (derived from the cookie)
	Created   time.Time
	Seen      time.Time
	IdleUntil time.Time
	Expires   time.Time
}

// CreateSession opens a session at now and returns the cookie value that names it. When the
// practitioner already has Limit sessions, the oldest end.
func (s *Store) CreateSession(ctx context.Context, n NewSession, now time.Time) (string, *Session, error) {
	n.Mail = strings.ToLower(strings.TrimSpace(n.Mail))
	switch {
	case n.Kind != SessionPackage && n.Kind != SessionEnrol && n.Kind != SessionLinks:
		return "", nil, fmt.Errorf("%w: session kind %q", ErrInvalid, n.Kind)
	case !ValidAddress(n.Mail):
		return "", nil, fmt.Errorf("%w: a session needs the practitioner's mail address", ErrInvalid)
	case n.Kind == SessionPackage && n.LinkID == "":
		return "", nil, fmt.Errorf("%w: a package session needs its link", ErrInvalid)
	case n.Idle < time.Second || n.Max < time.Second:
		return "", nil, fmt.Errorf("%w: a session needs an idle time and a maximum age", ErrInvalid)
	}
	if n.Limit <= 0 {
		n.Limit = DefaultSessionsPerPractitioner
	}
	b := make([]byte, 10+32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	id := "S" + linkIDEncoding.EncodeToString(b[:10])
	secret := b[10:]
	cookie := id + base64.RawURLEncoding.EncodeToString(secret)
	hash := sessionHash(cookie[sessionIDLen:])
	now = now.UTC()
	ss := &Session{ID: id, Kind: n.Kind, Mail: n.Mail, LinkID: n.LinkID, Return: n.Return, CSRF: sessionCSRF(secret),
		Created: now, Seen: now, Expires: now.Add(n.Max)}
	ss.IdleUntil = minTime(now.Add(n.Idle), ss.Expires)
	var nonce, sealed []byte
	if n.Return != "" {
		var err error
		if nonce, sealed, err = sealReturn(secret, id, n.Return); err != nil {
			return "", nil, err
		}
	}
	err := s.pickupTx(ctx, func(tx *sql.Tx) error {
		// Over the limit: the practitioner's oldest sessions (dead ones first) end.
		_, err := tx.ExecContext(ctx, `DELETE FROM pickup_sessions WHERE id IN (SELECT id FROM pickup_sessions
			WHERE mail = ?1 ORDER BY (idle_until > ?2) DESC, created_at DESC LIMIT -1 OFFSET ?3)`,
			n.Mail, formatTime(now), n.Limit-1)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO pickup_sessions (id, secret_hash, kind, mail, link_id, return_nonce,
			return_sealed, idle_seconds, created_at, seen_at, idle_until, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, hash, n.Kind, n.Mail, nullString(n.LinkID), nonce, sealed, int64((n.Idle+time.Second-1)/time.Second),
			formatTime(now), formatTime(now), formatTime(ss.IdleUntil), formatTime(ss.Expires))
		return err
	})
	if err != nil {
		return "", nil, err
	}
	return cookie, ss, nil
}

// SessionByCookie returns the live session the cookie names at now and marks it used (so its idle
// time starts again; the mark is written at most every tenth of the idle time, so a session may end
// up to a tenth of its idle time early, never late). A malformed cookie, an unknown ID, a wrong
// secret and an ended session all give ErrSessionNotFound.
func (s *Store) SessionByCookie(ctx context.Context, cookie string, now time.Time) (*Session, error) {
	id, secretText, ok := splitSessionCookie(cookie)
	if !ok {
		return nil, ErrSessionNotFound
	}
	var ss Session
	var hash, nonce, sealed []byte
	var idle int64
	var link sql.NullString
	var created, seen, idleUntil, expires string
	err := s.rdb.QueryRowContext(ctx, `SELECT id, secret_hash, kind, mail, link_id, reason, return_nonce, return_sealed,
		idle_seconds, created_at, seen_at, idle_until, expires_at FROM pickup_sessions WHERE id = ?`, id).Scan(
		&ss.ID, &hash, &ss.Kind, &ss.Mail, &link, &ss.Reason, &nonce, &sealed, &idle, &created, &seen, &idleUntil, &expires)
	sum := sessionHash(secretText)
	if errors.Is(err, sql.ErrNoRows) {
		subtle.ConstantTimeCompare(sum, make([]byte, len(sum))) // the same work as a wrong secret
		return nil, ErrSessionNotFound
	}
	if err != nil {
		return nil, classify(err)
	}
	if subtle.ConstantTimeCompare(sum, hash) != 1 {
		return nil, ErrSessionNotFound
	}
	ss.LinkID = link.String
	for _, f := range []struct {
		s string
		t *time.Time
	}{{created, &ss.Created}, {seen, &ss.Seen}, {idleUntil, &ss.IdleUntil}, {expires, &ss.Expires}} {
		if *f.t, err = time.Parse(time.RFC3339Nano, f.s); err != nil {
			return nil, fmt.Errorf("%w: session %s: time %q", ErrCorrupt, id, f.s)
		}
	}
	now = now.UTC()
	if !now.Before(ss.IdleUntil) || !now.Before(ss.Expires) {
		s.EndSession(ctx, id) // tidy now rather than at the next purge; failing that, the purge does it
		return nil, ErrSessionNotFound
	}
	secret, _ := base64.RawURLEncoding.DecodeString(secretText)
	ss.CSRF = sessionCSRF(secret)
	if len(sealed) > 0 {
		r, err := openReturn(secret, id, nonce, sealed)
		if err != nil {
			return nil, fmt.Errorf("%w: session %s: return link: %v", ErrCorrupt, id, err)
		}
		ss.Return = r
	}
	idleFor := time.Duration(idle) * time.Second
	if now.Sub(ss.Seen) >= idleFor/10 {
		ss.Seen, ss.IdleUntil = now, minTime(now.Add(idleFor), ss.Expires)
		var n int64
		err := s.pickupTx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE pickup_sessions SET seen_at = ?, idle_until = ? WHERE id = ? AND idle_until > ?`,
				formatTime(now), formatTime(ss.IdleUntil), id, formatTime(now))
			if err == nil {
				n, _ = res.RowsAffected()
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if n != 1 {
			return nil, ErrSessionNotFound // ended meanwhile (sign-out, revocation)
		}
	}
	return &ss, nil
}

// SetSessionReason records the reason for access given in session id.
func (s *Store) SetSessionReason(ctx context.Context, id, reason string) error {
	return s.pickupTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE pickup_sessions SET reason = ? WHERE id = ?`, clip(queueLine(reason), maxEndReason), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrSessionNotFound
		}
		return nil
	})
}

// EndSession ends session id (sign-out); ending an ended session is not an error.
func (s *Store) EndSession(ctx context.Context, id string) error {
	return s.pickupTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM pickup_sessions WHERE id = ?`, id)
		return err
	})
}

// EndSessionsOf ends every session of mail and returns how many there were.
func (s *Store) EndSessionsOf(ctx context.Context, mail string) (int, error) {
	var n int64
	err := s.pickupTx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = endSessionsOfTx(ctx, tx, mail)
		return err
	})
	return int(n), err
}

func endSessionsOfTx(ctx context.Context, tx *sql.Tx, mail string) (int64, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM pickup_sessions WHERE mail = ?`, strings.ToLower(strings.TrimSpace(mail)))
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// endSessionsOfLinkTx ends the sessions opened through link id.
func endSessionsOfLinkTx(ctx context.Context, tx *sql.Tx, id string) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM pickup_sessions WHERE link_id = ?`, id)
	return err
}

// PurgeSessions deletes the sessions that have ended by idleness or age at now, and returns how many.
func (s *Store) PurgeSessions(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.pickupTx(ctx, func(tx *sql.Tx) error {
		t := formatTime(now)
		res, err := tx.ExecContext(ctx, `DELETE FROM pickup_sessions WHERE idle_until <= ? OR expires_at <= ?`, t, t)
		if err == nil {
			n, _ = res.RowsAffected()
		}
		return err
	})
	return int(n), err
}

// CountSessions returns how many sessions (live or not yet purged) mail has; "" counts everyone's.
func (s *Store) CountSessions(ctx context.Context, mail string) (int, error) {
	var n int
	q, args := `SELECT count(*) FROM pickup_sessions`, []any{}
	if mail != "" {
		q, args = q+` WHERE mail = ?`, []any{strings.ToLower(mail)}
	}
	err := s.rdb.QueryRowContext(ctx, q, args...).Scan(&n)
	return n, classify(err)
}

// splitSessionCookie takes a cookie value apart; ok is false for anything not shaped like one.
func splitSessionCookie(c string) (id, secret string, ok bool) {
	if len(c) != SessionCookieLen || c[0] != 'S' {
		return "", "", false
	}
	id, secret = c[:sessionIDLen], c[sessionIDLen:]
	if _, err := linkIDEncoding.DecodeString(id[1:]); err != nil {
		return "", "", false
	}
	if b, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(b) != 32 {
		return "", "", false
	}
	return id, secret, true
}

func sessionHash(secretText string) []byte {
	h := sha256.Sum256([]byte("cafgate/pickup-session/v1\x00" + secretText))
	return h[:]
}

// derive is HMAC-SHA256(secret, label).
func derive(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	return m.Sum(nil)
}

func sessionCSRF(secret []byte) string {
	return base64.RawURLEncoding.EncodeToString(derive(secret, "cafgate/pickup-csrf/v1"))
}

func returnAEAD(secret []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(derive(secret, "cafgate/pickup-return/v1"))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func sealReturn(secret []byte, id, token string) (nonce, sealed []byte, err error) {
	g, err := returnAEAD(secret)
	if err != nil {
		return nil, nil, err
	}
	nonce = make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	return nonce, g.Seal(nil, nonce, []byte(token), []byte(id)), nil
}

func openReturn(secret []byte, id string, nonce, sealed []byte) (string, error) {
	g, err := returnAEAD(secret)
	if err != nil {
		return "", err
	}
	if len(nonce) != g.NonceSize() {
		return "", errors.New("bad nonce")
	}
	b, err := g.Open(nil, nonce, sealed, []byte(id))
	return string(b), err
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
