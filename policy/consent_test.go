package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseGrantAndRefusal(t *testing.T) {
	grants := []struct {
		spec string
		want Grant
		out  string
	}{
		{"team", Grant{To: ScopeTeam}, "team"},
		{"TEAM:all", Grant{To: ScopeTeam}, "team"},
		{"team:consent,childs-details,consent", Grant{To: ScopeTeam, Sections: []Section{SectionChildsDetails, SectionConsent}}, "team:childs-details,consent"},
		{"agency=Eastshire Police", Grant{To: ScopeAgency, Name: "Eastshire Police"}, "agency=Eastshire Police"},
		{"agency= Health: North :all", Grant{To: ScopeAgency, Name: "Health: North"}, "agency=Health: North:all"},
		{"person=Rita.Notreal@Police.cafgate.test:family-and-environment", Grant{To: ScopePerson, Name: "rita.notreal@police.cafgate.test", Sections: []Section{SectionFamilyAndEnvironment}}, "person=rita.notreal@police.cafgate.test:family-and-environment"},
		{"person=a@b:childs-details,development-of-the-child,parents-and-carers,family-and-environment,conclusions-and-actions,consent", Grant{To: ScopePerson, Name: "a@b"}, "person=a@b"},
	}
	for _, tc := range grants {
		g, err := ParseGrant(tc.spec)
		if err != nil || g.To != tc.want.To || g.Name != tc.want.Name || !slices.Equal(g.Sections, tc.want.Sections) {
			t.Errorf("ParseGrant(%q) = %+v, %v; want %+v", tc.spec, g, err, tc.want)
			continue
		}
		if g.String() != tc.out {
			t.Errorf("%q: String() = %q, want %q", tc.spec, g.String(), tc.out)
		}
		if again, err := ParseGrant(g.String()); err != nil || again.String() != g.String() {
			t.Errorf("round trip of %q: %+v %v", g.String(), again, err)
		}
	}
	for _, bad := range []string{"", "everyone", "team=x", "agency=", "agency=Police:medical", "person=nobody", "person=@x", "agency=Health: North"} {
		if _, err := ParseGrant(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseGrant(%q): %v", bad, err)
		}
	}
	rs, err := ParseRefusal("agency=Eastshire Police:family-and-environment,childs-details")
	if err != nil || len(rs) != 2 || rs[0].Section != SectionChildsDetails || rs[1].Section != SectionFamilyAndEnvironment || rs[0].Name != "Eastshire Police" {
		t.Fatalf("ParseRefusal: %+v %v", rs, err)
	}
	if rs[1].String() != "agency=Eastshire Police:family-and-environment" {
		t.Errorf("refusal String: %q", rs[1].String())
	}
	if rs, err := ParseRefusal("person=Sam@Health.test"); err != nil || len(rs) != 1 || rs[0].Section != "" || rs[0].String() != "person=sam@health.test" {
		t.Errorf("whole refusal: %+v %v", rs, err)
	}
	if _, err := ParseRefusal("team"); err == nil || !strings.Contains(err.Error(), "not the team") {
		t.Errorf("refusal of the team: %v", err)
	}
}

func TestConsentValidate(t *testing.T) {
	c := consent([]Grant{{To: ScopePerson, Name: " Gwen@X.test "}}, Refusal{Of: ScopeAgency, Name: " Police "})
	c.GivenBy = "Carer"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.GivenBy != GivenByCarer || c.Grants[0].Name != "gwen@x.test" || c.Refusals[0].Name != "Police" {
		t.Errorf("not normalised: %+v", c)
	}
	for name, bad := range map[string]*Consent{
		"giver":            {GivenBy: "neighbour"},
		"grant scope":      {GivenBy: GivenByChild, Grants: []Grant{{To: "everyone"}}},
		"grant section":    {GivenBy: GivenByChild, Grants: []Grant{{To: ScopeTeam, Sections: []Section{"x"}}}},
		"refusal section":  {GivenBy: GivenByChild, Refusals: []Refusal{{Of: ScopeAgency, Name: "A", Section: "x"}}},
		"refusal of team":  {GivenBy: GivenByChild, Refusals: []Refusal{{Of: ScopeTeam}}},
		"withdrawal grant": {GivenBy: GivenByChild, Withdrawn: true, Grants: []Grant{{To: ScopeTeam}}},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestDescribe(t *testing.T) {
	c := consent([]Grant{team(), agency(police, SectionChildsDetails)}, refusePerson(sam.Mail, ""), refuseAgency(socialCare, SectionFamilyAndEnvironment))
	got := c.Describe()
	for _, want := range []string{"version 1", "parent", "the team (the whole assessment)", "Eastshire Police (child's details)", "refuses " + sam.Mail + " (everything)", "family and environment"} {
		if !strings.Contains(got, want) {
			t.Errorf("Describe lacks %q: %s", want, got)
		}
	}
	c.Withdrawn = true
	if !strings.Contains(c.Describe(), "withdrawn") {
		t.Errorf("withdrawn: %s", c.Describe())
	}
}

func TestSections(t *testing.T) {
	if len(AllSections()) != 6 || SectionFamilyAndEnvironment.Title() != "family and environment" {
		t.Fatal("sections")
	}
	if s, err := ParseSections("all"); s != nil || err != nil {
		t.Errorf("all: %v %v", s, err)
	}
	if _, err := ParseSections("childs-details,,consent"); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty item: %v", err)
	}
	if got := setOf([]Section{SectionConsent, SectionChildsDetails, SectionDevelopment}).titles(); got != "child's details, development of the child and consent" {
		t.Errorf("titles: %q", got)
	}
}

// FuzzParseSpecs: the short form never panics, and what parses prints back to a form that parses to
// the same thing.
func FuzzParseSpecs(f *testing.F) {
	for _, s := range []string{"team", "team:all", "agency=Eastshire Police:childs-details,consent", "person=a@b:consent",
		"agency=X: Y:all", "agency=:", "person=@", "=:", "team:,", "agency=A:family-and-environment,childs-details"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		if g, err := ParseGrant(spec); err == nil {
			again, err := ParseGrant(g.String())
			if err != nil || again.String() != g.String() || again.Name != g.Name || !slices.Equal(again.Sections, g.Sections) {
				t.Fatalf("grant %q -> %q -> %+v %v", spec, g.String(), again, err)
			}
		}
		if rs, err := ParseRefusal(spec); err == nil {
			for _, r := range rs {
				again, err := ParseRefusal(r.String())
				if err != nil || len(again) != 1 || again[0] != r {
					t.Fatalf("refusal %q -> %q -> %+v %v", spec, r.String(), again, err)
				}
			}
		}
	})
}
