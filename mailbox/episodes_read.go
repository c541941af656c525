// Reading episodes: by reference, the one open for a child, a listing, and an episode together with the
// consent in force at a given instant.

package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"cafgate/policy"
)

// Episode returns the episode with ref and its team.
func (s *Store) Episode(ctx context.Context, ref string) (*policy.Episode, error) {
	return loadEpisode(ctx, s.rdb, ref)
}

// EpisodeForChild returns the child's open episode, or an error wrapping ErrEpisodeNotFound.
func (s *Store) EpisodeForChild(ctx context.Context, key ChildKey, childID string) (*policy.Episode, error) {
	hash, err := key.hash(childID)
	if err != nil {
		return nil, err
	}
	ref, err := openEpisodeFor(ctx, s.rdb, hash)
	if err != nil {
		return nil, err
	}
	if ref == "" {
		return nil, fmt.Errorf("%w: this child has no open episode", ErrEpisodeNotFound)
	}
	return s.Episode(ctx, ref)
}

// EpisodeAt is an episode with the consent in force at an instant.
type EpisodeAt struct {
	Episode *policy.Episode
	Consent *policy.Consent // nil when no consent was recorded by then
}

// EpisodeWithConsent returns the episode with ref (as it is now) and the consent version in force at
// at: the last one recorded at or before it. Both are read in one transaction.
func (s *Store) EpisodeWithConsent(ctx context.Context, ref string, at time.Time) (*EpisodeAt, error) {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, classify(err)
	}
	defer tx.Rollback()
	ep, err := loadEpisode(ctx, tx, ref)
	if err != nil {
		return nil, err
	}
	c, err := consentInForce(ctx, tx, ep.Ref, at)
	if err != nil {
		return nil, err
	}
	return &EpisodeAt{Episode: ep, Consent: c}, nil
}

// EpisodeFilter selects episodes for ListEpisodes.
type EpisodeFilter struct {
	State policy.State // only this state; empty: any
	Open  bool         // only open episodes (ignored when State is set)
	After string       // only references sorting after this one (a cursor)
	Limit int          // default 100, at most 1000
}

// ListEpisodes returns episodes in reference order, with their teams.
func (s *Store) ListEpisodes(ctx context.Context, f EpisodeFilter) ([]policy.Episode, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	q := `SELECT ref FROM episodes WHERE ref > ?`
	args := []any{f.After}
	switch {
	case f.State != "":
		q += ` AND state = ?`
		args = append(args, string(f.State))
	case f.Open:
		q += ` AND state <> 'closed'`
	}
	rows, err := s.rdb.QueryContext(ctx, q+` ORDER BY ref LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, classify(err)
	}
	var refs []string
	for rows.Next() {
		var ref string
		if err := rows.Scan(&ref); err != nil {
			rows.Close()
			return nil, classify(err)
		}
		refs = append(refs, ref)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	out := make([]policy.Episode, 0, len(refs))
	for _, ref := range refs {
		ep, err := loadEpisode(ctx, s.rdb, ref)
		if err != nil {
			return nil, err
		}
		out = append(out, *ep)
	}
	return out, nil
}

// loadEpisode reads one episode and its team through q (the read pool or a transaction).
func loadEpisode(ctx context.Context, q querier, ref string) (*policy.Episode, error) {
	var ep policy.Episode
	var state, opened, updated string
	var closed sql.NullString
	err := q.QueryRowContext(ctx, `SELECT ref, state, lead, opened_at, updated_at, closed_at FROM episodes WHERE ref = ?`, ref).
		Scan(&ep.Ref, &state, &ep.Lead, &opened, &updated, &closed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrEpisodeNotFound, clipRef(ref))
	}
	if err != nil {
		return nil, classify(err)
	}
	ep.State = policy.State(state)
	if ep.OpenedAt, err = parseTime(opened); err == nil {
		ep.UpdatedAt, err = parseTime(updated)
	}
	if err == nil && closed.Valid {
		ep.ClosedAt, err = parseTime(closed.String)
	}
	if err != nil {
		return nil, fmt.Errorf("mailbox: episode %s: %w", ep.Ref, err)
	}
	if ep.Team, err = loadTeam(ctx, q, ep.Ref); err != nil {
		return nil, err
	}
	return &ep, nil
}

func loadTeam(ctx context.Context, q querier, ref string) ([]policy.Member, error) {
	rows, err := q.QueryContext(ctx, `SELECT mail, agency, sensitive FROM episode_members WHERE episode_ref = ?
		ORDER BY added_at, mail`, ref)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var team []policy.Member
	for rows.Next() {
		var m policy.Member
		var sensitive int
		if err := rows.Scan(&m.Mail, &m.Agency, &sensitive); err != nil {
			return nil, classify(err)
		}
		m.SensitiveService = sensitive != 0
		team = append(team, m)
	}
	return team, classify(rows.Err())
}

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// clipRef keeps an unknown reference (which may come from a package) short in errors.
func clipRef(ref string) string {
	if len(ref) > 24 {
		return fmt.Sprintf("%q…", ref[:24])
	}
	return fmt.Sprintf("%q", ref)
}
