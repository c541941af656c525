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

func openSample(t *testing.T, s *Store, key ChildKey, child string) *policy.Episode {
	t.Helper()
	ep, err := s.OpenEpisode(context.Background(), key, NewEpisode{ChildID: child, Lead: pPriya,
		Team: []*directory.Practitioner{pHarriet, pGwen, pRita, pSam}, State: policy.StateAssessment})
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

func mustGrant(t *testing.T, spec string) policy.Grant {
	t.Helper()
	g, err := policy.ParseGrant(spec)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func mustRefuse(t *testing.T, spec string) []policy.Refusal {
	t.Helper()
	r, err := policy.ParseRefusal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestConsentVersionsAndHistory(t *testing.T) {
	s, clk, key := episodeStore(t)
	ctx := context.Background()
	ep := openSample(t, s, key, "K1")
	t0 := clk.Advance(time.Minute)
	v1, err := s.RecordConsent(ctx, ep.Ref, policy.Consent{GivenBy: "Parent", GivenAt: t0.Add(-24 * time.Hour), RecordedBy: pPriya.Mail,
		Grants: []policy.Grant{mustGrant(t, "team")}})
	if err != nil || v1.Version != 1 || !v1.RecordedAt.Equal(t0) || v1.GivenBy != policy.GivenByParent || v1.Episode != ep.Ref {
		t.Fatalf("v1: %+v %v", v1, err)
	}
	t1 := clk.Advance(time.Hour)
	v2, err := s.RecordConsent(ctx, ep.Ref, policy.Consent{GivenBy: policy.GivenByChild, RecordedBy: pPriya.Mail,
		Grants: []policy.Grant{mustGrant(t, "team")}, Refusals: mustRefuse(t, "agency=Eastshire Police")})
	if err != nil || v2.Version != 2 || !v2.GivenAt.Equal(t1) {
		t.Fatalf("v2: %+v %v", v2, err)
	}
	t2 := clk.Advance(time.Hour)
	v3, err := s.WithdrawConsent(ctx, ep.Ref, policy.GivenByCarer, time.Time{}, pHarriet.Mail)
	if err != nil || v3.Version != 3 || !v3.Withdrawn || len(v3.Grants) != 0 {
		t.Fatalf("withdraw: %+v %v", v3, err)
	}
	t3 := clk.Advance(time.Hour)
	if _, err := s.RecordConsent(ctx, ep.Ref, policy.Consent{GivenBy: policy.GivenByParent, RecordedBy: pPriya.Mail,
		Grants: []policy.Grant{mustGrant(t, "person=gwen.testcase@socialcare.cafgate.test:childs-details")}}); err != nil {
		t.Fatal(err)
	}
	hist, err := s.ConsentHistory(ctx, ep.Ref)
	if err != nil || len(hist) != 4 {
		t.Fatalf("history: %d %v", len(hist), err)
	}
	if hist[1].Refusals[0].Name != "Eastshire Police" || !hist[2].Withdrawn || hist[3].Grants[0].Sections[0] != policy.SectionChildsDetails || hist[0].Refusals != nil {
		t.Errorf("history content: %+v", hist)
	}
	for _, tc := range []struct {
		at   time.Time
		want int
	}{{t0.Add(-time.Nanosecond), 0}, {t0, 1}, {t1.Add(-time.Nanosecond), 1}, {t1, 2}, {t2.Add(time.Minute), 3}, {t3.Add(time.Hour), 4}} {
		ea, err := s.EpisodeWithConsent(ctx, ep.Ref, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		if ea.Consent != nil {
			got = ea.Consent.Version
		}
		if got != tc.want {
			t.Errorf("in force at %v: version %d, want %d", tc.at, got, tc.want)
		}
	}
	want := []string{EventEpisodeOpened, EventConsentRecorded, EventConsentRecorded, EventConsentWithdrawn, EventConsentRecorded}
	if got := ledgerTypes(t, s, -1); !slices.Equal(got, want) {
		t.Errorf("ledger %v, want %v", got, want)
	}
	// Versions are never overwritten or deleted, even directly.
	db := rawDB(t, s.opt.Path)
	if _, err := db.Exec(`UPDATE consent_versions SET withdrawn = 0 WHERE version = 3`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("update: %v", err)
	}
	if _, err := db.Exec(`DELETE FROM consent_versions`); err == nil {
		t.Error("delete allowed")
	}
}

func TestConsentRefusals(t *testing.T) {
	s, clk, key := episodeStore(t)
	ctx := context.Background()
	ep := openSample(t, s, key, "K2")
	good := policy.Consent{GivenBy: policy.GivenByParent, RecordedBy: "x", Grants: []policy.Grant{{To: policy.ScopeTeam}}}
	for name, c := range map[string]policy.Consent{
		"bad giver":     {GivenBy: "neighbour", RecordedBy: "x"},
		"no recorder":   {GivenBy: policy.GivenByParent},
		"bad section":   {GivenBy: policy.GivenByParent, RecordedBy: "x", Grants: []policy.Grant{{To: policy.ScopeTeam, Sections: []policy.Section{"x"}}}},
		"future":        {GivenBy: policy.GivenByParent, RecordedBy: "x", GivenAt: clk.Now().Add(time.Hour)},
		"withdraw+gift": {GivenBy: policy.GivenByParent, RecordedBy: "x", Withdrawn: true, Grants: good.Grants},
	} {
		if _, err := s.RecordConsent(ctx, ep.Ref, c); !errors.Is(err, policy.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := s.RecordConsent(ctx, "CAF-2025-999999", good); !errors.Is(err, ErrEpisodeNotFound) {
		t.Errorf("unknown episode: %v", err)
	}
	if n := count(t, rawDB(t, s.opt.Path), `SELECT count(*) FROM consent_versions`); n != 0 {
		t.Fatalf("%d versions stored from bad input", n)
	}
	if _, err := s.CloseEpisode(ctx, ep.Ref, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordConsent(ctx, ep.Ref, good); !errors.Is(err, ErrEpisodeClosed) {
		t.Errorf("consent on a closed episode: %v", err)
	}
	if _, err := s.WithdrawConsent(ctx, ep.Ref, policy.GivenByParent, time.Time{}, "x"); err != nil {
		t.Errorf("withdrawal on a closed episode: %v", err)
	}
	if _, err := s.ConsentHistory(ctx, "CAF-2025-999999"); !errors.Is(err, ErrEpisodeNotFound) {
		t.Errorf("history of unknown: %v", err)
	}
}
