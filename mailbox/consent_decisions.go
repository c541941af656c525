// Decisions for a package: load the episode and the consent in force at acceptance, ask policy for each
// recipient, and record what was decided (and any child protection override with its reason) for an
// accepted message, with their ledger events, in one transaction.

package mailbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"cafgate/directory"
	"cafgate/mailbox/ledger"
	"cafgate/policy"
)

// Addressee is one recipient as given at submission, with their directory entry (nil when no
// directory knows the address).
type Addressee struct {
	Mail  string
	Entry *directory.Practitioner
}

// PackageDecision is every recipient's decision for one package.
type PackageDecision struct {
	At             time.Time       // acceptance time the decisions were made for
	Sender         string          // the authenticated sender's mail
	Episode        *policy.Episode // nil when the package's reference names no episode
	ConsentVersion int             // the version in force; 0 when none
	Package        policy.Package
	Decisions      []policy.Decision // in the order of the addressees
}

// DecidePackage decides, for each addressee, what they may receive of pkg sent by sender at at. It
// fails only when the store cannot be read; an unknown episode, a closed one or a faulty package is a
// refusal of every addressee with its reason.
func (s *Store) DecidePackage(ctx context.Context, at time.Time, sender *directory.Practitioner, to []Addressee, pkg policy.Package) (*PackageDecision, error) {
	var ea *EpisodeAt
	if policy.ValidRef(pkg.EpisodeRef) {
		var err error
		ea, err = s.EpisodeWithConsent(ctx, pkg.EpisodeRef, at)
		switch {
		case errors.Is(err, ErrEpisodeNotFound):
			ea = nil
		case err != nil:
			return nil, err
		}
	}
	return decideFor(ea, at, sender, to, pkg), nil
}

// decideFor decides for each addressee against ea (nil: no episode has the package's reference).
func decideFor(ea *EpisodeAt, at time.Time, sender *directory.Practitioner, to []Addressee, pkg policy.Package) *PackageDecision {
	pd := &PackageDecision{At: at, Package: pkg}
	if sender != nil {
		pd.Sender = strings.ToLower(sender.Mail)
	}
	in := policy.DecisionInput{Package: pkg, Sender: sender, At: at}
	if ea != nil {
		pd.Episode, in.Episode, in.Consent = ea.Episode, ea.Episode, ea.Consent
		if ea.Consent != nil {
			pd.ConsentVersion = ea.Consent.Version
		}
	}
	pd.Decisions = make([]policy.Decision, len(to))
	for i, a := range to {
		in.Recipient, in.RecipientMail = a.Entry, a.Mail
		pd.Decisions[i] = policy.Decide(in)
	}
	return pd
}

// RecordDecisions stores pd's decisions for the accepted message messageID, its "decisions" ledger
// event, and, when an override let any copy through, the override (reason encrypted) and its event.
// The message must already be stored. (Accept and AcceptPackage store the decisions in the message's
// own transaction; this is for decisions made again later, by the delivery pipeline.)
func (s *Store) RecordDecisions(ctx context.Context, messageID string, pd *PackageDecision) error {
	reason, err := s.sealOverride(messageID, pd)
	if err != nil {
		return err
	}
	return s.episodeTx(ctx, func(tx *sql.Tx) error {
		return insertDecisions(ctx, tx, txAppender(ctx, tx), messageID, pd, reason, s.opt.Now())
	})
}

// sealedReason is an override's reason sealed under the content key for its message.
type sealedReason struct{ nonce, sealed []byte }

// sealOverride seals pd's override reason for messageID when any decision went through on an
// override, so the writer need not seal inside its transaction; nil when none did.
func (s *Store) sealOverride(messageID string, pd *PackageDecision) (*sealedReason, error) {
	if pd == nil || len(policy.Overrides(pd.Decisions)) == 0 {
		return nil, nil
	}
	reason := strings.TrimSpace(pd.Package.OverrideReason)
	if pd.Episode == nil || reason == "" {
		return nil, fmt.Errorf("%w: an override needs an episode and a reason", policy.ErrInvalid)
	}
	nonce, sealed, err := s.seal.seal(overrideAAD(messageID), []byte(reason))
	if err != nil {
		return nil, err
	}
	return &sealedReason{nonce: nonce, sealed: sealed}, nil
}

// appender appends one ledger event in the transaction at hand.
type appender func(ev event) error

// txAppender appends with a new ledger appender on tx (appendEvent).
func txAppender(ctx context.Context, tx *sql.Tx) appender {
	return func(ev event) error { return appendEvent(ctx, tx, ev) }
}

// ledAppender appends with the writer batch's appender.
func ledAppender(ctx context.Context, led *ledger.Appender) appender {
	return func(ev event) error {
		e, err := ledgerEvent(ev.Type, ev.MessageID, ev.Data, ev.At)
		if err != nil {
			return err
		}
		_, err = led.Append(ctx, ev.At, e)
		return err
	}
}

// insertRowDecisions writes the decisions a row carries (AcceptDecided), in the writer's batch
// transaction just after the row's message: a package and its decisions commit together.
func insertRowDecisions(ctx context.Context, tx *sql.Tx, led *ledger.Appender, r *row, at time.Time) error {
	if r.decisions == nil {
		return nil
	}
	return insertDecisions(ctx, tx, ledAppender(ctx, led), r.id, r.decisions, r.overrideReason, at)
}

// insertDecisions writes pd for messageID inside tx, after the message row: the decisions, their
// ledger event and any override with its (already sealed) reason and event.
func insertDecisions(ctx context.Context, tx *sql.Tx, app appender, messageID string, pd *PackageDecision, reason *sealedReason, now time.Time) error {
	var ref any
	var consentVersion any
	data := decisionsData{ConsentVersion: pd.ConsentVersion}
	if pd.Episode != nil {
		ref, data.Episode = pd.Episode.Ref, pd.Episode.Ref
	}
	if pd.ConsentVersion > 0 {
		consentVersion = pd.ConsentVersion
	}
	var overridden []string
	for i, d := range pd.Decisions {
		allowed, _ := json.Marshal(nonNil(d.Allowed))
		withheld, _ := json.Marshal(nonNil(d.Withheld))
		_, err := tx.ExecContext(ctx, `INSERT INTO decisions
			(message_id, ord, rcpt, episode_ref, consent_version, result, reason, allowed, withheld, override, decided_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, messageID, i, d.Recipient, ref, consentVersion, string(d.Result),
			string(d.Reason), string(allowed), string(withheld), boolInt(d.Override), formatTime(pd.At))
		if err != nil {
			return fmt.Errorf("decision for message %s: %w", messageID, classify(err))
		}
		data.Recipients = append(data.Recipients, recipientBrief{Rcpt: d.Recipient, Result: string(d.Result), Reason: string(d.Reason)})
		if d.Override {
			overridden = append(overridden, d.Recipient)
		}
	}
	if err := app(event{At: now, Type: EventDecisions, MessageID: messageID, Data: data}); err != nil {
		return classify(err)
	}
	if len(overridden) == 0 {
		return nil
	}
	if reason == nil || pd.Episode == nil {
		return fmt.Errorf("%w: an override needs an episode and a reason", policy.ErrInvalid)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO overrides (message_id, episode_ref, sender, lead, reason_nonce, reason, recorded_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, messageID, pd.Episode.Ref, pd.Sender, pd.Episode.Lead, reason.nonce, reason.sealed, formatTime(now))
	if err != nil {
		return classify(err)
	}
	return classify(app(event{At: now, Type: EventOverride, MessageID: messageID, Data: overrideData{
		Episode: pd.Episode.Ref, Sender: pd.Sender, Lead: pd.Episode.Lead, Recipients: overridden}}))
}

// overrideAAD binds a sealed reason to its message and keeps it apart from message content.
func overrideAAD(messageID string) string { return "override\x00" + messageID }

// StoredDecision is a recorded decision read back.
type StoredDecision struct {
	MessageID      string
	Episode        string // "" when the package named no known episode
	ConsentVersion int
	policy.Decision
	DecidedAt time.Time
}

// Decisions returns the recorded decisions for a message, in the order of its recipients.
func (s *Store) Decisions(ctx context.Context, messageID string) ([]StoredDecision, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT message_id, rcpt, COALESCE(episode_ref, ''), COALESCE(consent_version, 0),
		result, reason, allowed, withheld, override, decided_at FROM decisions WHERE message_id = ? ORDER BY ord`, messageID)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []StoredDecision
	for rows.Next() {
		var d StoredDecision
		var result, reason, allowed, withheld, decided string
		var override int
		if err := rows.Scan(&d.MessageID, &d.Recipient, &d.Episode, &d.ConsentVersion, &result, &reason, &allowed, &withheld, &override, &decided); err != nil {
			return nil, classify(err)
		}
		d.Result, d.Reason, d.Override = policy.Result(result), policy.Reason(reason), override != 0
		if err := errors.Join(json.Unmarshal([]byte(allowed), &d.Allowed), json.Unmarshal([]byte(withheld), &d.Withheld)); err != nil {
			return nil, fmt.Errorf("mailbox: decision %s/%s: %w", messageID, d.Recipient, err)
		}
		if d.DecidedAt, err = parseTime(decided); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, classify(rows.Err())
}

// Override is a recorded child protection override, its reason decrypted.
type Override struct {
	MessageID  string
	Episode    string
	Sender     string
	Lead       string
	Reason     string
	RecordedAt time.Time
	LeadTold   bool
}

// Overrides returns recorded overrides in message order; with untoldOnly, only those whose lead has
// not yet been told (the delivery side's work list).
func (s *Store) Overrides(ctx context.Context, untoldOnly bool) ([]Override, error) {
	q := `SELECT message_id, episode_ref, sender, lead, reason_nonce, reason, recorded_at, lead_told_at IS NOT NULL FROM overrides`
	if untoldOnly {
		q += ` WHERE lead_told_at IS NULL`
	}
	rows, err := s.rdb.QueryContext(ctx, q+` ORDER BY recorded_at, message_id`)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []Override
	for rows.Next() {
		var o Override
		var nonce, sealed []byte
		var recorded string
		if err := rows.Scan(&o.MessageID, &o.Episode, &o.Sender, &o.Lead, &nonce, &sealed, &recorded, &o.LeadTold); err != nil {
			return nil, classify(err)
		}
		plain, err := s.seal.open(overrideAAD(o.MessageID), nonce, sealed)
		if err != nil {
			return nil, err
		}
		o.Reason = string(plain)
		if o.RecordedAt, err = parseTime(recorded); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, classify(rows.Err())
}

// MarkLeadTold records that the lead professional has been told of the override on messageID.
func (s *Store) MarkLeadTold(ctx context.Context, messageID string) error {
	return s.episodeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE overrides SET lead_told_at = ? WHERE message_id = ? AND lead_told_at IS NULL`,
			formatTime(s.opt.Now()), messageID)
		if err != nil {
			return classify(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: no untold override for message %s", ErrNotFound, messageID)
		}
		return nil
	})
}
