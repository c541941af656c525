// Ending links: revocation by a person (the sender, the lead professional, an administrator: the
// caller has checked who may), automatic revocation when an episode's consent is withdrawn or a
// recipient's directory entry is disabled, and expiry. Each ended link gets its ledger event in the
// same transaction as its state change.

package mailbox

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"cafgate/mailbox/ledger"
)

// RevokedByGateway is the "by" of automatic revocations.
const RevokedByGateway = "gateway"

// maxEndReason bounds a stored revocation reason, in bytes.
const maxEndReason = 500

// RevokeLink revokes one active link. by names who revoked it (a mail address, "admin:NAME"), reason
// says why (required). An already ended link gives ErrLinkRevoked or ErrLinkExpired; an unknown one
// ErrLinkNotFound.
func (s *Store) RevokeLink(ctx context.Context, id, by, reason string) error {
	reason = queueLine(reason)
	if strings.TrimSpace(by) == "" || reason == "" {
		return fmt.Errorf("%w: a revocation names who revoked the link and why", ErrInvalid)
	}
	return s.pickupTx(ctx, func(tx *sql.Tx) error {
		var state string
		err := tx.QueryRowContext(ctx, `SELECT state FROM pickup_links WHERE id = ?`, id).Scan(&state)
		if err == sql.ErrNoRows {
			return fmt.Errorf("%w: %s", ErrLinkNotFound, id)
		}
		if err != nil {
			return err
		}
		switch state {
		case LinkRevoked:
			return fmt.Errorf("%w: %s was already revoked", ErrLinkRevoked, id)
		case LinkExpired:
			return fmt.Errorf("%w: %s has expired", ErrLinkExpired, id)
		}
		_, err = s.endLinks(ctx, tx, s.opt.Now(), LinkRevoked, queueLine(by), reason, `id = ?`, id)
		return err
	})
}

// RevokeLinksForEpisode revokes every active link to a package of the episode ref (automatic, when its
// consent is withdrawn). With tx nil it runs in a transaction of its own; otherwise inside tx, so the
// withdrawal and the revocations commit together. It returns how many links it revoked.
func (s *Store) RevokeLinksForEpisode(ctx context.Context, tx *sql.Tx, ref, reason string) (int, error) {
	return s.revokeWhere(ctx, tx, reason, nil, `(episode_ref = ? OR message_id IN
		(SELECT message_id FROM decisions WHERE episode_ref = ?))`, ref, ref)
}

// RevokeLinksForRecipient revokes every active link issued to mail (automatic, when the directory
// entry is disabled or removed) and ends every pickup session of mail. tx as for RevokeLinksForEpisode.
func (s *Store) RevokeLinksForRecipient(ctx context.Context, tx *sql.Tx, mail, reason string) (int, error) {
	mail = strings.ToLower(strings.TrimSpace(mail))
	return s.revokeWhere(ctx, tx, reason, func(tx *sql.Tx) error {
		_, err := endSessionsOfTx(ctx, tx, mail)
		return err
	}, `recipient = ?`, mail)
}

// revokeWhere revokes the active links matching where, then runs also (if any) in the same transaction.
func (s *Store) revokeWhere(ctx context.Context, tx *sql.Tx, reason string, also func(*sql.Tx) error, where string, args ...any) (int, error) {
	reason = queueLine(reason)
	if reason == "" {
		return 0, fmt.Errorf("%w: a revocation says why", ErrInvalid)
	}
	run := func(tx *sql.Tx) (int, error) {
		n, err := s.endLinks(ctx, tx, s.opt.Now(), LinkRevoked, RevokedByGateway, reason, where, args...)
		if err == nil && also != nil {
			err = also(tx)
		}
		return n, err
	}
	if tx != nil {
		return run(tx)
	}
	var n int
	err := s.pickupTx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = run(tx)
		return err
	})
	return n, err
}

// ExpireLinks marks every active link whose expiry has passed as expired, with an "expired" event
// each, and returns how many. The gateway runs it now and then; a link past its expiry is refused
// whether or not it has been marked.
func (s *Store) ExpireLinks(ctx context.Context) (int, error) {
	var n int
	err := s.pickupTx(ctx, func(tx *sql.Tx) error {
		now := s.opt.Now()
		var err error
		n, err = s.endLinks(ctx, tx, now, LinkExpired, "", "", `expires_at <= ?`, formatTime(now))
		return err
	})
	return n, err
}

// endLinks moves the active links matching where to state, writing one event each.
func (s *Store) endLinks(ctx context.Context, tx *sql.Tx, at time.Time, state, by, reason, where string, args ...any) (int, error) {
	type ended struct{ id, msg, rcpt string }
	rows, err := tx.QueryContext(ctx, `SELECT id, message_id, recipient FROM pickup_links
		WHERE state = 'active' AND `+where+` ORDER BY id`, args...)
	if err != nil {
		return 0, err
	}
	var list []ended
	for rows.Next() {
		var e ended
		if err := rows.Scan(&e.id, &e.msg, &e.rcpt); err != nil {
			rows.Close()
			return 0, err
		}
		list = append(list, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	typ := ledger.Revoked
	if state == LinkExpired {
		typ = ledger.Expired
	}
	for _, e := range list {
		_, err := tx.ExecContext(ctx, `UPDATE pickup_links SET state = ?, ended_at = ?, ended_by = ?, end_reason = ?
			WHERE id = ? AND state = 'active'`, state, formatTime(at), by, clip(reason, maxEndReason), e.id)
		if err != nil {
			return 0, err
		}
		err = appendEvent(ctx, tx, event{At: at, Type: typ, MessageID: e.msg, Data: linkEventData{
			Recipient: e.rcpt, Link: e.id, By: by, Reason: clip(reason, maxEndReason)}})
		if err != nil {
			return 0, err
		}
		if err := endSessionsOfLinkTx(ctx, tx, e.id); err != nil {
			return 0, err
		}
	}
	return len(list), nil
}

// clip cuts s to at most n bytes on a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// RevokeLinkAs revokes link id for the practitioner mail, who must have sent its package or lead its
// episode now; the check and the revocation are one transaction. by names mail (and where), for the
// ledger; reason is required. A link mail may not revoke gives ErrLinkNotFound, as an unknown one does,
// so nothing is told about links of others; an ended one ErrLinkRevoked or ErrLinkExpired.
func (s *Store) RevokeLinkAs(ctx context.Context, id, mail, by, reason string) error {
	mail = strings.ToLower(strings.TrimSpace(mail))
	reason = queueLine(reason)
	if !ValidAddress(mail) || strings.TrimSpace(by) == "" || reason == "" {
		return fmt.Errorf("%w: a revocation names who revoked the link and why", ErrInvalid)
	}
	return s.pickupTx(ctx, func(tx *sql.Tx) error {
		var state string
		var may bool
		err := tx.QueryRowContext(ctx, `SELECT l.state, (lower(m.sender) = ?2 OR coalesce(lower(e.lead), '') = ?2)
			FROM pickup_links l JOIN messages m ON m.id = l.message_id LEFT JOIN episodes e ON e.ref = l.episode_ref
			WHERE l.id = ?1`, id, mail).Scan(&state, &may)
		if err == sql.ErrNoRows || (err == nil && !may) {
			return fmt.Errorf("%w: %s (for %s)", ErrLinkNotFound, id, mail)
		}
		if err != nil {
			return err
		}
		switch state {
		case LinkRevoked:
			return fmt.Errorf("%w: %s was already revoked", ErrLinkRevoked, id)
		case LinkExpired:
			return fmt.Errorf("%w: %s has expired", ErrLinkExpired, id)
		}
		_, err = s.endLinks(ctx, tx, s.opt.Now(), LinkRevoked, queueLine(by), reason, `id = ?`, id)
		return err
	})
}
