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
	pd := &PackageDecision{At: at, Package: pkg}
	if sender != nil {
		pd.Sender = strings.ToLower(sender.Mail)
	}
	in := policy.DecisionInput{Package: pkg, Sender: sender, At: at}
	if policy.ValidRef(pkg.EpisodeRef) {
		ea, err := s.EpisodeWithConsent(ctx, pkg.EpisodeRef, at)
		switch {
		case errors.Is(err, ErrEpisodeNotFound):
		case err != nil:
			return nil, err
		default:
			pd.Episode, in.Episode, in.Consent = ea.Episode, ea.Episode, ea.Consent
			if ea.Consent != nil {
				pd.ConsentVersion = ea.Consent.Version
			}
		}
	}
	pd.Decisions = make([]policy.Decision, len(to))
	for i, a := range to {
		in.Recipient, in.RecipientMail = a.Entry, a.Mail
		pd.Decisions[i] = policy.Decide(in)
	}
	return pd, nil
}

// RecordDecisions stores pd's decisions for the accepted message messageID, its "decisions" ledger
// event, and, when an override let any copy through, the override (reason encrypted) and its event.
// The message must already be stored.
func (s *Store) RecordDecisions(ctx context.Context, messageID string, pd *PackageDecision) error {
	return s.episodeTx(ctx, func(tx *sql.Tx) error {
		return s.insertDecisions(ctx, tx, messageID, pd, s.opt.Now())
	})
}

// insertDecisions writes pd for messageID inside tx. It is the hook for writing decisions in the same
// transaction as the message itself (the writer's batch), after the message row.
func (s *Store) insertDecisions(ctx context.Context, tx *sql.Tx, messageID string, pd *PackageDecision, now time.Time) error {
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
	if err := appendEvent(ctx, tx, event{At: now, Type: EventDecisions, MessageID: messageID, Data: data}); err != nil {
		return classify(err)
	}
	if len(overridden) == 0 {
		return nil
	}
	return s.insertOverride(ctx, tx, messageID, pd, overridden, now)
}

// insertOverride records an override: who, for which recipients, the lead to be told, and the reason
// sealed under the content key.
func (s *Store) insertOverride(ctx context.Context, tx *sql.Tx, messageID string, pd *PackageDecision, rcpts []string, now time.Time) error {
	reason := strings.TrimSpace(pd.Package.OverrideReason)
	if pd.Episode == nil || reason == "" {
		return fmt.Errorf("%w: an override needs an episode and a reason", policy.ErrInvalid)
	}
	nonce, sealed, err := s.seal.seal(overrideAAD(messageID), []byte(reason))
	if err != nil {
		return err
	}
	sender := pd.Sender
	_, err = tx.ExecContext(ctx, `INSERT INTO overrides (message_id, episode_ref, sender, lead, reason_nonce, reason, recorded_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, messageID, pd.Episode.Ref, sender, pd.Episode.Lead, nonce, sealed, formatTime(now))
	if err != nil {
		return classify(err)
	}
	return classify(appendEvent(ctx, tx, event{At: now, Type: EventOverride, MessageID: messageID, Data: overrideData{
		Episode: pd.Episode.Ref, Sender: sender, Lead: pd.Episode.Lead, Recipients: rcpts}}))
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
