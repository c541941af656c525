// The override notice: when a package went to some recipients under a child protection override, the
// episode's lead professional is told who overrode, when, the reason code, the episode and package
// references and which recipients, never the package's content nor the sender's stated reason (free
// text that may name the child; it stays sealed in the store). The notice goes through the local
// route or the outbound queue in the transaction that marks the lead told.

package mailbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"cafgate/policy"
)

// SendOverrideNotices tells the lead professional of each override not yet told, and returns how many
// notices it stored or queued. hostname is the gateway's (From and Message-ID).
func (s *Store) SendOverrideNotices(ctx context.Context, hostname string) (int, error) {
	untold, err := s.untoldOverrides(ctx)
	if err != nil || len(untold) == 0 {
		return 0, err
	}
	sent := 0
	var errs []error
	for _, o := range untold {
		err := s.queueTx(ctx, func(tx *sql.Tx) error { return s.overrideNoticeTx(ctx, tx, o, hostname) })
		switch {
		case err == nil:
			sent++
		case errors.Is(err, errNotDue):
		default:
			errs = append(errs, fmt.Errorf("override notice for %s: %w", o.MessageID, err))
		}
	}
	return sent, errors.Join(errs...)
}

// untoldOverrides lists the overrides whose lead has not been told (without their sealed reasons).
func (s *Store) untoldOverrides(ctx context.Context) ([]Override, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT message_id, episode_ref, sender, lead, recorded_at FROM overrides
		WHERE lead_told_at IS NULL ORDER BY recorded_at, message_id LIMIT 64`)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []Override
	for rows.Next() {
		var o Override
		var recorded string
		if err := rows.Scan(&o.MessageID, &o.Episode, &o.Sender, &o.Lead, &recorded); err != nil {
			return nil, classify(err)
		}
		if o.RecordedAt, err = parseTime(recorded); err != nil {
			return nil, fmt.Errorf("%w: override %s: recorded_at %q", ErrCorrupt, o.MessageID, recorded)
		}
		out = append(out, o)
	}
	return out, classify(rows.Err())
}

func (s *Store) overrideNoticeTx(ctx context.Context, tx *sql.Tx, o Override, hostname string) error {
	now := s.opt.Now()
	res, err := tx.ExecContext(ctx, `UPDATE overrides SET lead_told_at = ? WHERE message_id = ? AND lead_told_at IS NULL`,
		formatTime(now), o.MessageID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNotDue
	}
	rows, err := tx.QueryContext(ctx, `SELECT rcpt FROM decisions WHERE message_id = ? AND override = 1 ORDER BY ord`, o.MessageID)
	if err != nil {
		return err
	}
	var rcpts []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			rows.Close()
			return err
		}
		rcpts = append(rcpts, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	content, err := BuildOverrideNotice(hostname, o, rcpts, now)
	if err != nil {
		return err
	}
	_, err = s.insertOutbound(ctx, tx, now, &Outbound{MessageID: o.MessageID, Kind: KindDSN, About: "override/lead",
		Recipient: o.Lead, Content: content}, true)
	return err
}

// BuildOverrideNotice is the notice to o.Lead about the override on o.MessageID, which let rcpts
// receive the package beyond consent. It carries no package content and not the stated reason.
func BuildOverrideNotice(hostname string, o Override, rcpts []string, now time.Time) ([]byte, error) {
	for _, f := range append([]string{hostname, o.Lead, o.Sender, o.Episode, o.MessageID}, rcpts...) {
		if strings.ContainsAny(f, "\r\n") {
			return nil, fmt.Errorf("%w: a line break in an override notice field", ErrInvalid)
		}
	}
	if !ValidAddress(o.Lead) || hostname == "" {
		return nil, fmt.Errorf("%w: an override notice needs the lead's address and the gateway's host name", ErrInvalid)
	}
	id := make([]byte, 10)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	h := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }
	h("From: cafgate <postmaster@%s>", hostname)
	h("To: <%s>", o.Lead)
	h("Subject: Child protection override used in episode %s", o.Episode)
	h("Date: %s", now.Format(time.RFC1123Z))
	h("Message-ID: <override.%s@%s>", hex.EncodeToString(id), hostname)
	h("Auto-Submitted: auto-generated")
	h("X-Auto-Response-Suppress: All")
	h("X-Cafgate-Package: %s", o.MessageID)
	h("X-Cafgate-Reason-Code: %s", policy.ReasonOverride)
	h("MIME-Version: 1.0")
	h("Content-Type: text/plain; charset=utf-8")
	h("Content-Transfer-Encoding: 8bit")
	h("")
	h("You are the lead professional for CAF episode %s.", o.Episode)
	h("")
	h("%s sent a package in this episode under a child protection override: it went to", o.Sender)
	h("the recipients below beyond the consent the family gave.")
	h("")
	h("  Who overrode:   %s", o.Sender)
	h("  When:           %s", o.RecordedAt.UTC().Format("2 Jan 2006 15:04 MST"))
	h("  Reason code:    %s (child protection override, reason stated)", policy.ReasonOverride)
	h("  Episode:        %s", o.Episode)
	h("  Package:        %s", o.MessageID)
	h("  Received under the override:")
	for _, r := range rcpts {
		h("    %s", r)
	}
	h("")
	h("The reason the sender stated is kept, encrypted, in the gateway's record of this package and in")
	h("its tamper-evident ledger; it is not repeated here. Quote the package reference to your agency")
	h("administrator to see it. This notice holds no part of the package.")
	return b.Bytes(), nil
}
