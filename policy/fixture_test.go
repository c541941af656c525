package policy

import (
	"time"

	"cafgate/directory"
)

// at is the acceptance instant of every test decision.
var at = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

var (
	valid  = time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC)
	lapsed = time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC)
)

const (
	school     = "Northfield Primary School"
	health     = "Riverside Community Health"
	socialCare = "Eastshire Children's Services"
	police     = "Eastshire Police"
)

func practitioner(mail, agency string, roles ...directory.Role) *directory.Practitioner {
	return &directory.Practitioner{Mail: mail, Agency: agency, Roles: append([]directory.Role{directory.RolePractitioner}, roles...),
		VettingValidUntil: valid}
}

// The cast mirrors configs/sample-directory.ldif, plus zed (not on the team) and nia (police, not on
// the team).
var (
	harriet = practitioner("harriet.example@school.cafgate.test", school, directory.RoleSafeguardingPerson)
	oliver  = func() *directory.Practitioner {
		p := practitioner("oliver.sample@school.cafgate.test", school)
		p.VettingValidUntil = lapsed
		return p
	}()
	priya = practitioner("priya.placeholder@health.cafgate.test", health, directory.RoleLeadProfessional)
	sam   = func() *directory.Practitioner {
		p := practitioner("sam.fictitious@health.cafgate.test", health)
		p.SensitiveService = true
		return p
	}()
	gwen = practitioner("gwen.testcase@socialcare.cafgate.test", socialCare)
	rita = practitioner("rita.notreal@police.cafgate.test", police)
	tom  = func() *directory.Practitioner {
		p := practitioner("tom.pretend@police.cafgate.test", police)
		p.Disabled = true
		return p
	}()
	zed = practitioner("zed.outsider@socialcare.cafgate.test", socialCare, directory.RoleSafeguardingPerson)
	nia = practitioner("nia.elsewhere@police.cafgate.test", police)
)

// episode returns a fresh open episode led by priya with everyone but zed and nia on the team.
func episode() *Episode {
	e := &Episode{Ref: "CAF-2025-000001", State: StateAssessment, Lead: priya.Mail}
	for _, p := range []*directory.Practitioner{priya, harriet, oliver, sam, gwen, rita, tom} {
		e.Team = append(e.Team, MemberFrom(p))
	}
	return e
}

func consent(grants []Grant, refusals ...Refusal) *Consent {
	return &Consent{Episode: "CAF-2025-000001", Version: 1, GivenBy: GivenByParent, GivenAt: at.Add(-time.Hour),
		RecordedAt: at.Add(-time.Hour), RecordedBy: priya.Mail, Grants: grants, Refusals: refusals}
}

func team(sections ...Section) Grant { return Grant{To: ScopeTeam, Sections: sections} }
func agency(name string, sections ...Section) Grant {
	return Grant{To: ScopeAgency, Name: name, Sections: sections}
}
func person(mail string, sections ...Section) Grant {
	return Grant{To: ScopePerson, Name: mail, Sections: sections}
}
func refuseAgency(name string, s Section) Refusal {
	return Refusal{Of: ScopeAgency, Name: name, Section: s}
}
func refusePerson(mail string, s Section) Refusal {
	return Refusal{Of: ScopePerson, Name: mail, Section: s}
}

// input is a decision from harriet to gwen of two sections under whole consent to the team.
func input() DecisionInput {
	return DecisionInput{
		Episode:   episode(),
		Consent:   consent([]Grant{team()}),
		Package:   Package{EpisodeRef: "CAF-2025-000001", Sections: []Section{SectionChildsDetails, SectionFamilyAndEnvironment}},
		Sender:    harriet,
		Recipient: gwen,
		At:        at,
	}
}
