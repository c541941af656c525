// Episodes in the store of record: open (at most one open episode per child), hand over to a new lead,
// move through the CAF states, close. Each change and its ledger event are one transaction.

package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"cafgate/directory"
	"cafgate/policy"
)

var (
	// ErrEpisodeNotFound: no episode has that reference.
	ErrEpisodeNotFound = errors.New("mailbox: no such episode")
	// ErrEpisodeOpen: the child already has an open episode; errors.As gives *OpenEpisodeError.
	ErrEpisodeOpen = errors.New("mailbox: the child already has an open episode")
	// ErrEpisodeClosed: the episode is closed and takes no more changes of this kind.
	ErrEpisodeClosed = errors.New("mailbox: episode is closed")
)

// OpenEpisodeError refuses a second open episode for a child, naming the open one.
type OpenEpisodeError struct{ Ref string }

func (e *OpenEpisodeError) Error() string {
	return fmt.Sprintf("this child already has an open episode, %s; hand it over or close it instead of opening another", e.Ref)
}

// Unwrap makes errors.Is(err, ErrEpisodeOpen) true.
func (e *OpenEpisodeError) Unwrap() error { return ErrEpisodeOpen }

// NewEpisode is what opening an episode needs.
type NewEpisode struct {
	ChildID string                    // stored only as a keyed hash
	Lead    *directory.Practitioner   // the lead professional (episode co-ordinator)
	Team    []*directory.Practitioner // other members; the lead is added if missing
	By      string                    // who opened it: a practitioner's mail or "cli:<user>"
	State   policy.State              // first state; default preparation
}

// OpenEpisode opens an episode for the child and returns it with its new reference (CAF-YYYY-NNNNNN).
// A child with an open episode is refused with *OpenEpisodeError; an unfit lead or member with an
// error wrapping policy.ErrInvalid.
func (s *Store) OpenEpisode(ctx context.Context, key ChildKey, in NewEpisode) (*policy.Episode, error) {
	hash, err := key.hash(in.ChildID)
	if err != nil {
		return nil, err
	}
	now := s.opt.Now()
	team, err := checkNewEpisode(&in, now)
	if err != nil {
		return nil, err
	}
	var ep *policy.Episode
	err = s.episodeTx(ctx, func(tx *sql.Tx) error {
		ep, err = openEpisodeTx(ctx, tx, hash, team, in, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ep, nil
}

// openEpisodeTx opens the episode inside tx: refused with *OpenEpisodeError when the child (hash)
// has an open episode; else a new reference, the episode, its team and its ledger event.
func openEpisodeTx(ctx context.Context, tx *sql.Tx, hash string, team []policy.Member, in NewEpisode, now time.Time) (*policy.Episode, error) {
	if ref, err := openEpisodeFor(ctx, tx, hash); err != nil || ref != "" {
		if ref != "" {
			return nil, &OpenEpisodeError{Ref: ref}
		}
		return nil, err
	}
	ref, err := nextRef(ctx, tx, now.UTC().Year())
	if err != nil {
		return nil, err
	}
	ep := &policy.Episode{Ref: ref, State: in.State, Lead: team[0].Mail, Team: team, OpenedAt: now, UpdatedAt: now}
	if err := insertEpisode(ctx, tx, ep, hash, in.By); err != nil {
		return nil, err
	}
	return ep, nil
}

// checkNewEpisode validates in (defaulting its state) and returns the team with the lead first.
func checkNewEpisode(in *NewEpisode, now time.Time) ([]policy.Member, error) {
	if in.State == "" {
		in.State = policy.StatePreparation
	}
	if _, err := policy.ParseState(string(in.State)); err != nil || in.State == policy.StateClosed {
		return nil, fmt.Errorf("%w: an episode opens in an open state, not %q", policy.ErrInvalid, in.State)
	}
	if in.Lead == nil {
		return nil, fmt.Errorf("%w: an episode needs a lead professional", policy.ErrInvalid)
	}
	if err := policy.CheckLead(in.Lead, now); err != nil {
		return nil, err
	}
	team := []policy.Member{policy.MemberFrom(in.Lead)}
	for _, p := range in.Team {
		if err := policy.CheckMember(p, now); err != nil {
			return nil, err
		}
		team = policy.WithMember(team, policy.MemberFrom(p))
	}
	if strings.TrimSpace(in.By) == "" {
		in.By = team[0].Mail
	}
	return team, nil
}

// openEpisodeFor returns the reference of the child's open episode, or "".
func openEpisodeFor(ctx context.Context, q querier, hash string) (string, error) {
	var ref string
	err := q.QueryRowContext(ctx, `SELECT ref FROM episodes WHERE child_hash = ? AND state <> 'closed'`, hash).Scan(&ref)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return ref, classify(err)
}

// nextRef takes the next sequence number of year and formats the reference.
func nextRef(ctx context.Context, tx *sql.Tx, year int) (string, error) {
	var n int
	err := tx.QueryRowContext(ctx, `INSERT INTO episode_numbers (year, last) VALUES (?, 1)
		ON CONFLICT(year) DO UPDATE SET last = last + 1 RETURNING last`, year).Scan(&n)
	if err != nil {
		return "", classify(err)
	}
	return policy.FormatRef(year, n), nil
}

func insertEpisode(ctx context.Context, tx *sql.Tx, ep *policy.Episode, hash, by string) error {
	now := formatTime(ep.OpenedAt)
	_, err := tx.ExecContext(ctx, `INSERT INTO episodes (ref, child_hash, state, lead, opened_at, opened_by, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, ep.Ref, hash, string(ep.State), ep.Lead, now, by, now)
	if err != nil {
		if errors.Is(classify(err), ErrDuplicate) { // the partial unique index, should the check above race
			if ref, _ := openEpisodeFor(ctx, tx, hash); ref != "" {
				return &OpenEpisodeError{Ref: ref}
			}
		}
		return classify(err)
	}
	mails := make([]string, len(ep.Team))
	for i, m := range ep.Team {
		if err := insertMember(ctx, tx, ep.Ref, m, ep.OpenedAt); err != nil {
			return err
		}
		mails[i] = m.Mail
	}
	return classify(appendEvent(ctx, tx, event{At: ep.OpenedAt, Type: EventEpisodeOpened, Data: episodeOpenedData{
		Episode: ep.Ref, State: string(ep.State), Lead: ep.Lead, Team: mails, By: by}}))
}

// insertMember adds m to the team unless a member with that mail is already on it.
func insertMember(ctx context.Context, tx *sql.Tx, ref string, m policy.Member, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO episode_members (episode_ref, mail, agency, sensitive, added_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT(episode_ref, mail) DO NOTHING`,
		ref, strings.ToLower(m.Mail), m.Agency, boolInt(m.SensitiveService), formatTime(at))
	return classify(err)
}

// HandOverEpisode makes to the episode's lead professional (adding them to the team if needed); the
// previous lead stays on the team.
func (s *Store) HandOverEpisode(ctx context.Context, ref string, to *directory.Practitioner, by string) (*policy.Episode, error) {
	now := s.opt.Now()
	if to == nil {
		return nil, fmt.Errorf("%w: a handover needs the new lead professional", policy.ErrInvalid)
	}
	if err := policy.CheckLead(to, now); err != nil {
		return nil, err
	}
	return s.changeEpisode(ctx, ref, func(tx *sql.Tx, ep *policy.Episode) (event, error) {
		return handOverTx(ctx, tx, ep, to, by, now)
	})
}

// handOverTx makes to the lead of ep inside tx and returns the ledger event to append.
func handOverTx(ctx context.Context, tx *sql.Tx, ep *policy.Episode, to *directory.Practitioner, by string, now time.Time) (event, error) {
	if !ep.Open() {
		return event{}, fmt.Errorf("%w: %s; a closed episode cannot be handed over", ErrEpisodeClosed, ep.Ref)
	}
	newLead := policy.MemberFrom(to)
	if newLead.Mail == ep.Lead {
		return event{}, fmt.Errorf("%w: %s is already the lead professional of %s", policy.ErrInvalid, newLead.Mail, ep.Ref)
	}
	if err := insertMember(ctx, tx, ep.Ref, newLead, now); err != nil {
		return event{}, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE episodes SET lead = ?, updated_at = ? WHERE ref = ?`, newLead.Mail, formatTime(now), ep.Ref); err != nil {
		return event{}, classify(err)
	}
	return event{At: now, Type: EventEpisodeHandover, Data: episodeChangeData{Episode: ep.Ref, From: ep.Lead, To: newLead.Mail, By: by}}, nil
}

// TransitionEpisode moves the episode to state to, if the CAF process allows it from where it is.
func (s *Store) TransitionEpisode(ctx context.Context, ref string, to policy.State, by string) (*policy.Episode, error) {
	now := s.opt.Now()
	return s.changeEpisode(ctx, ref, func(tx *sql.Tx, ep *policy.Episode) (event, error) {
		return transitionTx(ctx, tx, ep, to, by, now)
	})
}

// transitionTx moves ep to state to inside tx and returns the ledger event to append.
func transitionTx(ctx context.Context, tx *sql.Tx, ep *policy.Episode, to policy.State, by string, now time.Time) (event, error) {
	if err := policy.CheckTransition(ep.State, to); err != nil {
		if !ep.Open() {
			return event{}, fmt.Errorf("%w: %s: %w", ErrEpisodeClosed, ep.Ref, err)
		}
		return event{}, err
	}
	var closedAt any
	typ := EventEpisodeTransition
	if to == policy.StateClosed {
		closedAt, typ = formatTime(now), EventEpisodeClosed
	}
	_, err := tx.ExecContext(ctx, `UPDATE episodes SET state = ?, updated_at = ?, closed_at = ? WHERE ref = ?`,
		string(to), formatTime(now), closedAt, ep.Ref)
	if err != nil {
		return event{}, classify(err)
	}
	return event{At: now, Type: typ, Data: episodeChangeData{Episode: ep.Ref, From: string(ep.State), To: string(to), By: by}}, nil
}

// CloseEpisode closes the episode from any open state; the child may then have a new episode opened.
func (s *Store) CloseEpisode(ctx context.Context, ref, by string) (*policy.Episode, error) {
	return s.TransitionEpisode(ctx, ref, policy.StateClosed, by)
}

// changeEpisode loads ref inside a write transaction, lets change update it and name its ledger
// event, appends the event, commits, and returns the episode as it now is.
func (s *Store) changeEpisode(ctx context.Context, ref string, change func(*sql.Tx, *policy.Episode) (event, error)) (*policy.Episode, error) {
	var out *policy.Episode
	err := s.episodeTx(ctx, func(tx *sql.Tx) error {
		ep, err := loadEpisode(ctx, tx, ref)
		if err != nil {
			return err
		}
		ev, err := change(tx, ep)
		if err != nil {
			return err
		}
		if err := appendEvent(ctx, tx, ev); err != nil {
			return classify(err)
		}
		out, err = loadEpisode(ctx, tx, ref)
		return err
	})
	return out, err
}

// episodeTx runs fn in one write transaction (BEGIN IMMEDIATE) and commits it. fn's errors are
// returned as they are; the caller classifies database errors where they arise.
func (s *Store) episodeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	if s.wdb == nil {
		return fmt.Errorf("%w: store opened read-only", ErrUnavailable)
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return classify(tx.Commit())
}

// querier is *sql.DB or *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
