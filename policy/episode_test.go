package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"cafgate/directory"
)

func TestTransitions(t *testing.T) {
	allowed := map[[2]State]bool{
		{StatePreparation, StateAssessment}: true, {StatePreparation, StateClosed}: true,
		{StateAssessment, StateActionPlan}: true, {StateAssessment, StateClosed}: true,
		{StateActionPlan, StateReview}: true, {StateActionPlan, StateClosed}: true,
		{StateReview, StateActionPlan}: true, {StateReview, StateClosed}: true,
	}
	states := []State{StatePreparation, StateAssessment, StateActionPlan, StateReview, StateClosed, "unknown"}
	for _, from := range states {
		for _, to := range states {
			err := CheckTransition(from, to)
			if (err == nil) != allowed[[2]State{from, to}] {
				t.Errorf("%s -> %s: %v", from, to, err)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("%s -> %s: error does not wrap ErrInvalid", from, to)
			}
		}
	}
	if err := CheckTransition(StateAssessment, StateReview); err == nil || !strings.Contains(err.Error(), "action-plan-and-delivery or closed") {
		t.Errorf("error does not name the next states: %v", err)
	}
	if err := CheckTransition(StateClosed, StateAssessment); err == nil || !strings.Contains(err.Error(), "new episode") {
		t.Errorf("closed: %v", err)
	}
	if s, err := ParseState(" Review "); s != StateReview || err != nil {
		t.Errorf("ParseState: %q %v", s, err)
	}
	if _, err := ParseState("done"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseState(done): %v", err)
	}
}

func TestPublicTeamHidesSensitiveMembers(t *testing.T) {
	e := episode()
	for _, viewer := range []string{harriet.Mail, "", priya.Mail} {
		for _, m := range e.PublicTeam(viewer) {
			if m.Mail == sam.Mail {
				t.Errorf("viewer %q sees the sensitive member", viewer)
			}
		}
		if len(e.PublicTeam(viewer)) != len(e.Team)-1 {
			t.Errorf("viewer %q sees %d of %d", viewer, len(e.PublicTeam(viewer)), len(e.Team))
		}
	}
	if got := e.PublicTeam(strings.ToUpper(sam.Mail)); len(got) != len(e.Team) {
		t.Errorf("sam does not see themself: %v", got)
	}
	if !e.OnTeam(strings.ToUpper(sam.Mail)) || e.OnTeam(zed.Mail) {
		t.Error("OnTeam")
	}
}

func TestLeadAndMembers(t *testing.T) {
	now := at
	if err := CheckLead(priya, now); err != nil {
		t.Errorf("priya: %v", err)
	}
	for _, p := range []struct {
		name, want string
		err        error
	}{{sam.Mail, "sensitive", CheckLead(sam, now)}, {oliver.Mail, "lapsed", CheckLead(oliver, now)}, {tom.Mail, "disabled", CheckMember(tom, now)}} {
		if !errors.Is(p.err, ErrInvalid) || !strings.Contains(p.err.Error(), p.want) {
			t.Errorf("%s: %v", p.name, p.err)
		}
	}
	if err := CheckMember(sam, now); err != nil {
		t.Errorf("sam may be a member: %v", err)
	}
	e := episode()
	if n := len(WithMember(e.Team, MemberFrom(priya))); n != len(e.Team) {
		t.Errorf("duplicate member added: %d", n)
	}
	if n := len(WithMember(e.Team, MemberFrom(zed))); n != len(e.Team)+1 {
		t.Errorf("member not added: %d", n)
	}
	if MayManage(e, priya, now) != nil || MayManage(e, harriet, now) == nil || MayManage(e, nil, now) == nil {
		t.Error("MayManage")
	}
	// An agency administrator of the lead's agency may manage it; one of another agency may not, nor a
	// disabled one.
	healthAdmin := practitioner("ada.admin@health.cafgate.test", health, directory.RoleAgencyAdmin)
	policeAdmin := practitioner("pat.admin@police.cafgate.test", police, directory.RoleAgencyAdmin)
	if err := MayManage(e, healthAdmin, now); err != nil {
		t.Errorf("the lead's agency administrator: %v", err)
	}
	if MayManage(e, policeAdmin, now) == nil {
		t.Error("another agency's administrator may manage")
	}
	healthAdmin.Disabled = true
	if MayManage(e, healthAdmin, now) == nil {
		t.Error("a disabled administrator may manage")
	}
	e.Lead = oliver.Mail
	if MayManage(e, oliver, now) == nil {
		t.Error("a lapsed lead may manage")
	}
}

func TestReferences(t *testing.T) {
	if got := FormatRef(2025, 42); got != "CAF-2025-000042" || !ValidRef(got) {
		t.Errorf("FormatRef: %q", got)
	}
	for _, bad := range []string{"CAF-25-000001", "caf-2025-000001", "CAF-2025-00001", "CAF-2025-000001x", ""} {
		if ValidRef(bad) {
			t.Errorf("ValidRef(%q)", bad)
		}
	}
	if got := FindRef("Re: [secure] caf-2025-000123 review notes"); got != "CAF-2025-000123" {
		t.Errorf("FindRef: %q", got)
	}
	if got := FindRef("no reference XCAF-2025-000123"); got != "" {
		t.Errorf("FindRef matched inside a word: %q", got)
	}
}

func TestInForce(t *testing.T) {
	t0 := at
	vs := []Consent{
		{Version: 2, RecordedAt: t0.Add(time.Hour), Withdrawn: true},
		{Version: 1, RecordedAt: t0},
		{Version: 3, RecordedAt: t0.Add(2 * time.Hour)},
	}
	for _, tc := range []struct {
		at   time.Time
		want int
	}{{t0.Add(-time.Second), 0}, {t0, 1}, {t0.Add(time.Hour - 1), 1}, {t0.Add(time.Hour), 2}, {t0.Add(3 * time.Hour), 3}} {
		got := InForce(vs, tc.at)
		if (got == nil && tc.want != 0) || (got != nil && got.Version != tc.want) {
			t.Errorf("at %v: %+v, want version %d", tc.at, got, tc.want)
		}
	}
}
