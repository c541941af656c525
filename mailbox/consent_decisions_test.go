package mailbox

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"cafgate/directory"
	"cafgate/policy"
)

var allSample = []Addressee{{pRita.Mail, pRita}, {pSam.Mail, pSam}, {pGwen.Mail, pGwen}, {"nobody@nowhere.test", nil}, {pTom.Mail, pTom}}

// seededRefusal opens the sample episode whose consent refuses the police, sam by name, and family and
// environment for social care; the clock is then an hour on.
func seededRefusal(t *testing.T) (*Store, *clock, *policy.Episode) {
	t.Helper()
	s, clk, key := episodeStore(t)
	sum, err := SeedDevEpisodes(context.Background(), s, key, sampleDirectory)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := s.Episode(context.Background(), sum[1].Reference)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	return s, clk, ep
}

func TestDecidePackageAndRecord(t *testing.T) {
	s, clk, ep := seededRefusal(t)
	ctx := context.Background()
	pkg := policy.Package{EpisodeRef: ep.Ref, Sender: pHarriet.Mail, Sections: []policy.Section{policy.SectionChildsDetails, policy.SectionFamilyAndEnvironment}}
	pd, err := s.DecidePackage(ctx, clk.Now(), pHarriet, allSample, pkg)
	if err != nil {
		t.Fatal(err)
	}
	if pd.Episode == nil || pd.ConsentVersion != 1 || pd.Sender != pHarriet.Mail || len(pd.Decisions) != len(allSample) {
		t.Fatalf("package decision %+v", pd)
	}
	want := []struct {
		result policy.Result
		reason policy.Reason
	}{
		{policy.Refuse, policy.ReasonRefusedAgency},
		{policy.Refuse, policy.ReasonRefusedPerson},
		{policy.DeliverSections, policy.ReasonSectionsWithheld},
		{policy.Refuse, policy.ReasonRecipientUnknown},
		{policy.Refuse, policy.ReasonRecipientDisabled},
	}
	for i, d := range pd.Decisions {
		if d.Result != want[i].result || d.Reason != want[i].reason {
			t.Errorf("%s: %s/%s, want %s/%s", d.Recipient, d.Result, d.Reason, want[i].result, want[i].reason)
		}
	}
	if err := s.Accept(ctx, msg("m1", body(1))); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDecisions(ctx, "m1", pd); err != nil {
		t.Fatal(err)
	}
	got, err := s.Decisions(ctx, "m1")
	if err != nil || len(got) != len(allSample) {
		t.Fatalf("Decisions: %d %v", len(got), err)
	}
	for i, d := range got {
		p := pd.Decisions[i]
		if d.Recipient != p.Recipient || d.Result != p.Result || d.Reason != p.Reason || !slices.Equal(d.Allowed, p.Allowed) ||
			!slices.Equal(d.Withheld, p.Withheld) || d.Episode != ep.Ref || d.ConsentVersion != 1 || !d.DecidedAt.Equal(pd.At) {
			t.Errorf("stored %+v, decided %+v", d, p)
		}
	}
	if got[2].Withheld[0] != policy.SectionFamilyAndEnvironment {
		t.Errorf("withheld %v", got[2].Withheld)
	}
	if err := s.RecordDecisions(ctx, "m1", pd); !errors.Is(err, ErrDuplicate) {
		t.Errorf("recording twice: %v", err)
	}
	if err := s.RecordDecisions(ctx, "not-stored", pd); err == nil {
		t.Error("decisions for a message not stored")
	}
	if n := count(t, rawDB(t, s.opt.Path), `SELECT count(*) FROM decisions`); n != len(allSample) {
		t.Errorf("%d decision rows", n)
	}
	if o, err := s.Overrides(ctx, false); err != nil || len(o) != 0 {
		t.Errorf("overrides without an override: %v %v", o, err)
	}
}

func TestDecidePackageEpisodeProblems(t *testing.T) {
	s, clk, ep := seededRefusal(t)
	ctx := context.Background()
	to := []Addressee{{pGwen.Mail, pGwen}}
	for _, tc := range []struct {
		name   string
		ref    string
		reason policy.Reason
	}{{"unknown", "CAF-2025-999999", policy.ReasonUnknownEpisode}, {"malformed", "CAF-9", policy.ReasonUnknownEpisode}, {"none", "", policy.ReasonUnknownEpisode}} {
		pd, err := s.DecidePackage(ctx, clk.Now(), pHarriet, to, policy.Package{EpisodeRef: tc.ref})
		if err != nil || pd.Episode != nil || pd.Decisions[0].Reason != tc.reason {
			t.Errorf("%s: %+v %v", tc.name, pd, err)
		}
	}
	// Consent recorded after the acceptance instant is not in force for it.
	pd, err := s.DecidePackage(ctx, ep.OpenedAt.Add(-time.Nanosecond), pHarriet, to, policy.Package{EpisodeRef: ep.Ref, Sections: []policy.Section{policy.SectionConsent}})
	if err != nil || pd.ConsentVersion != 0 || pd.Decisions[0].Reason != policy.ReasonNoConsent {
		t.Errorf("before consent: %+v %v", pd, err)
	}
	if _, err := s.CloseEpisode(ctx, ep.Ref, "x"); err != nil {
		t.Fatal(err)
	}
	pd, err = s.DecidePackage(ctx, clk.Now(), pHarriet, to, policy.Package{EpisodeRef: ep.Ref, Sections: []policy.Section{policy.SectionConsent}})
	if err != nil || pd.Decisions[0].Reason != policy.ReasonEpisodeClosed {
		t.Errorf("closed: %+v %v", pd, err)
	}
}

func TestOverrideRecordedAndLeadTold(t *testing.T) {
	s, clk, ep := seededRefusal(t)
	ctx := context.Background()
	if _, err := s.WithdrawConsent(ctx, ep.Ref, policy.GivenByParent, time.Time{}, pPriya.Mail); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	reason := "Disclosure of harm at school today; police must act"
	pkg := policy.Package{EpisodeRef: ep.Ref, Sections: []policy.Section{policy.SectionChildsDetails}, Override: true, OverrideReason: reason}
	pd, err := s.DecidePackage(ctx, clk.Now(), pHarriet, []Addressee{{pRita.Mail, pRita}, {pTom.Mail, pTom}}, pkg)
	if err != nil {
		t.Fatal(err)
	}
	if d := pd.Decisions[0]; d.Result != policy.DeliverAll || !d.Override || d.NotifyLead != pPriya.Mail {
		t.Fatalf("rita: %+v", d)
	}
	if d := pd.Decisions[1]; d.Result != policy.Refuse || d.Reason != policy.ReasonRecipientDisabled {
		t.Fatalf("tom: %+v", d)
	}
	if err := s.Accept(ctx, msg("m2", body(2))); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDecisions(ctx, "m2", pd); err != nil {
		t.Fatal(err)
	}
	o, err := s.Overrides(ctx, true)
	if err != nil || len(o) != 1 || o[0].Reason != reason || o[0].Lead != pPriya.Mail || o[0].Sender != pHarriet.Mail || o[0].Episode != ep.Ref || o[0].LeadTold {
		t.Fatalf("overrides: %+v %v", o, err)
	}
	db := rawDB(t, s.opt.Path)
	if n := count(t, db, `SELECT count(*) FROM overrides WHERE CAST(reason AS TEXT) LIKE '%Disclosure%'`); n != 0 {
		t.Error("override reason stored in clear")
	}
	if n := count(t, db, `SELECT count(*) FROM ledger_events WHERE data LIKE '%Disclosure%'`); n != 0 {
		t.Error("override reason in the ledger")
	}
	types := ledgerTypes(t, s, -1)
	if !slices.Equal(types[len(types)-3:], []string{EventAccepted, EventDecisions, EventOverride}) {
		t.Errorf("ledger tail %v", types)
	}
	if err := s.MarkLeadTold(ctx, "m2"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkLeadTold(ctx, "m2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("told twice: %v", err)
	}
	if o, _ := s.Overrides(ctx, true); len(o) != 0 {
		t.Errorf("still untold: %+v", o)
	}
	if o, _ := s.Overrides(ctx, false); len(o) != 1 || !o[0].LeadTold {
		t.Errorf("all overrides: %+v", o)
	}
	// A sealed reason moved to another message does not open.
	if err := s.Accept(ctx, msg("m3", body(3))); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO overrides (message_id, episode_ref, sender, lead, reason_nonce, reason, recorded_at)
		SELECT 'm3', episode_ref, sender, lead, reason_nonce, reason, recorded_at FROM overrides WHERE message_id = 'm2'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Overrides(ctx, false); !errors.Is(err, ErrCorrupt) {
		t.Errorf("moved reason: %v", err)
	}
}

func TestSeedDevEpisodes(t *testing.T) {
	s, clk, key := episodeStore(t)
	ctx := context.Background()
	first, err := SeedDevEpisodes(ctx, s, key, sampleDirectory)
	if err != nil || len(first) != 2 {
		t.Fatalf("seed: %+v %v", first, err)
	}
	again, err := SeedDevEpisodes(ctx, s, key, sampleDirectory)
	if err != nil || again[0].Reference != first[0].Reference || again[1].Reference != first[1].Reference {
		t.Fatalf("second seed opened new episodes: %+v %v", again, err)
	}
	for _, sum := range first {
		if slices.Contains(sum.Team, pSam.Mail) || !slices.Contains(sum.Team, pPriya.Mail) || sum.Lead != pPriya.Mail ||
			!strings.Contains(sum.Try, sum.Reference) || !strings.Contains(sum.Consent, "version 1") {
			t.Errorf("summary %+v", sum)
		}
	}
	clk.Advance(time.Minute)
	// Episode one: the four agencies share the whole assessment.
	pd, err := s.DecidePackage(ctx, clk.Now(), pHarriet, []Addressee{{pGwen.Mail, pGwen}, {pRita.Mail, pRita}, {pSam.Mail, pSam}, {pPriya.Mail, pPriya}},
		policy.Package{EpisodeRef: first[0].Reference})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range pd.Decisions {
		if d.Result != policy.DeliverAll {
			t.Errorf("episode one, %s: %+v", d.Recipient, d)
		}
	}
	if _, err := SeedDevEpisodes(ctx, s, key, fakeDirectory{pPriya}); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("seed without the sample directory: %v", err)
	}
}
