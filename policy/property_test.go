package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"cafgate/directory"
)

// world is one random episode, consent, package, sender and recipient.
type world struct {
	people []*directory.Practitioner
	in     DecisionInput
}

var agencies = []string{"Agency North", "Agency South", "Agency East", "Agency West"}

func randomWorld(r *rand.Rand) world {
	var w world
	for i := range 14 {
		p := practitioner(fmt.Sprintf("p%02d@agency%d.test", i, i%4), agencies[r.IntN(len(agencies))])
		if r.IntN(4) == 0 {
			p.Roles = append(p.Roles, directory.RoleSafeguardingPerson)
		}
		switch r.IntN(12) {
		case 0:
			p.VettingValidUntil = lapsed
		case 1:
			p.Disabled = true
		case 2:
			p.SensitiveService = true
		}
		w.people = append(w.people, p)
	}
	w.in = DecisionInput{Episode: w.randomEpisode(r), Package: randomPackage(r), At: at}
	w.in.Package.EpisodeRef = w.in.Episode.Ref
	w.in.Consent = w.randomConsent(r)
	w.in.Sender = w.people[r.IntN(len(w.people))]
	if r.IntN(2) == 0 { // senders are mostly on the team, so consent gets exercised
		w.in.Sender = w.person(w.in.Episode.Team[r.IntN(len(w.in.Episode.Team))].Mail)
	}
	w.in.Recipient = w.people[r.IntN(len(w.people))]
	if r.IntN(20) == 0 {
		w.in.Recipient, w.in.RecipientMail = nil, "nobody@nowhere.test"
	}
	return w
}

func (w *world) person(mail string) *directory.Practitioner {
	for _, p := range w.people {
		if p.Mail == mail {
			return p
		}
	}
	return nil
}

func (w *world) randomEpisode(r *rand.Rand) *Episode {
	states := []State{StatePreparation, StateAssessment, StateActionPlan, StateReview, StateClosed}
	e := &Episode{Ref: "CAF-2025-000007", State: states[r.IntN(len(states))]}
	if r.IntN(3) != 0 && e.State == StateClosed {
		e.State = StateAssessment // mostly open
	}
	lead := w.people[r.IntN(len(w.people))]
	e.Lead, e.Team = lead.Mail, []Member{MemberFrom(lead)}
	for _, p := range w.people {
		if r.IntN(2) == 0 {
			e.Team = WithMember(e.Team, MemberFrom(p))
		}
	}
	return e
}

func randomSections(r *rand.Rand, allowEmpty bool) []Section {
	var out []Section
	for _, s := range allSections {
		if r.IntN(2) == 0 {
			out = append(out, s)
		}
	}
	if len(out) == 0 && !allowEmpty {
		out = []Section{allSections[r.IntN(len(allSections))]}
	}
	return out
}

func randomPackage(r *rand.Rand) Package {
	p := Package{Sections: randomSections(r, r.IntN(10) == 0)}
	switch r.IntN(10) {
	case 0, 1:
		p.Override, p.OverrideReason = true, "risk of significant harm"
	case 2:
		p.Override = true // no reason
	}
	return p
}

// randomScope names an agency, a person (from the world or not), or the team.
func (w *world) randomScope(r *rand.Rand, teamAllowed bool) (ScopeKind, string) {
	switch r.IntN(3) {
	case 0:
		return ScopeAgency, agencies[r.IntN(len(agencies))]
	case 1:
		return ScopePerson, w.people[r.IntN(len(w.people))].Mail
	}
	if teamAllowed {
		return ScopeTeam, ""
	}
	return ScopeAgency, strings.ToUpper(agencies[r.IntN(len(agencies))])
}

func (w *world) randomConsent(r *rand.Rand) *Consent {
	if r.IntN(10) == 0 {
		return nil
	}
	c := consent(nil)
	for range r.IntN(7) {
		kind, name := w.randomScope(r, true)
		c.Grants = append(c.Grants, Grant{To: kind, Name: name, Sections: randomSections(r, true)})
	}
	for range r.IntN(4) {
		kind, name := w.randomScope(r, false)
		f := Refusal{Of: kind, Name: name}
		if r.IntN(2) == 0 {
			f.Section = allSections[r.IntN(len(allSections))]
		}
		c.Refusals = append(c.Refusals, f)
	}
	c.Withdrawn = r.IntN(7) == 0
	return c
}

// The oracle: the rules restated as plainly as possible, independent of Decide's bit sets.

func oracleReaches(kind ScopeKind, name string, e *Episode, p *directory.Practitioner) bool {
	switch kind {
	case ScopeTeam:
		for _, m := range e.Team {
			if strings.EqualFold(m.Mail, p.Mail) {
				return true
			}
		}
		return false
	case ScopeAgency:
		return strings.EqualFold(name, p.Agency)
	}
	return strings.EqualFold(name, p.Mail)
}

// oracleRefused: some refusal in force reaches p for section s.
func oracleRefused(c *Consent, e *Episode, p *directory.Practitioner, s Section) bool {
	for _, f := range c.Refusals {
		if oracleReaches(f.Of, f.Name, e, p) && (f.Section == "" || f.Section == s) {
			return true
		}
	}
	return false
}

// oracleMay: the consent in force lets p see s.
func oracleMay(c *Consent, e *Episode, p *directory.Practitioner, s Section) bool {
	if c == nil || c.Withdrawn || oracleRefused(c, e, p, s) {
		return false
	}
	for _, g := range c.Grants {
		if oracleReaches(g.To, g.Name, e, p) && (len(g.Sections) == 0 || slices.Contains(g.Sections, s)) {
			return true
		}
	}
	return false
}

func validOverride(in *DecisionInput) bool {
	return in.Sender != nil && in.Sender.HasRole(directory.RoleSafeguardingPerson) &&
		strings.TrimSpace(in.Package.OverrideReason) != ""
}

// delivered is the set of sections the decision sends.
func delivered(in *DecisionInput, d Decision) []Section {
	switch d.Result {
	case DeliverAll:
		if len(in.Package.Sections) == 0 {
			return AllSections()
		}
		return in.Package.Sections
	case DeliverSections:
		return d.Allowed
	}
	return nil
}

// checkInvariants is every property that must hold of one decision.
func checkInvariants(in *DecisionInput, d Decision) error {
	got := delivered(in, d)
	for _, s := range got {
		if !oracleMay(in.Consent, in.Episode, in.Recipient, s) && !(d.Override && validOverride(in)) {
			return fmt.Errorf("section %s delivered without consent or override: %+v", s, d)
		}
	}
	if len(got) > 0 {
		if !in.Episode.Open() || in.Recipient.Standing(at) != nil || !in.Episode.OnTeam(in.Sender.Mail) || in.Sender.Standing(at) != nil {
			return fmt.Errorf("delivered despite a closed episode, an unfit recipient or sender: %+v", d)
		}
	}
	if d.Override != (d.Reason == ReasonOverride) || (d.Override && (d.NotifyLead != in.Episode.Lead || !validOverride(in))) {
		return fmt.Errorf("override inconsistent: %+v", d)
	}
	if d.Result == DeliverSections {
		union := setOf(d.Allowed) | setOf(d.Withheld)
		if len(d.Allowed) == 0 || len(d.Withheld) == 0 || setOf(d.Allowed)&setOf(d.Withheld) != 0 || union != setOf(in.Package.Sections) {
			return fmt.Errorf("allowed and withheld do not split the package: %+v", d)
		}
	}
	if d.Sentence == "" || d.Reason == "" {
		return fmt.Errorf("no reason or sentence: %+v", d)
	}
	return nil
}

// propertySeeds is how many random cases each property is checked on; each case is reproducible from
// its seed.
const propertySeeds = 6000

func forSeeds(t *testing.T, n int, f func(r *rand.Rand) error) {
	t.Helper()
	for seed := range uint64(n) {
		if err := f(rand.New(rand.NewPCG(seed, 0x5eed))); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

// TestPropertyNoSectionWithoutConsent: no recipient ever receives a section the consent in force does
// not grant them, unless an override with a reason by a safeguarding person; plus the invariants of
// checkInvariants.
func TestPropertyNoSectionWithoutConsent(t *testing.T) {
	delivers, overrides, partial := 0, 0, 0
	forSeeds(t, propertySeeds, func(r *rand.Rand) error {
		w := randomWorld(r)
		d := Decide(w.in)
		if d.Delivers() {
			delivers++
		}
		if d.Override {
			overrides++
		}
		if d.Result == DeliverSections {
			partial++
		}
		return checkInvariants(&w.in, d)
	})
	// The generator must reach every outcome, or the property proves little.
	if delivers < propertySeeds/20 || overrides < propertySeeds/200 || partial < propertySeeds/50 {
		t.Fatalf("generator too narrow: %d deliveries, %d overrides, %d partial", delivers, overrides, partial)
	}
}

// TestPropertyRefusalBeatsGrant: adding a refusal that reaches the recipient at the same scope as a
// grant, or at a narrower or broader one, removes the refused section unless an override lets it through.
func TestPropertyRefusalBeatsGrant(t *testing.T) {
	tested := 0
	forSeeds(t, propertySeeds, func(r *rand.Rand) error {
		w := randomWorld(r)
		if w.in.Consent == nil || w.in.Recipient == nil {
			return nil
		}
		before := Decide(w.in)
		sent := delivered(&w.in, before)
		if len(sent) == 0 || before.Override {
			return nil
		}
		s := sent[r.IntN(len(sent))]
		c := *w.in.Consent
		f := Refusal{Of: ScopePerson, Name: w.in.Recipient.Mail} // narrowest
		if r.IntN(2) == 0 {
			f = Refusal{Of: ScopeAgency, Name: w.in.Recipient.Agency} // same as or broader than a person grant
		}
		if r.IntN(2) == 0 {
			f.Section = s
		}
		c.Refusals = append(slices.Clone(c.Refusals), f)
		in := w.in
		in.Consent = &c
		after := Decide(in)
		tested++
		if slices.Contains(delivered(&in, after), s) && !after.Override {
			return fmt.Errorf("refusal %+v did not stop %s: before %+v after %+v", f, s, before, after)
		}
		for _, x := range delivered(&in, after) {
			if !slices.Contains(sent, x) {
				return fmt.Errorf("a refusal added section %s", x)
			}
		}
		return checkInvariants(&in, after)
	})
	if tested < propertySeeds/20 {
		t.Fatalf("only %d cases reached a refusal", tested)
	}
}

// TestPropertyWithdrawalBeatsAllButOverride: the same consent withdrawn (grants left in place) sends
// nothing, unless an override does; an override still never reaches a lapsed or disabled recipient.
func TestPropertyWithdrawalBeatsAllButOverride(t *testing.T) {
	overrides := 0
	forSeeds(t, propertySeeds, func(r *rand.Rand) error {
		w := randomWorld(r)
		if w.in.Consent == nil {
			return nil
		}
		c := *w.in.Consent
		c.Withdrawn = true
		w.in.Consent = &c
		d := Decide(w.in)
		if d.Delivers() && !d.Override {
			return fmt.Errorf("withdrawn consent delivered: %+v", d)
		}
		if d.Override {
			overrides++
		}
		if d.Override && d.Reason != ReasonOverride {
			return fmt.Errorf("override with reason %s", d.Reason)
		}
		return checkInvariants(&w.in, d)
	})
	if overrides < propertySeeds/200 {
		t.Fatalf("only %d overrides after withdrawal", overrides)
	}
}
