// The sender's delivery report (receipt) for each package: once every recipient has a final outcome
// (delivered to the mailbox here, accepted by the recipient's mail server, sent a link notification,
// refused, or failed for good), or at the latest Deadline after acceptance, the sender is sent one
// report in plain words naming each refused recipient and each one from whom sections were withheld,
// and why, with each recipient's outcome and the ledger's inclusion proofs of the package's events.
// The report goes through the local route (into the sender's hosted INBOX) or the outbound queue, in
// the transaction that marks it sent and appends its "receipt" event.

package mailbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"cafgate/mailbox/ledger"
	"cafgate/policy"
)

// ReportOptions say how reports are sent.
type ReportOptions struct {
	Hostname string // the gateway's host name (report From, Reporting-MTA, Message-ID)
	// Deadline is the longest a sender waits for the report: after it the report is sent with the
	// outcomes known so far (the rest "still being tried"). Default 1h.
	Deadline time.Duration
	// FirstAfter: when some recipients were refused or had sections withheld and the full report is
	// not sent this long after acceptance, a first report tells the sender of them now. Default 2m.
	FirstAfter time.Duration
	Limit      int // reports per call; default 32
	// NoCheckpoint skips signing a checkpoint before the reports (the caller signed one recently). A
	// report waits until a checkpoint covers the events it proves, or until Deadline.
	NoCheckpoint bool
}

// errNotDue: the package gained an unfinished recipient between the look and the transaction.
var errNotDue = errors.New("mailbox: report not due")

// openReportTx records, inside the pipeline's transaction, that messageID is to be reported on.
func openReportTx(ctx context.Context, tx *sql.Tx, messageID string, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO package_reports (message_id, created_at) VALUES (?, ?)
		ON CONFLICT (message_id) DO NOTHING`, messageID, formatTime(at))
	return err
}

// SendReports sends the reports that are due and returns how many it sent. A failure to build or
// store one report leaves it due (it is tried again next time) and is returned after the others.
func (s *Store) SendReports(ctx context.Context, opt ReportOptions) (int, error) {
	ctx = uncancelled(ctx)
	if opt.Deadline <= 0 {
		opt.Deadline = time.Hour
	}
	if opt.Limit <= 0 {
		opt.Limit = 32
	}
	if opt.FirstAfter <= 0 {
		opt.FirstAfter = 2 * time.Minute
	}
	now := s.opt.Now()
	due, err := dueReports(ctx, s.rdb, now.Add(-opt.Deadline), opt.Limit)
	if err != nil {
		return 0, err
	}
	sent, fullErr := s.sendFullReports(ctx, due, now, opt)
	first, err := dueFirstReports(ctx, s.rdb, now.Add(-opt.FirstAfter), opt.Limit)
	if err != nil {
		return sent, errors.Join(fullErr, err)
	}
	errs := []error{fullErr}
	for _, id := range first {
		err := s.queueTx(ctx, func(tx *sql.Tx) error { return s.sendFirstReportTx(ctx, tx, id, now, opt) })
		switch {
		case err == nil:
			sent++
		case errors.Is(err, errNotDue):
		default:
			errs = append(errs, fmt.Errorf("first report on %s: %w", id, err))
		}
	}
	return sent, errors.Join(errs...)
}

// sendFullReports sends the full reports on due.
func (s *Store) sendFullReports(ctx context.Context, due []string, now time.Time, opt ReportOptions) (int, error) {
	if len(due) == 0 {
		return 0, nil
	}
	if !opt.NoCheckpoint && s.led != nil {
		// Sign the tree now so the proofs cover the package's events; a failure only means fewer proofs.
		if _, err := s.Checkpoint(ctx); err != nil {
			s.opt.Log.Warn("report: ledger checkpoint", "err", err)
		}
	}
	sent := 0
	var errs []error
	for _, id := range due {
		err := s.queueTx(ctx, func(tx *sql.Tx) error {
			return s.sendReportTx(ctx, tx, id, now, opt)
		})
		switch {
		case err == nil:
			sent++
		case errors.Is(err, errNotDue):
		default:
			errs = append(errs, fmt.Errorf("report on %s: %w", id, err))
		}
	}
	return sent, errors.Join(errs...)
}

// dueFirstReports lists packages accepted before cutoff, with a refused or partial recipient, whose
// full report and first report are both unsent.
func dueFirstReports(ctx context.Context, q querier, cutoff time.Time, limit int) ([]string, error) {
	return queryIDs(ctx, q, `SELECT r.message_id FROM package_reports r JOIN messages m ON m.id = r.message_id
		WHERE r.sent_at IS NULL AND r.first_sent_at IS NULL AND m.received_at <= ?
			AND EXISTS (SELECT 1 FROM decisions d WHERE d.message_id = r.message_id AND d.result != ?)
		ORDER BY r.created_at LIMIT ?`, formatTime(cutoff), string(policy.DeliverAll), limit)
}

// sendFirstReportTx sends the first report on messageID inside tx, unless every recipient already has
// a final outcome (the full report then says it all).
func (s *Store) sendFirstReportTx(ctx context.Context, tx *sql.Tx, messageID string, now time.Time, opt ReportOptions) error {
	in, pending, err := receiptInput(ctx, tx, messageID)
	if err != nil {
		return err
	}
	if pending == 0 {
		return errNotDue
	}
	in.Hostname, in.Date, in.First = opt.Hostname, now, true
	content, err := ledger.BuildReceipt(in)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE package_reports SET first_sent_at = ?
		WHERE message_id = ? AND sent_at IS NULL AND first_sent_at IS NULL`, formatTime(now), messageID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNotDue
	}
	qid, err := s.insertOutbound(ctx, tx, now, &Outbound{MessageID: messageID, Kind: KindDSN, About: "receipt/first",
		Recipient: in.Sender, Content: content}, true)
	if err != nil {
		return err
	}
	return appendEvent(ctx, tx, event{At: now, Type: ledger.Receipt, MessageID: messageID, Data: ledger.ReceiptData{
		Sender: in.Sender, QueueID: qid, Outcomes: len(in.Outcomes) - pending, Pending: pending}})
}

// dueReports lists unsent reports whose package is finished or older than cutoff.
func dueReports(ctx context.Context, q querier, cutoff time.Time, limit int) ([]string, error) {
	return queryIDs(ctx, q, `SELECT r.message_id FROM package_reports r JOIN messages m ON m.id = r.message_id
		WHERE r.sent_at IS NULL AND (m.received_at <= ? OR (
			NOT EXISTS (SELECT 1 FROM recipients x WHERE x.message_id = r.message_id AND x.state IN (?, ?))
			AND NOT EXISTS (SELECT 1 FROM queue u WHERE u.message_id = r.message_id AND u.kind = ?
				AND u.state IN (?, ?, ?))))
		ORDER BY r.created_at LIMIT ?`, formatTime(cutoff), StatePending, StateWaiting, KindMessage,
		QueueQueued, QueueSending, QueueHeld, limit)
}

// sendReportTx builds and routes the report on messageID inside tx and marks it sent.
func (s *Store) sendReportTx(ctx context.Context, tx *sql.Tx, messageID string, now time.Time, opt ReportOptions) error {
	in, pending, err := receiptInput(ctx, tx, messageID)
	if err != nil {
		return err
	}
	if pending > 0 && in.SubmittedAt.After(now.Add(-opt.Deadline)) {
		return errNotDue
	}
	in.Hostname, in.Date, in.LedgerKey = opt.Hostname, now, s.LedgerKey()
	if in.Proofs, err = reportProofs(ctx, tx, messageID, in.Outcomes); err != nil {
		return err
	}
	late := !in.SubmittedAt.After(now.Add(-opt.Deadline))
	for _, p := range in.Proofs {
		if p.Text == nil && !late {
			return errNotDue // the next checkpoint will cover it
		}
	}
	content, err := ledger.BuildReceipt(in)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE package_reports SET sent_at = ?, outcomes = ?, pending = ?
		WHERE message_id = ? AND sent_at IS NULL`, formatTime(now), len(in.Outcomes)-pending, pending, messageID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNotDue // sent by another caller meanwhile
	}
	qid, err := s.insertOutbound(ctx, tx, now, &Outbound{MessageID: messageID, Kind: KindDSN, About: "receipt",
		Recipient: in.Sender, Content: content}, true)
	if err != nil {
		return err
	}
	return appendEvent(ctx, tx, event{At: now, Type: ledger.Receipt, MessageID: messageID, Data: ledger.ReceiptData{
		Sender: in.Sender, QueueID: qid, Outcomes: len(in.Outcomes) - pending, Pending: pending}})
}

// receiptInput reads what the report on messageID says, and how many recipients have no final outcome.
func receiptInput(ctx context.Context, q querier, messageID string) (ledger.ReceiptInput, int, error) {
	in := ledger.ReceiptInput{Package: messageID}
	var received string
	err := q.QueryRowContext(ctx, `SELECT sender, received_at, digest FROM messages WHERE id = ?`, messageID).
		Scan(&in.Sender, &received, &in.Digest)
	if err != nil {
		return in, 0, classify(err)
	}
	if in.SubmittedAt, err = parseTime(received); err != nil {
		return in, 0, fmt.Errorf("%w: message %s: received_at %q", ErrCorrupt, messageID, received)
	}
	rcpts, err := reportRecipients(ctx, q, messageID)
	if err != nil {
		return in, 0, err
	}
	pending := 0
	for _, r := range rcpts {
		o := r.outcome()
		if o.Outcome == ledger.OutcomePending || o.Outcome == ledger.OutcomeRetrying {
			pending++
		}
		in.Outcomes = append(in.Outcomes, o)
	}
	return in, pending, nil
}

// reportRecipient is what the store knows of one recipient of a package.
type reportRecipient struct {
	mail, state, updated string
	decided              bool
	decision             policy.Decision
	cert                 string
	copyQ, noticeQ       *reportQueue // the S/MIME copy's and the link notification's queue entries
}

type reportQueue struct{ state, host, answer, updated string }

// reportRecipients reads the recipients of messageID with their decisions, queue entries and the
// certificate their copy was encrypted to.
func reportRecipients(ctx context.Context, q querier, messageID string) ([]*reportRecipient, error) {
	rows, err := q.QueryContext(ctx, `SELECT r.rcpt, r.state, r.updated_at, d.result, d.reason, d.withheld
		FROM recipients r LEFT JOIN decisions d ON d.message_id = r.message_id AND d.rcpt = r.rcpt
		WHERE r.message_id = ? ORDER BY r.ord`, messageID)
	if err != nil {
		return nil, classify(err)
	}
	var out []*reportRecipient
	by := map[string]*reportRecipient{}
	for rows.Next() {
		r := &reportRecipient{}
		var result, reason, withheld sql.NullString
		if err := rows.Scan(&r.mail, &r.state, &r.updated, &result, &reason, &withheld); err != nil {
			rows.Close()
			return nil, classify(err)
		}
		if result.Valid {
			r.decided = true
			r.decision = policy.Decision{Recipient: r.mail, Result: policy.Result(result.String), Reason: policy.Reason(reason.String)}
			if err := json.Unmarshal([]byte(withheld.String), &r.decision.Withheld); err != nil {
				rows.Close()
				return nil, fmt.Errorf("%w: decision of %s for %s: %v", ErrCorrupt, messageID, r.mail, err)
			}
		}
		out = append(out, r)
		by[strings.ToLower(r.mail)] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	rows, err = q.QueryContext(ctx, `SELECT recipient, about, state, last_host, last_answer, updated_at FROM queue
		WHERE message_id = ? AND kind = ? ORDER BY first_queued_at`, messageID, KindMessage)
	if err != nil {
		return nil, classify(err)
	}
	for rows.Next() {
		var rcpt, about string
		e := &reportQueue{}
		if err := rows.Scan(&rcpt, &about, &e.state, &e.host, &e.answer, &e.updated); err != nil {
			rows.Close()
			return nil, classify(err)
		}
		r := by[strings.ToLower(rcpt)]
		switch {
		case r == nil:
		case about == "":
			r.copyQ = e
		case strings.HasPrefix(about, "pickup/"):
			r.noticeQ = e // the newest notification counts
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	rows, err = q.QueryContext(ctx, `SELECT json_extract(data, '$.recipient'), json_extract(data, '$.cert')
		FROM ledger_events WHERE message_id = ? AND type = ?`, messageID, ledger.Encrypted)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	for rows.Next() {
		var rcpt, cert sql.NullString
		if err := rows.Scan(&rcpt, &cert); err != nil {
			return nil, classify(err)
		}
		if r := by[strings.ToLower(rcpt.String)]; r != nil {
			r.cert = cert.String
		}
	}
	return out, classify(rows.Err())
}

// outcome is the recipient's line in the report.
func (r *reportRecipient) outcome() ledger.RecipientOutcome {
	o := ledger.RecipientOutcome{Recipient: r.mail, Decision: string(r.decision.Reason)}
	o.At, _ = parseTime(r.updated)
	if r.decided && r.decision.Result == policy.DeliverSections {
		for _, s := range r.decision.Withheld {
			o.Withheld = append(o.Withheld, s.Title())
		}
		o.WithheldWhy = "The family's consent in force does not allow them to be shared with this recipient."
	}
	fromQueue := func(e *reportQueue, done string) {
		o.Remote, o.At = e.answer, parseTimeOr(e.updated, o.At)
		switch e.state {
		case QueueDelivered:
			o.Outcome = done
		case QueueFailed:
			o.Outcome = ledger.OutcomeBounced
		default:
			o.Outcome = ledger.OutcomeRetrying
		}
	}
	switch r.state {
	case StateRefused:
		o.Outcome, o.Status = ledger.OutcomeRefused, "5.7.1"
		o.Reason = refusalWords(r)
	case StateDelivered:
		o.Outcome, o.Cert = ledger.OutcomeDelivered, r.cert
		o.Reason = "stored, encrypted to their certificate, in their mailbox on this gateway"
	case StateQueued:
		o.Cert = r.cert
		if r.copyQ == nil {
			o.Outcome = ledger.OutcomePending
			break
		}
		fromQueue(r.copyQ, ledger.OutcomeRelayed)
		switch o.Outcome {
		case ledger.OutcomeRelayed:
			o.Reason = "encrypted to their certificate and accepted by their mail server"
		case ledger.OutcomeBounced:
			o.Reason = "their mail server could not be reached or refused the package"
		}
	case StateNotified:
		o.Outcome, o.Reason = ledger.OutcomeNotified, "they have no usable certificate, so a notification with a one-time link to collect the package was put in their mailbox on this gateway"
		if r.noticeQ != nil {
			fromQueue(r.noticeQ, ledger.OutcomeNotified)
			switch o.Outcome {
			case ledger.OutcomeNotified:
				o.Reason = "they have no usable certificate, so a notification with a one-time link to collect the package was accepted by their mail server"
			case ledger.OutcomeBounced:
				o.Reason = "the notification with the one-time link could not be delivered to them"
			}
		}
	case StateWaiting:
		o.Outcome, o.Reason = ledger.OutcomePending, "they have no usable certificate and the gateway has no pickup page configured"
	default:
		o.Outcome = ledger.OutcomePending
	}
	return o
}

func parseTimeOr(s string, def time.Time) time.Time {
	if t, err := parseTime(s); err == nil {
		return t
	}
	return def
}

// refusalWords says in plain words why nothing was sent to a refused recipient. It is built from the
// stored reason code alone (the decision's own sentence is not stored).
func refusalWords(r *reportRecipient) string {
	if !r.decided {
		return "nothing was sent"
	}
	if r.decision.Delivers() {
		return "their directory entry changed after the package was accepted (account disabled, vetting lapsed or entry removed), so nothing was sent"
	}
	switch r.decision.Reason {
	case policy.ReasonRefusedAgency:
		return "the family has refused consent to share with this recipient's agency"
	case policy.ReasonRefusedPerson:
		return "the family has refused consent to share with this person"
	case policy.ReasonRefusedSections:
		return "the family has refused consent to share the sections in this package with this recipient"
	case policy.ReasonNotGranted:
		return "the consent in force does not cover sharing with this recipient"
	case policy.ReasonNoConsent:
		return "no consent is recorded for the episode, and nothing is shared without consent"
	case policy.ReasonWithdrawn:
		return "consent for the episode has been withdrawn; nothing new is shared"
	case policy.ReasonWholeRequired:
		return "this recipient may see only some sections, and the package is not divided into sections"
	case policy.ReasonRecipientUnknown:
		return "no agency directory knows this address"
	case policy.ReasonRecipientDisabled:
		return "their directory account is disabled"
	case policy.ReasonRecipientLapsed:
		return "their vetting checks have lapsed"
	case policy.ReasonUnknownEpisode, policy.ReasonEpisodeClosed:
		return "the package's episode is unknown or closed"
	}
	return "the gateway's rules do not allow sharing with this recipient (" + string(r.decision.Reason) + ")"
}

// reportProofs lists the package's ledger events the report proves (acceptance, decisions, and each
// recipient's encryption and delivery steps; not the events of mail to others, such as reports) and
// builds their proofs against the newest checkpoint.
func reportProofs(ctx context.Context, tx *sql.Tx, messageID string, outs []ledger.RecipientOutcome) ([]ledger.ReceiptProof, error) {
	rcpts := map[string]bool{}
	for _, o := range outs {
		rcpts[strings.ToLower(o.Recipient)] = true
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq, type, COALESCE(json_extract(data, '$.recipient'), '') FROM ledger_events
		WHERE message_id = ? AND type IN (?, ?, ?, ?, ?, ?, ?) ORDER BY seq`, messageID,
		ledger.Accepted, ledger.Decisions, ledger.Encrypted, ledger.Delivered, ledger.Notified, ledger.Relayed, ledger.Bounced)
	if err != nil {
		return nil, classify(err)
	}
	var events []ledger.ReceiptProof
	for rows.Next() {
		var seq int64
		var typ, rcpt string
		if err := rows.Scan(&seq, &typ, &rcpt); err != nil {
			rows.Close()
			return nil, classify(err)
		}
		if typ == ledger.Accepted || typ == ledger.Decisions || rcpts[strings.ToLower(rcpt)] {
			events = append(events, ledger.ReceiptProof{Index: uint64(seq), Type: typ})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	return ledger.ProveLatest(ctx, tx, events)
}

// queryIDs runs a query whose rows are one text column and returns them in order.
func queryIDs(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, classify(err)
		}
		out = append(out, id)
	}
	return out, classify(rows.Err())
}
