// What happens through a link: sign-ins (with the per-link and per-account failure counts behind the
// lock-outs) and pick-ups (a view of the package page, a download), each a ledger event written in the
// same transaction as the counters it changes. A download is counted against the link's limit
// atomically, so parallel downloads cannot exceed it.

package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"cafgate/mailbox/ledger"
)

// linkEventData is the data of "notified", "picked-up", "expired" and "revoked" events for a link; its
// common fields match ledger.LinkData. Never a document name (it may name the child), never content.
type linkEventData struct {
	Recipient string `json:"recipient"`
	Link      string `json:"link"`
	QueueID   string `json:"queue_id,omitempty"` // notified: the notification's queue entry
	Expires   string `json:"expires,omitempty"`  // notified: the link's expiry
	Remote    string `json:"remote,omitempty"`   // picked-up: the client address
	Action    string `json:"action,omitempty"`   // picked-up: view, download, download-all
	Document  int    `json:"document,omitempty"` // picked-up: the document's position in the package, from 1
	Digest    string `json:"digest,omitempty"`   // picked-up: SHA-256 of the bytes handed over, hex
	By        string `json:"by,omitempty"`       // revoked: who
	Reason    string `json:"reason,omitempty"`   // revoked: why; picked-up: the reason for access given
}

// pickupSignInData is the data of "signin" and "signin-failed" through the pickup page; its fields
// match ledger.SignInData plus the link.
type pickupSignInData struct {
	User   string `json:"user,omitempty"`
	Via    string `json:"via"`
	Remote string `json:"remote,omitempty"`
	Reason string `json:"reason,omitempty"`
	Link   string `json:"link,omitempty"`
}

// Pick-up actions.
const (
	PickupView        = "view"         // the package page was shown
	PickupDownload    = "download"     // one document was downloaded
	PickupDownloadAll = "download-all" // every document, as one archive
)

// Pickup is one view or download through a link.
type Pickup struct {
	Recipient string // the signed-in practitioner; must be the link's recipient
	Remote    string
	Action    string // PickupView, PickupDownload or PickupDownloadAll
	Document  int    // for PickupDownload: the document's position, from 1
	Digest    string // for downloads: SHA-256 of the bytes handed over, hex
	Reason    string // the reason for access the practitioner gave, if asked
}

// RecordPickup writes the "picked-up" event of p; a download also counts against the link's limit, in
// the same transaction. It refuses (ErrLinkRevoked, ErrLinkExpired, ErrLinkUsedUp) when the link may
// no longer be used, so nothing may be handed over unless it returned nil; a recipient other than the
// link's gives ErrLinkNotFound.
func (s *Store) RecordPickup(ctx context.Context, id string, p Pickup) error {
	switch p.Action {
	case PickupView, PickupDownload, PickupDownloadAll:
	default:
		return fmt.Errorf("%w: pick-up action %q", ErrInvalid, p.Action)
	}
	return s.pickupTx(ctx, func(tx *sql.Tx) error {
		now := s.opt.Now()
		l, err := linkForUpdate(ctx, tx, id)
		if err != nil {
			return err
		}
		if l.Recipient != p.Recipient {
			return fmt.Errorf("%w: %s was not issued to this practitioner", ErrLinkNotFound, id)
		}
		if err := l.Usable(now); err != nil && (p.Action != PickupView || errors.Is(err, ErrLinkRevoked) || errors.Is(err, ErrLinkExpired)) {
			return err
		}
		if p.Action != PickupView {
			res, err := tx.ExecContext(ctx, `UPDATE pickup_links SET downloads = downloads + 1
				WHERE id = ? AND state = 'active' AND downloads < max_downloads`, id)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return ErrLinkUsedUp
			}
		}
		return appendEvent(ctx, tx, event{At: now, Type: ledger.PickedUp, MessageID: l.MessageID, Data: linkEventData{
			Recipient: l.Recipient, Link: id, Remote: p.Remote, Action: p.Action, Document: p.Document,
			Digest: p.Digest, Reason: queueLine(p.Reason)}})
	})
}

// linkForUpdate reads the fields of a link the write paths check.
func linkForUpdate(ctx context.Context, tx *sql.Tx, id string) (*Link, error) {
	var l Link
	var expires string
	err := tx.QueryRowContext(ctx, `SELECT id, message_id, recipient, state, expires_at, max_downloads, downloads, failures
		FROM pickup_links WHERE id = ?`, id).Scan(&l.ID, &l.MessageID, &l.Recipient, &l.State, &expires,
		&l.MaxDownloads, &l.Downloads, &l.Failures)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrLinkNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	if l.Expires, err = time.Parse(time.RFC3339Nano, expires); err != nil {
		return nil, fmt.Errorf("%w: link %s: expiry %q", ErrCorrupt, id, expires)
	}
	return &l, nil
}

// PickupSignIn is one sign-in attempt on the pickup page, successful or not.
type PickupSignIn struct {
	Link      string // the link signed in through; "" for enrolment
	MessageID string // the link's message, for the event
	User      string // the mail address typed; recorded only when well formed
	Remote    string
	Via       string // default "pickup"
	OK        bool
	Reason    string // for a failure (the log's word: bad-credentials, bad-code, replayed-code…)
	// AccountLimit is how many failures in a row lock the account (User); 0 counts none.
	AccountLimit int
}

// SignInOutcome is what RecordPickupSignIn counted.
type SignInOutcome struct {
	LinkFailures  int  // the link's refused sign-ins since its last unlock (after this one)
	AccountLocked bool // the account is locked (now or already)
}

// RecordPickupSignIn writes a "signin" or "signin-failed" event and, in the same transaction, updates
// the counters: a failure adds one to the link's and the account's failures and locks the account
// when it reaches AccountLimit; a success marks the link opened and clears both counts.
func (s *Store) RecordPickupSignIn(ctx context.Context, e PickupSignIn) (SignInOutcome, error) {
	var out SignInOutcome
	if e.Via == "" {
		e.Via = "pickup"
	}
	user := ""
	if ValidAddress(e.User) && len(e.User) <= 254 {
		user = e.User
	}
	err := s.pickupTx(ctx, func(tx *sql.Tx) error {
		now := s.opt.Now()
		var err error
		if out, err = updateSignInCounters(ctx, tx, e, user, now); err != nil {
			return err
		}
		typ, reason := ledger.SignIn, ""
		if !e.OK {
			typ, reason = ledger.SignInFailed, queueLine(e.Reason)
		}
		return appendEvent(ctx, tx, event{At: now, Type: typ, MessageID: e.MessageID, Data: pickupSignInData{
			User: user, Via: e.Via, Remote: e.Remote, Reason: reason, Link: e.Link}})
	})
	return out, err
}

func updateSignInCounters(ctx context.Context, tx *sql.Tx, e PickupSignIn, user string, now time.Time) (SignInOutcome, error) {
	var out SignInOutcome
	if e.Link != "" {
		q := `UPDATE pickup_links SET failures = failures + 1 WHERE id = ? RETURNING failures`
		if e.OK {
			q = `UPDATE pickup_links SET failures = 0, opened_at = coalesce(opened_at, ?) WHERE id = ? RETURNING failures`
		}
		args := []any{e.Link}
		if e.OK {
			args = []any{formatTime(now), e.Link}
		}
		err := tx.QueryRowContext(ctx, q, args...).Scan(&out.LinkFailures)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return out, err
		}
	}
	if user == "" {
		return out, nil
	}
	if e.OK {
		_, err := tx.ExecContext(ctx, `DELETE FROM pickup_lockouts WHERE mail = ? AND locked_at IS NULL`, user)
		return out, err
	}
	if e.AccountLimit <= 0 {
		return out, nil
	}
	var locked sql.NullString
	err := tx.QueryRowContext(ctx, `INSERT INTO pickup_lockouts (mail, failures, last_at, locked_at)
		VALUES (?1, 1, ?2, CASE WHEN ?3 <= 1 THEN ?2 END)
		ON CONFLICT (mail) DO UPDATE SET failures = failures + 1, last_at = ?2,
			locked_at = coalesce(locked_at, CASE WHEN failures + 1 >= ?3 THEN ?2 END)
		RETURNING locked_at`, user, formatTime(now), e.AccountLimit).Scan(&locked)
	out.AccountLocked = locked.Valid
	if err == nil && out.AccountLocked {
		_, err = endSessionsOfTx(ctx, tx, user) // a locked account keeps no session
	}
	return out, err
}

// AccountLocked reports whether refused sign-ins have locked mail out of the pickup page.
func (s *Store) AccountLocked(ctx context.Context, mail string) (bool, error) {
	var n int
	err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM pickup_lockouts WHERE mail = ? AND locked_at IS NOT NULL`,
		mail).Scan(&n)
	return n > 0, classify(err)
}

// UnlockAccount lifts the lock-out of mail and clears its failures. It reports whether there was
// anything to clear.
func (s *Store) UnlockAccount(ctx context.Context, mail string) (bool, error) {
	var n int64
	err := s.pickupTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM pickup_lockouts WHERE mail = ?`, mail)
		if err == nil {
			n, _ = res.RowsAffected()
		}
		return err
	})
	return n > 0, err
}

// UnlockLink clears a link's refused sign-ins, lifting its lock-out.
func (s *Store) UnlockLink(ctx context.Context, id string) error {
	return s.pickupTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE pickup_links SET failures = 0 WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %s", ErrLinkNotFound, id)
		}
		return nil
	})
}
