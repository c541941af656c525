// Consent in the store of record: every recording or withdrawal is a new version (the table refuses
// UPDATE and DELETE), in force from the moment it is recorded; the history is kept.

package mailbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"cafgate/policy"
)

// maxFutureGiven is how far ahead of the gateway's clock a "given at" time may be (clock skew).
const maxFutureGiven = 5 * time.Minute

// RecordConsent stores c as the episode's next consent version and returns it as stored (version,
// recorded time and normalised content). Consent that grants anything needs an open episode; a
// withdrawal may be recorded on a closed one. c.GivenAt defaults to now.
func (s *Store) RecordConsent(ctx context.Context, ref string, c policy.Consent) (*policy.Consent, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	now := s.opt.Now()
	if c.GivenAt.IsZero() {
		c.GivenAt = now
	}
	if c.GivenAt.After(now.Add(maxFutureGiven)) {
		return nil, fmt.Errorf("%w: consent cannot be given in the future (%s)", policy.ErrInvalid, c.GivenAt.UTC().Format(time.RFC3339))
	}
	if strings.TrimSpace(c.RecordedBy) == "" {
		return nil, fmt.Errorf("%w: say who is recording the consent", policy.ErrInvalid)
	}
	c.RecordedAt = now
	err := s.episodeTx(ctx, func(tx *sql.Tx) error {
		ep, err := loadEpisode(ctx, tx, ref)
		if err != nil {
			return err
		}
		return s.recordConsentTx(ctx, tx, ep, &c)
	})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// recordConsentTx stores c (validated, with GivenAt, RecordedAt and RecordedBy set) as ep's next
// version inside tx, revoking the episode's outstanding links when it is a withdrawal.
func (s *Store) recordConsentTx(ctx context.Context, tx *sql.Tx, ep *policy.Episode, c *policy.Consent) error {
	if !ep.Open() && !c.Withdrawn {
		return fmt.Errorf("%w: %s; consent can no longer be recorded for it (a withdrawal still can)", ErrEpisodeClosed, ep.Ref)
	}
	c.Episode = ep.Ref
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM consent_versions WHERE episode_ref = ?`, ep.Ref).Scan(&c.Version); err != nil {
		return classify(err)
	}
	if err := insertConsent(ctx, tx, c); err != nil {
		return err
	}
	if c.Withdrawn {
		// From now on nothing new is shared: every outstanding one-time link to a package of the
		// episode is revoked in the same transaction as the withdrawal (with its ledger events).
		if _, err := s.RevokeLinksForEpisode(ctx, tx, ep.Ref, "consent withdrawn"); err != nil {
			return err
		}
	}
	return nil
}

// WithdrawConsent records a withdrawal by the child, a parent or a carer: from now on nothing new is
// shared for the episode (a child protection override aside) until new consent is recorded.
func (s *Store) WithdrawConsent(ctx context.Context, ref string, by policy.Giver, givenAt time.Time, recordedBy string) (*policy.Consent, error) {
	return s.RecordConsent(ctx, ref, policy.Consent{GivenBy: by, GivenAt: givenAt, RecordedBy: recordedBy, Withdrawn: true})
}

func insertConsent(ctx context.Context, tx *sql.Tx, c *policy.Consent) error {
	grants, err := json.Marshal(nonNil(c.Grants))
	if err != nil {
		return err
	}
	refusals, err := json.Marshal(nonNil(c.Refusals))
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO consent_versions
		(episode_ref, version, given_by, given_at, recorded_at, recorded_by, withdrawn, grants, refusals)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, c.Episode, c.Version, string(c.GivenBy), formatTime(c.GivenAt),
		formatTime(c.RecordedAt), c.RecordedBy, boolInt(c.Withdrawn), string(grants), string(refusals))
	if err != nil {
		return classify(err)
	}
	typ := EventConsentRecorded
	if c.Withdrawn {
		typ = EventConsentWithdrawn
	}
	return classify(appendEvent(ctx, tx, event{At: c.RecordedAt, Type: typ, Data: consentData{Episode: c.Episode,
		Version: c.Version, GivenBy: string(c.GivenBy), Grants: len(c.Grants), Refusals: len(c.Refusals),
		Withdrawn: c.Withdrawn, By: c.RecordedBy}}))
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

const consentColumns = `episode_ref, version, given_by, given_at, recorded_at, recorded_by, withdrawn, grants, refusals`

// ConsentHistory returns every consent version of the episode, oldest first.
func (s *Store) ConsentHistory(ctx context.Context, ref string) ([]policy.Consent, error) {
	if _, err := loadEpisode(ctx, s.rdb, ref); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+consentColumns+` FROM consent_versions WHERE episode_ref = ? ORDER BY version`, ref)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []policy.Consent
	for rows.Next() {
		c, err := scanConsent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	return out, classify(rows.Err())
}

// consentInForce returns the version of ref recorded last at or before at, or nil.
func consentInForce(ctx context.Context, q querier, ref string, at time.Time) (*policy.Consent, error) {
	c, err := scanConsent(q.QueryRowContext(ctx, `SELECT `+consentColumns+` FROM consent_versions
		WHERE episode_ref = ? AND recorded_at <= ? ORDER BY version DESC LIMIT 1`, ref, formatTime(at)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return c, err
}

func scanConsent(sc scanner) (*policy.Consent, error) {
	var c policy.Consent
	var givenBy, givenAt, recordedAt, grants, refusals string
	var withdrawn int
	err := sc.Scan(&c.Episode, &c.Version, &givenBy, &givenAt, &recordedAt, &c.RecordedBy, &withdrawn, &grants, &refusals)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if err != nil {
		return nil, classify(err)
	}
	c.GivenBy, c.Withdrawn = policy.Giver(givenBy), withdrawn != 0
	if c.GivenAt, err = parseTime(givenAt); err == nil {
		c.RecordedAt, err = parseTime(recordedAt)
	}
	if err == nil {
		err = json.Unmarshal([]byte(grants), &c.Grants)
	}
	if err == nil {
		err = json.Unmarshal([]byte(refusals), &c.Refusals)
	}
	if err != nil {
		return nil, fmt.Errorf("mailbox: consent %s version %d: %w", c.Episode, c.Version, err)
	}
	if len(c.Grants) == 0 {
		c.Grants = nil
	}
	if len(c.Refusals) == 0 {
		c.Refusals = nil
	}
	return &c, nil
}
