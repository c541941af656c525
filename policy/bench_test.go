package policy

import (
	"fmt"
	"testing"

	"cafgate/directory"
)

// benchInput is an episode with 50 team members and a consent of 200 entries (150 grants, 50
// refusals) that the recipient, last on the team, is reached by only near the end.
func benchInput() DecisionInput {
	e := &Episode{Ref: "CAF-2025-000001", State: StateReview, Lead: "m00@agency0.test"}
	var members []*directory.Practitioner
	for i := range 50 {
		p := practitioner(fmt.Sprintf("m%02d@agency%d.test", i, i%10), fmt.Sprintf("Agency %d", i%10))
		if i == 0 {
			p.Roles = append(p.Roles, directory.RoleSafeguardingPerson)
		}
		members = append(members, p)
		e.Team = append(e.Team, MemberFrom(p))
	}
	c := consent(nil)
	for i := range 150 {
		switch i % 3 {
		case 0:
			c.Grants = append(c.Grants, Grant{To: ScopePerson, Name: fmt.Sprintf("other%03d@elsewhere.test", i), Sections: []Section{SectionChildsDetails}})
		case 1:
			c.Grants = append(c.Grants, Grant{To: ScopeAgency, Name: fmt.Sprintf("Other Agency %d", i)})
		default:
			c.Grants = append(c.Grants, Grant{To: ScopeTeam, Sections: []Section{allSections[i%6]}})
		}
	}
	for i := range 49 {
		c.Refusals = append(c.Refusals, Refusal{Of: ScopePerson, Name: fmt.Sprintf("other%03d@elsewhere.test", i)})
	}
	c.Refusals = append(c.Refusals, Refusal{Of: ScopeAgency, Name: "Agency 9", Section: SectionFamilyAndEnvironment})
	return DecisionInput{Episode: e, Consent: c, Sender: members[0], Recipient: members[49], At: at,
		Package: Package{EpisodeRef: e.Ref, Sections: AllSections()}}
}

// BenchmarkDecide: one decision over 50 team members and 200 consent entries.
func BenchmarkDecide(b *testing.B) {
	in := benchInput()
	if d := Decide(in); d.Result != DeliverSections {
		b.Fatalf("unexpected decision %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		Decide(in)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkDecideRefusedEarly: a refusal before consent is read (sender not on the team).
func BenchmarkDecideRefusedEarly(b *testing.B) {
	in := benchInput()
	in.Sender = practitioner("stranger@agency0.test", "Agency 0")
	b.ReportAllocs()
	for b.Loop() {
		Decide(in)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
