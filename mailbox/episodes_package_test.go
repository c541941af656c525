package mailbox

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"cafgate/directory"
	"cafgate/policy"
)

// countRows counts the rows of table.
func countRows(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func lastSeq(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRow(`SELECT COALESCE(MAX(seq), -1) FROM ledger_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// openPlan is a package from gwen opening an episode for child, led by priya, with harriet on the
// team and consent for the team, sent to harriet.
func openPlan(child string) *PackagePlan {
	return &PackagePlan{Sender: pGwen, ChildID: child,
		Ops: []PackageOp{{Op: PackageOpOpen, Field: "/operations/0", Lead: pPriya, Team: []*directory.Practitioner{pHarriet}},
			{Op: PackageOpTransition, Field: "/operations/1", State: policy.StateAssessment}},
		Consent: &policy.Consent{GivenBy: policy.GivenByParent, Grants: []policy.Grant{{To: policy.ScopeTeam}}},
		To:      []Addressee{{pHarriet.Mail, pHarriet}},
		Package: policy.Package{Sender: pGwen.Mail, Sections: []policy.Section{policy.SectionChildsDetails}},
	}
}

func TestAcceptPackageOpens(t *testing.T) {
	s, _, key := episodeStore(t)
	ctx := context.Background()
	seq := lastSeq(t, s)
	m := msg("op1", body(1))
	pd, err := s.AcceptPackage(ctx, m, openPlan("NFS 77"))
	if err != nil {
		t.Fatal(err)
	}
	ep, err := s.EpisodeForChild(ctx, key, "nfs-77")
	if err != nil {
		t.Fatal(err)
	}
	if pd.Episode == nil || pd.Episode.Ref != ep.Ref || ep.Lead != pPriya.Mail || ep.State != policy.StateAssessment ||
		!ep.OnTeam(pGwen.Mail) || !ep.OnTeam(pHarriet.Mail) || pd.ConsentVersion != 1 || pd.Decisions[0].Result != policy.DeliverAll {
		t.Fatalf("episode %+v, decision %+v", ep, pd)
	}
	stored, err := s.Message(ctx, "op1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(stored.Content, []byte("CAF-Episode: "+ep.Ref+"\r\n")) || !bytes.HasSuffix(stored.Content, body(1)) {
		t.Errorf("stored content does not name the new episode: %q", stored.Content)
	}
	got, err := s.Decisions(ctx, "op1")
	if err != nil || len(got) != 1 || got[0].Episode != ep.Ref {
		t.Fatalf("decisions %+v %v", got, err)
	}
	want := []string{EventEpisodeOpened, EventEpisodeTransition, EventConsentRecorded, EventAccepted, EventDecisions}
	if types := ledgerTypes(t, s, seq); !slices.Equal(types, want) {
		t.Errorf("ledger events %v, want %v", types, want)
	}

	// A second open for the same child refuses the whole package, naming the open episode.
	before := countRows(t, s, "messages")
	seq = lastSeq(t, s)
	_, err = s.AcceptPackage(ctx, msg("op2", body(2)), openPlan("NFS-77"))
	var pe *PackageError
	var open *OpenEpisodeError
	if !errors.As(err, &pe) || pe.Field != "/operations/0" || !errors.As(err, &open) || open.Ref != ep.Ref {
		t.Fatalf("second open: %v", err)
	}
	if countRows(t, s, "messages") != before || lastSeq(t, s) != seq {
		t.Error("a refused package left rows or events")
	}
}

func TestAcceptPackageHandoverAndClose(t *testing.T) {
	s, clk, _ := episodeStore(t)
	ctx := context.Background()
	if _, err := s.AcceptPackage(ctx, msg("a", body(1)), openPlan("C1")); err != nil {
		t.Fatal(err)
	}
	ep, _ := s.ListEpisodes(ctx, EpisodeFilter{Open: true})
	ref := ep[0].Ref
	clk.Advance(1)
	plan := func(sender *directory.Practitioner, ops ...PackageOp) *PackagePlan {
		return &PackagePlan{Sender: sender, Ops: ops, To: []Addressee{{pHarriet.Mail, pHarriet}},
			Package: policy.Package{EpisodeRef: ref, Sender: sender.Mail, Sections: []policy.Section{policy.SectionChildsDetails}}}
	}
	handover := PackageOp{Op: PackageOpHandover, Field: "/operations/0", Lead: pHarriet}
	before := countRows(t, s, "messages")

	// Gwen is on the team but not the lead: refused, nothing stored, the lead unchanged.
	_, err := s.AcceptPackage(ctx, msg("b", body(2)), plan(pGwen, handover))
	var pe *PackageError
	if !errors.As(err, &pe) || pe.Field != "/operations/0" || !errors.Is(err, policy.ErrInvalid) {
		t.Fatalf("handover by a member: %v", err)
	}
	if e, _ := s.Episode(ctx, ref); e.Lead != pPriya.Mail || countRows(t, s, "messages") != before {
		t.Fatalf("refused handover changed something: lead %s", e.Lead)
	}
	// The lead's agency administrator may hand it over (the package itself still needs a sender on
	// the team to reach anyone: the administrator is not, so every recipient is refused and nothing,
	// the handover included, is stored).
	admin := samplePerson("ada.admin@health.cafgate.test", pPriya.Agency, directory.RoleAgencyAdmin)
	_, err = s.AcceptPackage(ctx, msg("c", body(3)), plan(admin, handover))
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Decision.Decisions[0].Reason != policy.ReasonSenderNotOnTeam {
		t.Fatalf("administrator's package: %v", err)
	}
	if e, _ := s.Episode(ctx, ref); e.Lead != pPriya.Mail {
		t.Fatal("the handover of a refused package was kept")
	}
	// Operations apply in order: once handed over, the former lead may not close it.
	_, err = s.AcceptPackage(ctx, msg("d2", body(4)), plan(pPriya, handover, PackageOp{Op: PackageOpClose, Field: "/operations/1"}))
	if !errors.As(err, &pe) || pe.Field != "/operations/1" {
		t.Fatalf("handover then close by the former lead: %v", err)
	}
	// Handing over then sending works; closing is then refused to the former lead.
	if _, err := s.AcceptPackage(ctx, msg("e", body(5)), plan(pPriya, handover)); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.Episode(ctx, ref); e.Lead != pHarriet.Mail || !e.OnTeam(pPriya.Mail) {
		t.Fatalf("after handover: %+v", e)
	}
	if _, err := s.AcceptPackage(ctx, msg("f", body(6)), plan(pPriya, PackageOp{Op: PackageOpClose, Field: "/operations/0"})); !errors.Is(err, policy.ErrInvalid) {
		t.Fatalf("close by the former lead: %v", err)
	}
	// The lead closes it with a package, which is still delivered: the last one under the episode.
	pd, err := s.AcceptPackage(ctx, msg("f2", body(6)), plan(pHarriet, PackageOp{Op: PackageOpClose, Field: "/operations/0"}))
	if err != nil || pd.Decisions[0].Result != policy.DeliverAll {
		t.Fatalf("closing package: %v %+v", err, pd)
	}
	if e, _ := s.Episode(ctx, ref); e.Open() {
		t.Fatal("not closed")
	}
	// Then a package under it is refused for every recipient.
	if _, err := s.AcceptPackage(ctx, msg("f3", body(6)), &PackagePlan{Sender: pHarriet, Consent: &policy.Consent{GivenBy: policy.GivenByParent, Withdrawn: true},
		To: []Addressee{{pPriya.Mail, pPriya}}, Package: policy.Package{EpisodeRef: ref, Sender: pHarriet.Mail}}); !errors.As(err, &refused) {
		t.Fatalf("package under a closed episode: %v", err)
	}
	// A handover in a package names the closed episode.
	if _, err := s.AcceptPackage(ctx, msg("g", body(7)), plan(pHarriet, handover)); !errors.Is(err, ErrEpisodeClosed) && !errors.Is(err, policy.ErrInvalid) {
		t.Fatalf("handover of a closed episode: %v", err)
	}
	// An unknown episode.
	p := plan(pPriya, PackageOp{Op: PackageOpClose, Field: "/operations/0"})
	p.Package.EpisodeRef = "CAF-2025-999999"
	if _, err := s.AcceptPackage(ctx, msg("h", body(8)), p); !errors.Is(err, ErrEpisodeNotFound) {
		t.Fatalf("unknown episode: %v", err)
	}
	if n := countRows(t, s, "messages"); n != before+2 {
		t.Errorf("%d messages stored, want %d", n, before+2)
	}
}

// TestAcceptDecidedOneTransaction: the package and its decisions are written together; a decision
// that cannot be written (an override with no reason) stores neither.
func TestAcceptDecidedOneTransaction(t *testing.T) {
	s, clk, ep := seededRefusal(t)
	ctx := context.Background()
	pkg := policy.Package{EpisodeRef: ep.Ref, Sender: pHarriet.Mail, Sections: []policy.Section{policy.SectionChildsDetails}}
	pd, err := s.DecidePackage(ctx, clk.Now(), pHarriet, []Addressee{{pGwen.Mail, pGwen}}, pkg)
	if err != nil {
		t.Fatal(err)
	}
	seq := lastSeq(t, s)
	if err := s.AcceptDecided(ctx, msg("x1", body(1)), pd); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Decisions(ctx, "x1"); err != nil || len(got) != 1 || got[0].Episode != ep.Ref {
		t.Fatalf("decisions %+v %v", got, err)
	}
	if types := ledgerTypes(t, s, seq); !slices.Equal(types, []string{EventAccepted, EventDecisions}) {
		t.Errorf("events %v", types)
	}
	bad := *pd
	bad.Decisions = []policy.Decision{{Recipient: pGwen.Mail, Result: policy.DeliverAll, Reason: policy.ReasonOverride, Override: true}}
	before := countRows(t, s, "messages")
	if err := s.AcceptDecided(ctx, msg("x2", body(2)), &bad); !errors.Is(err, policy.ErrInvalid) {
		t.Fatalf("an override without a reason: %v", err)
	}
	if countRows(t, s, "messages") != before {
		t.Error("stored without its decisions")
	}
}
