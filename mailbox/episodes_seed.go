// The quick start's sample episodes: one whose consent shares with the four sample agencies, and one
// with refusals (an agency, a named person, a section for an agency), over the practitioners of
// configs/sample-directory.ldif.

package mailbox

import (
	"context"
	"errors"
	"fmt"

	"cafgate/directory"
	"cafgate/policy"
)

// SeedEpisode is one sample episode as dev.json lists it.
type SeedEpisode struct {
	Reference string   `json:"reference"`
	Purpose   string   `json:"purpose"`
	State     string   `json:"state"`
	Lead      string   `json:"lead"`
	Team      []string `json:"team"`    // the public view: a member in a sensitive service is not listed
	Consent   string   `json:"consent"` // the consent in force, in brief
	Try       string   `json:"try"`     // a package to send to see it at work
}

// The sample practitioners the seed uses (configs/sample-directory.ldif).
const (
	seedLead       = "priya.placeholder@health.cafgate.test" // lead professional
	seedSafeguard  = "harriet.example@school.cafgate.test"   // safeguarding person
	seedSocialCare = "gwen.testcase@socialcare.cafgate.test" // social worker
	seedPolice     = "rita.notreal@police.cafgate.test"      // police
	seedSensitive  = "sam.fictitious@health.cafgate.test"    // sexual health nurse (sensitive service)
)

// The seed's fictional children and who it records as opening the episodes.
const (
	seedChildShares = "DEV-CHILD-0001"
	seedChildRefuse = "DEV-CHILD-0002"
	seedBy          = "cafgate dev"
)

// SeedDevEpisodes opens the two sample episodes (unless the sample children already have open
// episodes, which are then reported as they are) and returns their summaries for dev.json. dir must
// hold the sample directory's practitioners.
func SeedDevEpisodes(ctx context.Context, s *Store, key ChildKey, dir directory.Directory) ([]SeedEpisode, error) {
	people := map[string]*directory.Practitioner{}
	for _, mail := range []string{seedLead, seedSafeguard, seedSocialCare, seedPolice, seedSensitive} {
		p, err := dir.Lookup(ctx, mail)
		if err != nil {
			return nil, fmt.Errorf("sample episodes need %s from the sample directory: %w", mail, err)
		}
		people[mail] = p
	}
	team := []*directory.Practitioner{people[seedSafeguard], people[seedSocialCare], people[seedPolice], people[seedSensitive]}
	shares := policy.Consent{GivenBy: policy.GivenByParent, RecordedBy: seedBy}
	for _, mail := range []string{seedSafeguard, seedLead, seedSocialCare, seedPolice} {
		shares.Grants = append(shares.Grants, policy.Grant{To: policy.ScopeAgency, Name: people[mail].Agency})
	}
	refuses := policy.Consent{GivenBy: policy.GivenByParent, RecordedBy: seedBy,
		Grants: []policy.Grant{{To: policy.ScopeTeam}},
		Refusals: []policy.Refusal{
			{Of: policy.ScopeAgency, Name: people[seedPolice].Agency},
			{Of: policy.ScopePerson, Name: seedSensitive},
			{Of: policy.ScopeAgency, Name: people[seedSocialCare].Agency, Section: policy.SectionFamilyAndEnvironment},
		}}
	seeds := []struct {
		child, purpose, try string
		consent             policy.Consent
	}{
		{seedChildShares, "consent shares the whole assessment with the four sample agencies: a first package is delivered",
			fmt.Sprintf("from %s to %s and %s", seedSafeguard, seedSocialCare, seedPolice), shares},
		{seedChildRefuse, "consent refuses Eastshire Police, refuses one named practitioner, and withholds family and environment from Eastshire Children's Services",
			fmt.Sprintf("from %s to %s (refused), %s (refused by name) and %s (one section withheld)", seedSafeguard, seedPolice, seedSensitive, seedSocialCare), refuses},
	}
	var out []SeedEpisode
	for _, sd := range seeds {
		ep, err := seedOne(ctx, s, key, sd.child, people[seedLead], team, sd.consent)
		if err != nil {
			return nil, err
		}
		sum, err := seedSummary(ctx, s, ep, sd.purpose, sd.try)
		if err != nil {
			return nil, err
		}
		out = append(out, sum)
	}
	return out, nil
}

// seedOne opens the child's sample episode in assessment with its consent, or returns the open one.
func seedOne(ctx context.Context, s *Store, key ChildKey, child string, lead *directory.Practitioner, team []*directory.Practitioner, c policy.Consent) (*policy.Episode, error) {
	ep, err := s.EpisodeForChild(ctx, key, child)
	if err == nil {
		return ep, nil
	}
	if !errors.Is(err, ErrEpisodeNotFound) {
		return nil, err
	}
	ep, err = s.OpenEpisode(ctx, key, NewEpisode{ChildID: child, Lead: lead, Team: team, By: seedBy, State: policy.StateAssessment})
	if err != nil {
		return nil, fmt.Errorf("sample episode: %w", err)
	}
	if _, err := s.RecordConsent(ctx, ep.Ref, c); err != nil {
		return nil, fmt.Errorf("sample episode %s consent: %w", ep.Ref, err)
	}
	return ep, nil
}

func seedSummary(ctx context.Context, s *Store, ep *policy.Episode, purpose, try string) (SeedEpisode, error) {
	ea, err := s.EpisodeWithConsent(ctx, ep.Ref, s.opt.Now())
	if err != nil {
		return SeedEpisode{}, err
	}
	sum := SeedEpisode{Reference: ep.Ref, Purpose: purpose, State: string(ea.Episode.State), Lead: ea.Episode.Lead,
		Try: fmt.Sprintf("%s, with the reference in the Subject, e.g. %q", try, "["+ep.Ref+"] assessment"), Consent: "none recorded"}
	for _, m := range ea.Episode.PublicTeam("") {
		sum.Team = append(sum.Team, m.Mail)
	}
	if ea.Consent != nil {
		sum.Consent = ea.Consent.Describe()
	}
	return sum, nil
}
