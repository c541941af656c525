// Episodes: one trip through the CAF process for one child, its states and allowed transitions, its
// lead professional and team, and the view of the team that may be shown to others.

package policy

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"cafgate/directory"
)

// State is where an episode is in the CAF process.
type State string

// The episode states, in process order.
const (
	StatePreparation State = "preparation"
	StateAssessment  State = "assessment"
	StateActionPlan  State = "action-plan-and-delivery"
	StateReview      State = "review"
	StateClosed      State = "closed"
)

// transitions lists, for each state, the states it may move to. Any open state may close (needs met,
// family moved away, stepped up to social care); review may go back to action plan and delivery for
// another cycle; closed is final (a new episode is opened instead).
var transitions = map[State][]State{
	StatePreparation: {StateAssessment, StateClosed},
	StateAssessment:  {StateActionPlan, StateClosed},
	StateActionPlan:  {StateReview, StateClosed},
	StateReview:      {StateActionPlan, StateClosed},
	StateClosed:      nil,
}

// ParseState accepts a state's identifier, case-insensitively.
func ParseState(s string) (State, error) {
	st := State(strings.ToLower(strings.TrimSpace(s)))
	if _, ok := transitions[st]; !ok {
		return "", fmt.Errorf("%w: unknown episode state %q (known: preparation, assessment, action-plan-and-delivery, review, closed)", ErrInvalid, s)
	}
	return st, nil
}

// Next returns the states s may move to.
func (s State) Next() []State { return append([]State(nil), transitions[s]...) }

// CheckTransition returns nil when an episode in state from may move to state to, else an error
// (wrapping ErrInvalid) naming the states it may move to.
func CheckTransition(from, to State) error {
	for _, t := range transitions[from] {
		if t == to {
			return nil
		}
	}
	if from == StateClosed {
		return fmt.Errorf("%w: the episode is closed; open a new episode instead", ErrInvalid)
	}
	next := make([]string, 0, 2)
	for _, t := range transitions[from] {
		next = append(next, string(t))
	}
	return fmt.Errorf("%w: an episode in %s cannot move to %s; it may move to %s", ErrInvalid, from, to, strings.Join(next, " or "))
}

// Member is one practitioner on an episode's team.
type Member struct {
	Mail             string `json:"mail"` // lower-case
	Agency           string `json:"agency"`
	SensitiveService bool   `json:"sensitive_service,omitempty"` // never named to other members
}

// MemberFrom makes a team member from a directory entry.
func MemberFrom(p *directory.Practitioner) Member {
	return Member{Mail: strings.ToLower(p.Mail), Agency: p.Agency, SensitiveService: p.SensitiveService}
}

// Episode is one child's trip through the CAF process. The child identifier is never part of it.
type Episode struct {
	Ref       string    `json:"reference"` // CAF-YYYY-NNNNNN
	State     State     `json:"state"`
	Lead      string    `json:"lead"` // the lead professional's mail; always on Team
	Team      []Member  `json:"team"`
	OpenedAt  time.Time `json:"opened_at"`
	UpdatedAt time.Time `json:"updated_at"`
	ClosedAt  time.Time `json:"closed_at,omitzero"`
}

// Open reports whether the episode is not closed.
func (e *Episode) Open() bool { return e.State != StateClosed }

// Member returns the team member with mail (compared case-insensitively).
func (e *Episode) Member(mail string) (Member, bool) {
	for _, m := range e.Team {
		if strings.EqualFold(m.Mail, mail) {
			return m, true
		}
	}
	return Member{}, false
}

// OnTeam reports whether mail is a member of the team (the lead always is).
func (e *Episode) OnTeam(mail string) bool {
	_, ok := e.Member(mail)
	return ok
}

// PublicTeam is the team as it may be shown to viewer: members in a sensitive service are left out
// (not counted, not hinted at) unless the viewer is that member. The lead is never in a sensitive
// service (CheckLead), so the lead is always shown.
func (e *Episode) PublicTeam(viewer string) []Member {
	out := make([]Member, 0, len(e.Team))
	for _, m := range e.Team {
		if !m.SensitiveService || strings.EqualFold(m.Mail, viewer) {
			out = append(out, m)
		}
	}
	return out
}

// CheckLead returns nil when p may be an episode's lead professional at now: in good standing and not
// in a sensitive service (the lead is named to the whole team and to the national index).
func CheckLead(p *directory.Practitioner, now time.Time) error {
	if err := p.Standing(now); err != nil {
		return fmt.Errorf("%w: %s cannot be the lead professional: %w", ErrInvalid, p.Mail, err)
	}
	if p.SensitiveService {
		return fmt.Errorf("%w: %s works in a sensitive service and cannot be the lead professional, who is named to the whole team", ErrInvalid, p.Mail)
	}
	return nil
}

// CheckMember returns nil when p may join a team at now: in good standing.
func CheckMember(p *directory.Practitioner, now time.Time) error {
	if err := p.Standing(now); err != nil {
		return fmt.Errorf("%w: %s cannot join the team: %w", ErrInvalid, p.Mail, err)
	}
	return nil
}

// WithMember returns team with m added, unless a member with the same mail is already there.
func WithMember(team []Member, m Member) []Member {
	for _, x := range team {
		if strings.EqualFold(x.Mail, m.Mail) {
			return team
		}
	}
	return append(team, m)
}

// MayManage returns nil when p may hand over, move or close the episode: its lead professional, or an
// agency administrator of the lead's agency (to reassign an episode whose lead has left or is away),
// either in good standing.
func MayManage(e *Episode, p *directory.Practitioner, now time.Time) error {
	if p == nil {
		return fmt.Errorf("%w: only the lead professional of %s, or an agency administrator of the lead's agency, may change it", ErrInvalid, e.Ref)
	}
	lead, _ := e.Member(e.Lead)
	isLead := strings.EqualFold(p.Mail, e.Lead)
	isAdmin := p.HasRole(directory.RoleAgencyAdmin) && lead.Agency != "" && p.Agency == lead.Agency
	if !isLead && !isAdmin {
		return fmt.Errorf("%w: only the lead professional of %s, or an agency administrator of the lead's agency, may change it", ErrInvalid, e.Ref)
	}
	if err := p.Standing(now); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

var refPattern = regexp.MustCompile(`^CAF-[0-9]{4}-[0-9]{6,}$`)

// FormatRef returns the episode reference for sequence number n of year: CAF-2025-000042.
func FormatRef(year, n int) string { return fmt.Sprintf("CAF-%04d-%06d", year, n) }

// ValidRef reports whether s has the form of an episode reference (CAF-YYYY-NNNNNN).
func ValidRef(s string) bool { return refPattern.MatchString(s) }

// FindRef returns the first episode reference in s (a Subject line, say), or "".
func FindRef(s string) string {
	return refInText.FindString(strings.ToUpper(s))
}

var refInText = regexp.MustCompile(`\bCAF-[0-9]{4}-[0-9]{6,}\b`)
