package policy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"cafgate/directory"
)

// TestDecisionTable covers every rule of docs/consent.md, each from the base input (harriet sends
// child's details and family and environment to gwen under whole consent to the team) with one change.
func TestDecisionTable(t *testing.T) {
	cd, fe, dev := SectionChildsDetails, SectionFamilyAndEnvironment, SectionDevelopment
	both := []Section{cd, fe}
	override := func(in *DecisionInput) {
		in.Package.Override, in.Package.OverrideReason = true, "disclosure of harm at school today"
	}
	tests := []struct {
		name     string
		change   func(in *DecisionInput)
		result   Result
		reason   Reason
		allowed  []Section
		withheld []Section
		override bool
		words    string // must appear in the sentence
	}{
		{"base: whole consent to the team", func(in *DecisionInput) {}, DeliverAll, ReasonConsent, both, nil, false, "whole package"},

		// The package itself.
		{"unknown section", func(in *DecisionInput) { in.Package.Sections = []Section{cd, "medical-history"} }, Refuse, ReasonUnknownSection, nil, nil, false, "medical-history"},
		{"override without a reason", func(in *DecisionInput) { in.Package.Override = true }, Refuse, ReasonOverrideReasonMissing, nil, nil, false, "no reason"},
		{"override with a blank reason", func(in *DecisionInput) { in.Package.Override, in.Package.OverrideReason = true, "  \t " }, Refuse, ReasonOverrideReasonMissing, nil, nil, false, "no reason"},
		{"override reason too long", func(in *DecisionInput) { in.Package.OverrideReason = strings.Repeat("x", MaxOverrideReason+1) }, Refuse, ReasonOverrideReasonTooLong, nil, nil, false, "longer"},

		// The episode.
		{"unknown episode", func(in *DecisionInput) { in.Episode = nil; in.Package.EpisodeRef = "CAF-2025-999999" }, Refuse, ReasonUnknownEpisode, nil, nil, false, "CAF-2025-999999"},
		{"malformed reference", func(in *DecisionInput) { in.Episode = nil; in.Package.EpisodeRef = "nonsense" }, Refuse, ReasonUnknownEpisode, nil, nil, false, "CAF-YYYY-NNNNNN"},
		{"reference differs from the episode given", func(in *DecisionInput) { in.Package.EpisodeRef = "CAF-2025-000002" }, Refuse, ReasonUnknownEpisode, nil, nil, false, "CAF-2025-000002"},
		{"closed episode", func(in *DecisionInput) { in.Episode.State = StateClosed }, Refuse, ReasonEpisodeClosed, nil, nil, false, "closed"},
		{"closed episode beats an override", func(in *DecisionInput) { in.Episode.State = StateClosed; override(in) }, Refuse, ReasonEpisodeClosed, nil, nil, false, "closed"},

		// The sender.
		{"sender unknown", func(in *DecisionInput) { in.Sender = nil }, Refuse, ReasonSenderUnknown, nil, nil, false, "not in any"},
		{"manifest names another sender", func(in *DecisionInput) { in.Package.Sender = rita.Mail }, Refuse, ReasonSenderMismatch, nil, nil, false, "different sender"},
		{"manifest names the sender in other case", func(in *DecisionInput) { in.Package.Sender = strings.ToUpper(harriet.Mail) }, DeliverAll, ReasonConsent, both, nil, false, ""},
		{"sender's vetting lapsed", func(in *DecisionInput) { in.Sender = oliver }, Refuse, ReasonSenderStanding, nil, nil, false, "lapsed"},
		{"sender disabled", func(in *DecisionInput) { in.Sender = tom }, Refuse, ReasonSenderStanding, nil, nil, false, "disabled"},
		{"sender not on the team", func(in *DecisionInput) { in.Sender = nia }, Refuse, ReasonSenderNotOnTeam, nil, nil, false, "not on the team"},
		{"safeguarding person off the team cannot override", func(in *DecisionInput) { in.Sender = zed; override(in) }, Refuse, ReasonSenderNotOnTeam, nil, nil, false, "not on the team"},
		{"override by someone not a safeguarding person", func(in *DecisionInput) { in.Sender = gwen; in.Recipient = rita; override(in) }, Refuse, ReasonOverrideNotPermitted, nil, nil, false, "safeguarding person"},
		{"a reason alone asks for an override", func(in *DecisionInput) { in.Sender = gwen; in.Recipient = rita; in.Package.OverrideReason = "urgent" }, Refuse, ReasonOverrideNotPermitted, nil, nil, false, "safeguarding person"},

		// The recipient's directory entry, never overcome by an override.
		{"recipient unknown", func(in *DecisionInput) { in.Recipient, in.RecipientMail = nil, "Someone@Nowhere.test" }, Refuse, ReasonRecipientUnknown, nil, nil, false, "someone@nowhere.test"},
		{"recipient disabled", func(in *DecisionInput) { in.Recipient = tom }, Refuse, ReasonRecipientDisabled, nil, nil, false, "disabled"},
		{"recipient disabled, with override", func(in *DecisionInput) { in.Recipient = tom; override(in) }, Refuse, ReasonRecipientDisabled, nil, nil, false, "even under an override"},
		{"recipient lapsed", func(in *DecisionInput) { in.Recipient = oliver }, Refuse, ReasonRecipientLapsed, nil, nil, false, "lapsed"},
		{"recipient lapsed, with override", func(in *DecisionInput) { in.Recipient = oliver; override(in) }, Refuse, ReasonRecipientLapsed, nil, nil, false, "even under an override"},

		// Consent: default no sharing.
		{"no consent recorded", func(in *DecisionInput) { in.Consent = nil }, Refuse, ReasonNoConsent, nil, nil, false, "without consent"},
		{"consent grants nothing", func(in *DecisionInput) { in.Consent = consent(nil) }, Refuse, ReasonNotGranted, nil, nil, false, "does not cover"},
		{"consent withdrawn", func(in *DecisionInput) { in.Consent.Withdrawn = true }, Refuse, ReasonWithdrawn, nil, nil, false, "withdrawn"},
		{"withdrawn consent still listing grants grants nothing", func(in *DecisionInput) {
			in.Consent = consent([]Grant{team(), person(gwen.Mail)})
			in.Consent.Withdrawn = true
		}, Refuse, ReasonWithdrawn, nil, nil, false, "withdrawn"},

		// Grants.
		{"recipient off the team, no grant reaches them", func(in *DecisionInput) { in.Recipient = zed }, Refuse, ReasonNotGranted, nil, nil, false, "does not cover"},
		{"agency grant reaches someone off the team", func(in *DecisionInput) { in.Recipient = nia; in.Consent = consent([]Grant{agency(police)}) }, DeliverAll, ReasonConsent, both, nil, false, ""},
		{"agency names compare case-insensitively", func(in *DecisionInput) { in.Recipient = nia; in.Consent = consent([]Grant{agency("eastshire POLICE")}) }, DeliverAll, ReasonConsent, both, nil, false, ""},
		{"named-person grant", func(in *DecisionInput) { in.Recipient = zed; in.Consent = consent([]Grant{person(zed.Mail)}) }, DeliverAll, ReasonConsent, both, nil, false, ""},
		{"a named-person grant does not reach a colleague", func(in *DecisionInput) { in.Recipient = nia; in.Consent = consent([]Grant{person(rita.Mail)}) }, Refuse, ReasonNotGranted, nil, nil, false, ""},
		{"sections granted: others withheld", func(in *DecisionInput) { in.Consent = consent([]Grant{team(cd, dev)}) }, DeliverSections, ReasonSectionsWithheld, []Section{cd}, []Section{fe}, false, "not covered"},
		{"grants add up", func(in *DecisionInput) { in.Consent = consent([]Grant{team(cd), agency(socialCare, fe)}) }, DeliverAll, ReasonConsent, both, nil, false, ""},

		// Refusals beat grants at the same or a narrower scope.
		{"agency refused, team granted", func(in *DecisionInput) {
			in.Recipient = rita
			in.Consent = consent([]Grant{team()}, refuseAgency(police, ""))
		}, Refuse, ReasonRefusedAgency, nil, nil, false, police},
		{"agency refused, person granted by name", func(in *DecisionInput) {
			in.Recipient = rita
			in.Consent = consent([]Grant{person(rita.Mail)}, refuseAgency(police, ""))
		}, Refuse, ReasonRefusedAgency, nil, nil, false, police},
		{"person refused, agency granted", func(in *DecisionInput) {
			in.Recipient = sam
			in.Consent = consent([]Grant{agency(health)}, refusePerson(sam.Mail, ""))
		}, Refuse, ReasonRefusedPerson, nil, nil, false, sam.Mail},
		{"person refused, same-scope grant", func(in *DecisionInput) { in.Consent = consent([]Grant{person(gwen.Mail)}, refusePerson(gwen.Mail, "")) }, Refuse, ReasonRefusedPerson, nil, nil, false, ""},
		{"section refused for the agency", func(in *DecisionInput) { in.Consent = consent([]Grant{team()}, refuseAgency(socialCare, fe)) }, DeliverSections, ReasonSectionsWithheld, []Section{cd}, []Section{fe}, false, "refused by the family"},
		{"section refused for the person, granted by name", func(in *DecisionInput) {
			in.Consent = consent([]Grant{person(gwen.Mail, fe, cd)}, refusePerson(gwen.Mail, fe))
		}, DeliverSections, ReasonSectionsWithheld, []Section{cd}, []Section{fe}, false, "refused by the family"},
		{"refused and uncovered sections told apart", func(in *DecisionInput) {
			in.Package.Sections = []Section{cd, fe, dev}
			in.Consent = consent([]Grant{team(cd, fe)}, refuseAgency(socialCare, fe))
		}, DeliverSections, ReasonSectionsWithheld, []Section{cd}, []Section{dev, fe}, false, "not covered"},
		{"every present section refused", func(in *DecisionInput) {
			in.Package.Sections = []Section{fe}
			in.Consent = consent([]Grant{team()}, refuseAgency(socialCare, fe))
		}, Refuse, ReasonRefusedSections, nil, nil, false, "family and environment"},
		{"refusal of someone else leaves the recipient alone", func(in *DecisionInput) {
			in.Consent = consent([]Grant{team()}, refuseAgency(police, ""), refusePerson(sam.Mail, ""))
		}, DeliverAll, ReasonConsent, both, nil, false, ""},

		// A package not divided into sections.
		{"unsectioned package, whole consent", func(in *DecisionInput) { in.Package.Sections = nil }, DeliverAll, ReasonConsent, AllSections(), nil, false, ""},
		{"unsectioned package, partial consent", func(in *DecisionInput) { in.Package.Sections = nil; in.Consent = consent([]Grant{team(cd)}) }, Refuse, ReasonWholeRequired, nil, nil, false, "not divided"},
		{"unsectioned package, partial consent, override", func(in *DecisionInput) {
			in.Package.Sections = nil
			in.Consent = consent([]Grant{team(cd)})
			override(in)
		}, DeliverAll, ReasonOverride, AllSections(), nil, true, ""},

		// Override by a named safeguarding person with a reason.
		{"override beyond partial consent", func(in *DecisionInput) { in.Consent = consent([]Grant{team(cd)}); override(in) }, DeliverAll, ReasonOverride, both, nil, true, "lead professional is told"},
		{"override without any consent", func(in *DecisionInput) { in.Consent = nil; override(in) }, DeliverAll, ReasonOverride, both, nil, true, ""},
		{"override beats withdrawal", func(in *DecisionInput) { in.Consent.Withdrawn = true; override(in) }, DeliverAll, ReasonOverride, both, nil, true, ""},
		{"override beats a refusal", func(in *DecisionInput) {
			in.Recipient = rita
			in.Consent = consent([]Grant{team()}, refuseAgency(police, ""))
			override(in)
		}, DeliverAll, ReasonOverride, both, nil, true, ""},
		{"override not needed: consent covers it", func(in *DecisionInput) { override(in) }, DeliverAll, ReasonConsent, both, nil, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := input()
			tc.change(&in)
			d := Decide(in)
			if d.Result != tc.result || d.Reason != tc.reason {
				t.Fatalf("got %s/%s (%q), want %s/%s", d.Result, d.Reason, d.Sentence, tc.result, tc.reason)
			}
			if tc.result == Refuse && (d.Allowed != nil || d.Withheld != nil) {
				t.Errorf("refusal lists sections: allowed %v withheld %v", d.Allowed, d.Withheld)
			}
			if tc.result != Refuse && (!slices.Equal(d.Allowed, tc.allowed) || !slices.Equal(d.Withheld, tc.withheld)) {
				t.Errorf("allowed %v withheld %v, want %v / %v", d.Allowed, d.Withheld, tc.allowed, tc.withheld)
			}
			if d.Override != tc.override || (d.NotifyLead != "") != tc.override {
				t.Errorf("override %v notify %q, want override %v", d.Override, d.NotifyLead, tc.override)
			}
			if tc.override && d.NotifyLead != priya.Mail {
				t.Errorf("notify %q, want the lead %s", d.NotifyLead, priya.Mail)
			}
			if d.Sentence == "" || !strings.Contains(d.Sentence, tc.words) {
				t.Errorf("sentence %q lacks %q", d.Sentence, tc.words)
			}
			if want := in.recipientMail(); d.Recipient != want {
				t.Errorf("recipient %q, want %q", d.Recipient, want)
			}
		})
	}
}

// TestDecideDoesNotChangeItsInput: the episode and consent are shared by every recipient's decision.
func TestDecideDoesNotChangeItsInput(t *testing.T) {
	in := input()
	in.Consent = consent([]Grant{team(SectionChildsDetails)}, refuseAgency(police, ""))
	before, _ := json.Marshal(in)
	Decide(in)
	if after, _ := json.Marshal(in); string(after) != string(before) {
		t.Fatalf("Decide changed its input:\n%s\n%s", before, after)
	}
}

func TestSenderReportAndRefusalText(t *testing.T) {
	in := input()
	in.Consent = consent([]Grant{team()}, refuseAgency(police, ""), refuseAgency(socialCare, SectionFamilyAndEnvironment))
	var ds []Decision
	for _, rcpt := range []*directory.Practitioner{rita, gwen, harriet} {
		one := in
		one.Recipient = rcpt
		ds = append(ds, Decide(one))
	}
	if AllRefused(ds) || !NeedsReport(ds) {
		t.Fatalf("AllRefused %v NeedsReport %v", AllRefused(ds), NeedsReport(ds))
	}
	rep := SenderReport("CAF-2025-000001", ds)
	for _, want := range []string{"CAF-2025-000001", "Not sent to:", rita.Mail, police, "withheld", gwen.Mail, "Sent in full:", harriet.Mail} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	refused := []Decision{ds[0], ds[0]}
	if !AllRefused(refused) || NeedsReport(ds[2:]) || strings.Count(RefusalText(refused), police) != 1 {
		t.Errorf("refusal text %q", RefusalText(refused))
	}
	in.Package.Override, in.Package.OverrideReason = true, "risk of harm"
	in.Recipient = rita
	if got := Overrides(append(ds, Decide(in))); len(got) != 1 || got[0].Recipient != rita.Mail {
		t.Errorf("overrides %v", got)
	}
}
