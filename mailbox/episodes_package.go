// Packages that change their episode: a manifest may open an episode, hand it to a new lead, move it
// on or close it, and record consent. The changes, the decisions made against the episode as they
// leave it, and the message itself are written in one transaction: all of them or nothing.

package mailbox

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"cafgate/directory"
	"cafgate/mailbox/ledger"
	"cafgate/policy"
)

// The episode operations a package may carry (the manifest's op names).
const (
	PackageOpOpen       = "open"
	PackageOpHandover   = "handover"
	PackageOpTransition = "transition"
	PackageOpClose      = "close"
)

// PackageOp is one operation of a package's manifest, its practitioners looked up.
type PackageOp struct {
	Op    string                    // PackageOpOpen, PackageOpHandover, PackageOpTransition or PackageOpClose
	Field string                    // where the manifest asks for it, e.g. "/operations/0"
	Lead  *directory.Practitioner   // open: the lead professional; handover: the new lead
	Team  []*directory.Practitioner // open: the other members
	State policy.State              // transition: the state to move to
}

// PackagePlan is what a package asks of its episode, and what deciding it needs.
type PackagePlan struct {
	Sender  *directory.Practitioner // the signed-in sender, in good standing
	ChildID string                  // open: the child's identifier (stored only as a keyed hash)
	Ops     []PackageOp
	Consent *policy.Consent // recorded after the operations; GivenBy, GivenAt, grants and refusals
	To      []Addressee
	Package policy.Package // EpisodeRef is empty when the first operation opens the episode
}

// PackageError refuses a package for one of its operations or its consent: Field is the manifest's
// JSON pointer at fault, Err the reason (it wraps ErrEpisodeNotFound, ErrEpisodeClosed,
// ErrEpisodeOpen with *OpenEpisodeError, or policy.ErrInvalid). Nothing was stored.
type PackageError struct {
	Field string
	Err   error
}

func (e *PackageError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the reason.
func (e *PackageError) Unwrap() error { return e.Err }

// RefusedError: every recipient of the package was refused once its operations were applied, so
// nothing was stored (the operations neither).
type RefusedError struct{ Decision *PackageDecision }

func (e *RefusedError) Error() string { return "mailbox: every recipient of the package was refused" }

// childKey is the key child identifiers are hashed under, derived from the content key as the
// commands and the API derive it.
func (s *Store) childKey() (ChildKey, error) { return DeriveChildKey(s.seal.key) }

// AcceptPackage applies plan's operations and consent, decides for each addressee against the
// episode and consent as they then are (a package that closes its episode is decided as the episode
// stood before the close: it is the last one shared under it), and stores m with its decisions, all in one transaction
// (BEGIN IMMEDIATE beside the writer's group commit). An operation or consent that may not be
// applied is a *PackageError; every addressee refused is a *RefusedError; either way nothing is
// stored. When the first operation opens the episode, m.Content gets a "CAF-Episode:" header with the
// new reference prepended (m.Digest follows), so the stored package names its episode.
func (s *Store) AcceptPackage(ctx context.Context, m *Incoming, plan *PackagePlan) (*PackageDecision, error) {
	if s.wdb == nil {
		return nil, fmt.Errorf("%w: store opened read-only", ErrUnavailable)
	}
	if plan == nil || plan.Sender == nil {
		return nil, fmt.Errorf("%w: a package plan needs its sender", ErrInvalid)
	}
	if err := validate(m); err != nil {
		return nil, err
	}
	var pd *PackageDecision
	err := s.episodeTx(ctx, func(tx *sql.Tx) error {
		now := s.opt.Now()
		// Who made each change, and why: the sender, by this package (its ID is in the ledger's
		// "accepted" event and in the sender's reply).
		by := strings.ToLower(plan.Sender.Mail) + " (package " + m.ID + ")"
		pkg := plan.Package
		opened, closing := false, policy.State("")
		for _, op := range plan.Ops {
			if op.Op == PackageOpClose && pkg.EpisodeRef != "" {
				if ep, err := loadEpisode(ctx, tx, pkg.EpisodeRef); err == nil && ep.Open() {
					closing = ep.State
				}
			}
			ref, err := s.applyOp(ctx, tx, plan, op, pkg.EpisodeRef, by, opened, now)
			if err != nil {
				return &PackageError{Field: op.Field, Err: err}
			}
			if op.Op == PackageOpOpen {
				pkg.EpisodeRef, opened = ref, true
				m.Content = append([]byte("CAF-Episode: "+ref+"\r\n"), m.Content...)
				m.Digest = sha256.Sum256(m.Content)
			}
		}
		if plan.Consent != nil {
			if err := s.packageConsent(ctx, tx, plan, pkg.EpisodeRef, by, now); err != nil {
				return &PackageError{Field: "/consent", Err: err}
			}
		}
		var ea *EpisodeAt
		if policy.ValidRef(pkg.EpisodeRef) {
			ep, err := loadEpisode(ctx, tx, pkg.EpisodeRef)
			switch {
			case errors.Is(err, ErrEpisodeNotFound):
			case err != nil:
				return err
			default:
				c, err := consentInForce(ctx, tx, ep.Ref, now)
				if err != nil {
					return err
				}
				if closing != "" && !ep.Open() {
					// The package that closes its episode is the last one shared under it: it is
					// decided as the episode stood before it closed.
					ep.State = closing
				}
				ea = &EpisodeAt{Episode: ep, Consent: c}
			}
		}
		pd = decideFor(ea, now, plan.Sender, plan.To, pkg)
		if policy.AllRefused(pd.Decisions) {
			return &RefusedError{Decision: pd}
		}
		r, err := s.prepare(m)
		if err != nil {
			return err
		}
		if r.overrideReason, err = s.sealOverride(m.ID, pd); err != nil {
			return err
		}
		led, err := ledger.NewAppender(ctx, tx)
		if err != nil {
			return classify(err)
		}
		if err := insertRow(ctx, tx, led, r, now); err != nil {
			return classify(err)
		}
		return insertDecisions(ctx, tx, ledAppender(ctx, led), m.ID, pd, r.overrideReason, now)
	})
	if err != nil {
		return pd, err
	}
	return pd, nil
}

// applyOp applies one operation inside tx and returns the episode's reference (the new one for an
// open). Who may: anyone in good standing opens; the lead or an agency administrator of the lead's
// agency hands over, moves on and closes, as does the opener in the package that opened it (opened).
func (s *Store) applyOp(ctx context.Context, tx *sql.Tx, plan *PackagePlan, op PackageOp, ref, by string, opened bool, now time.Time) (string, error) {
	if op.Op == PackageOpOpen {
		key, err := s.childKey()
		if err != nil {
			return "", err
		}
		hash, err := key.hash(plan.ChildID)
		if err != nil {
			return "", err
		}
		// The sender opening the episode is on its team (so they may send this package); the lead
		// may be someone else.
		in := NewEpisode{ChildID: plan.ChildID, Lead: op.Lead, Team: append(append([]*directory.Practitioner(nil), op.Team...), plan.Sender), By: by}
		team, err := checkNewEpisode(&in, now)
		if err != nil {
			return "", err
		}
		ep, err := openEpisodeTx(ctx, tx, hash, team, in, now)
		if err != nil {
			return "", err
		}
		return ep.Ref, nil
	}
	ep, err := loadEpisode(ctx, tx, ref)
	if err != nil {
		return "", err
	}
	if !opened {
		if err := policy.MayManage(ep, plan.Sender, now); err != nil {
			return "", err
		}
	}
	var ev event
	switch op.Op {
	case PackageOpHandover:
		if op.Lead == nil {
			return "", fmt.Errorf("%w: a handover needs the new lead professional", policy.ErrInvalid)
		}
		if err := policy.CheckLead(op.Lead, now); err != nil {
			return "", err
		}
		ev, err = handOverTx(ctx, tx, ep, op.Lead, by, now)
	case PackageOpTransition:
		ev, err = transitionTx(ctx, tx, ep, op.State, by, now)
	case PackageOpClose:
		ev, err = transitionTx(ctx, tx, ep, policy.StateClosed, by, now)
	default:
		return "", fmt.Errorf("%w: the episode operation %q is not one this gateway applies", policy.ErrInvalid, op.Op)
	}
	if err != nil {
		return "", err
	}
	return ep.Ref, classify(appendEvent(ctx, tx, ev))
}

// packageConsent records the package's consent as the episode's next version; only a member of the
// episode's team may record it.
func (s *Store) packageConsent(ctx context.Context, tx *sql.Tx, plan *PackagePlan, ref, by string, now time.Time) error {
	c := *plan.Consent
	if err := c.Validate(); err != nil {
		return err
	}
	if c.GivenAt.IsZero() {
		c.GivenAt = now
	}
	if c.GivenAt.After(now.Add(maxFutureGiven)) {
		return fmt.Errorf("%w: consent cannot be given in the future (%s)", policy.ErrInvalid, c.GivenAt.UTC().Format(time.RFC3339))
	}
	ep, err := loadEpisode(ctx, tx, ref)
	if err != nil {
		return err
	}
	if !ep.OnTeam(plan.Sender.Mail) {
		return fmt.Errorf("%w: only a member of the team of %s may record its consent", policy.ErrInvalid, ep.Ref)
	}
	c.RecordedAt, c.RecordedBy = now, by
	return s.recordConsentTx(ctx, tx, ep, &c)
}
