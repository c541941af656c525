package mailbox

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cafgate/directory"
	"cafgate/policy"
)

func TestOpenEpisode(t *testing.T) {
	s, _, key := episodeStore(t)
	ctx := context.Background()
	ep, err := s.OpenEpisode(ctx, key, NewEpisode{ChildID: "943 476 5919", Lead: pPriya, Team: []*directory.Practitioner{pHarriet, pSam, pPriya}, By: "cli:test"})
	if err != nil {
		t.Fatal(err)
	}
	if ep.Ref != "CAF-2025-000001" || ep.State != policy.StatePreparation || ep.Lead != pPriya.Mail || len(ep.Team) != 3 {
		t.Fatalf("episode %+v", ep)
	}
	got, err := s.Episode(ctx, ep.Ref)
	if err != nil || got.Lead != ep.Lead || len(got.Team) != 3 || !got.OpenedAt.Equal(ep.OpenedAt) {
		t.Fatalf("read back %+v %v", got, err)
	}
	if m, ok := got.Member(pSam.Mail); !ok || !m.SensitiveService || m.Agency != pSam.Agency {
		t.Errorf("sam: %+v %v", m, ok)
	}
	// The identifier is stored only as a keyed hash.
	db := rawDB(t, s.opt.Path)
	var hash string
	if err := db.QueryRow(`SELECT child_hash FROM episodes`).Scan(&hash); err != nil || len(hash) != 64 || strings.Contains(hash, "9434765919") {
		t.Fatalf("child hash %q %v", hash, err)
	}
	if n := count(t, db, `SELECT count(*) FROM ledger_events WHERE type = ? AND data NOT LIKE '%9434765919%' AND data NOT LIKE ?`, EventEpisodeOpened, "%"+hash+"%"); n != 1 {
		t.Errorf("episode-opened events without the child's identifier or hash: %d", n)
	}
	// The same child, written differently, is refused naming the open episode.
	_, err = s.OpenEpisode(ctx, key, NewEpisode{ChildID: "943-476-5919", Lead: pHarriet})
	var oe *OpenEpisodeError
	if !errors.As(err, &oe) || oe.Ref != ep.Ref || !errors.Is(err, ErrEpisodeOpen) || !strings.Contains(err.Error(), ep.Ref) {
		t.Fatalf("second open: %v", err)
	}
	if n := count(t, db, `SELECT count(*) FROM episodes`); n != 1 {
		t.Fatalf("%d episodes after a refused second open", n)
	}
	// Another child gets the next reference; found by its identifier.
	ep2, err := s.OpenEpisode(ctx, key, NewEpisode{ChildID: "A123", Lead: pHarriet, State: policy.StateAssessment})
	if err != nil || ep2.Ref != "CAF-2025-000002" || ep2.State != policy.StateAssessment {
		t.Fatalf("second child: %+v %v", ep2, err)
	}
	if found, err := s.EpisodeForChild(ctx, key, " a123 "); err != nil || found.Ref != ep2.Ref {
		t.Fatalf("EpisodeForChild: %+v %v", found, err)
	}
	if _, err := s.EpisodeForChild(ctx, key, "unknown"); !errors.Is(err, ErrEpisodeNotFound) {
		t.Fatalf("unknown child: %v", err)
	}
	// Another key does not find the child.
	other, _ := NewChildKey(make([]byte, 32))
	if _, err := s.EpisodeForChild(ctx, other, "A123"); !errors.Is(err, ErrEpisodeNotFound) {
		t.Fatalf("other key found the child: %v", err)
	}
}

func TestOpenEpisodeRefusesBadInput(t *testing.T) {
	s, _, key := episodeStore(t)
	ctx := context.Background()
	for name, in := range map[string]NewEpisode{
		"no child":         {ChildID: " - ", Lead: pPriya},
		"control char":     {ChildID: "A\x00B", Lead: pPriya},
		"long child":       {ChildID: strings.Repeat("9", 65), Lead: pPriya},
		"no lead":          {ChildID: "X1"},
		"sensitive lead":   {ChildID: "X1", Lead: pSam},
		"lapsed lead":      {ChildID: "X1", Lead: pOliver},
		"disabled member":  {ChildID: "X1", Lead: pPriya, Team: []*directory.Practitioner{pTom}},
		"opens closed":     {ChildID: "X1", Lead: pPriya, State: policy.StateClosed},
		"opens in nowhere": {ChildID: "X1", Lead: pPriya, State: "limbo"},
	} {
		if _, err := s.OpenEpisode(ctx, key, in); !errors.Is(err, policy.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := s.OpenEpisode(ctx, ChildKey{}, NewEpisode{ChildID: "X1", Lead: pPriya}); err == nil {
		t.Error("zero child key accepted")
	}
	if n := count(t, rawDB(t, s.opt.Path), `SELECT count(*) FROM episodes`); n != 0 {
		t.Fatalf("%d episodes stored from bad input", n)
	}
}

func TestEpisodeLifecycle(t *testing.T) {
	s, clk, key := episodeStore(t)
	ctx := context.Background()
	ep, err := s.OpenEpisode(ctx, key, NewEpisode{ChildID: "C1", Lead: pPriya, Team: []*directory.Practitioner{pHarriet}})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if _, err := s.TransitionEpisode(ctx, ep.Ref, policy.StateReview, "x"); !errors.Is(err, policy.ErrInvalid) {
		t.Fatalf("preparation -> review: %v", err)
	}
	for _, st := range []policy.State{policy.StateAssessment, policy.StateActionPlan, policy.StateReview, policy.StateActionPlan, policy.StateReview} {
		if ep, err = s.TransitionEpisode(ctx, ep.Ref, st, pPriya.Mail); err != nil || ep.State != st {
			t.Fatalf("-> %s: %+v %v", st, ep, err)
		}
	}
	if !ep.UpdatedAt.Equal(clk.Now()) || ep.OpenedAt.Equal(ep.UpdatedAt) {
		t.Errorf("times: opened %v updated %v", ep.OpenedAt, ep.UpdatedAt)
	}
	// Handover: the new lead joins the team; the old one stays.
	if ep, err = s.HandOverEpisode(ctx, ep.Ref, pGwen, pPriya.Mail); err != nil || ep.Lead != pGwen.Mail || !ep.OnTeam(pGwen.Mail) || !ep.OnTeam(pPriya.Mail) {
		t.Fatalf("handover: %+v %v", ep, err)
	}
	if _, err := s.HandOverEpisode(ctx, ep.Ref, pGwen, "x"); !errors.Is(err, policy.ErrInvalid) {
		t.Errorf("handover to the lead: %v", err)
	}
	if _, err := s.HandOverEpisode(ctx, ep.Ref, pSam, "x"); !errors.Is(err, policy.ErrInvalid) {
		t.Errorf("handover to a sensitive-service practitioner: %v", err)
	}
	if _, err := s.HandOverEpisode(ctx, "CAF-2025-999999", pHarriet, "x"); !errors.Is(err, ErrEpisodeNotFound) {
		t.Errorf("handover of unknown: %v", err)
	}
	clk.Advance(time.Hour)
	if ep, err = s.CloseEpisode(ctx, ep.Ref, pGwen.Mail); err != nil || ep.State != policy.StateClosed || !ep.ClosedAt.Equal(clk.Now()) {
		t.Fatalf("close: %+v %v", ep, err)
	}
	if _, err := s.CloseEpisode(ctx, ep.Ref, "x"); !errors.Is(err, ErrEpisodeClosed) {
		t.Errorf("close twice: %v", err)
	}
	if _, err := s.HandOverEpisode(ctx, ep.Ref, pHarriet, "x"); !errors.Is(err, ErrEpisodeClosed) {
		t.Errorf("handover when closed: %v", err)
	}
	// Closed: the child may have a new episode.
	ep2, err := s.OpenEpisode(ctx, key, NewEpisode{ChildID: "C1", Lead: pHarriet})
	if err != nil || ep2.Ref == ep.Ref {
		t.Fatalf("reopen after close: %+v %v", ep2, err)
	}
	want := []string{EventEpisodeOpened, EventEpisodeTransition, EventEpisodeTransition, EventEpisodeTransition, EventEpisodeTransition,
		EventEpisodeTransition, EventEpisodeHandover, EventEpisodeClosed, EventEpisodeOpened}
	if got := ledgerTypes(t, s, -1); !slices.Equal(got, want) {
		t.Errorf("ledger %v\nwant %v", got, want)
	}
	open, err := s.ListEpisodes(ctx, EpisodeFilter{Open: true})
	if err != nil || len(open) != 1 || open[0].Ref != ep2.Ref {
		t.Errorf("open list: %+v %v", open, err)
	}
	all, err := s.ListEpisodes(ctx, EpisodeFilter{})
	if err != nil || len(all) != 2 || len(all[0].Team) != 3 {
		t.Errorf("list: %+v %v", all, err)
	}
	closed, err := s.ListEpisodes(ctx, EpisodeFilter{State: policy.StateClosed, Limit: 1})
	if err != nil || len(closed) != 1 || closed[0].Ref != ep.Ref {
		t.Errorf("closed list: %+v %v", closed, err)
	}
	if page, err := s.ListEpisodes(ctx, EpisodeFilter{After: ep.Ref}); err != nil || len(page) != 1 || page[0].Ref != ep2.Ref {
		t.Errorf("after cursor: %+v %v", page, err)
	}
}

// TestOneOpenEpisodeUnderConcurrency: many openers for one child, one wins, the rest are told its
// reference.
func TestOneOpenEpisodeUnderConcurrency(t *testing.T) {
	s, _, key := episodeStore(t)
	var wg sync.WaitGroup
	refs := make([]string, 8)
	errs := make([]error, 8)
	for i := range refs {
		wg.Go(func() {
			ep, err := s.OpenEpisode(context.Background(), key, NewEpisode{ChildID: "RACE-1", Lead: pPriya})
			if err == nil {
				refs[i] = ep.Ref
			}
			errs[i] = err
		})
	}
	wg.Wait()
	var winner string
	for i, ref := range refs {
		if ref != "" {
			if winner != "" {
				t.Fatalf("two open episodes: %s and %s", winner, ref)
			}
			winner = ref
		} else if !errors.Is(errs[i], ErrEpisodeOpen) {
			t.Fatalf("loser error: %v", errs[i])
		}
	}
	for i, err := range errs {
		var oe *OpenEpisodeError
		if err != nil && (!errors.As(err, &oe) || oe.Ref != winner) {
			t.Fatalf("opener %d told %v, want %s", i, err, winner)
		}
	}
}

// TestOneOpenEpisodeIndex: the partial unique index holds even against a direct insert.
func TestOneOpenEpisodeIndex(t *testing.T) {
	s, _, key := episodeStore(t)
	if _, err := s.OpenEpisode(context.Background(), key, NewEpisode{ChildID: "IDX", Lead: pPriya}); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, s.opt.Path)
	_, err := db.Exec(`INSERT INTO episodes (ref, child_hash, state, lead, opened_at, opened_by, updated_at)
		SELECT 'CAF-2025-000099', child_hash, 'assessment', lead, opened_at, opened_by, updated_at FROM episodes`)
	if err == nil || !strings.Contains(err.Error(), "UNIQUE") {
		t.Fatalf("second open row inserted directly: %v", err)
	}
	if _, err := db.Exec(`INSERT INTO episodes (ref, child_hash, state, lead, opened_at, opened_by, updated_at)
		SELECT 'CAF-2025-000098', child_hash, 'closed', lead, opened_at, opened_by, updated_at FROM episodes`); err != nil {
		t.Fatalf("a closed episode for the same child: %v", err)
	}
}

func TestEpisodeReadOnlyStore(t *testing.T) {
	s, _, key := episodeStore(t)
	ep, err := s.OpenEpisode(context.Background(), key, NewEpisode{ChildID: "RO", Lead: pPriya})
	if err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(context.Background(), s.opt.Path, s.opt.ContentKey)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got, err := ro.Episode(context.Background(), ep.Ref); err != nil || got.Ref != ep.Ref {
		t.Fatalf("read-only read: %v", err)
	}
	if _, err := ro.CloseEpisode(context.Background(), ep.Ref, "x"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("read-only write: %v", err)
	}
	var n int
	if err := ro.rdb.QueryRow(`SELECT count(*) FROM episodes WHERE state = 'closed'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("closed count %d %v", n, err)
	}
}

func TestChildIDNormalising(t *testing.T) {
	k1, _ := DeriveChildKey(testKey(1))
	k2, _ := DeriveChildKey(testKey(2))
	a, _ := k1.hash("943 476 5919")
	b, _ := k1.hash("943-476-5919")
	c, _ := k2.hash("9434765919")
	d, _ := k1.hash("9434765918")
	if a != b || a == c || a == d {
		t.Fatalf("hashes: %s %s %s %s", a, b, c, d)
	}
	if _, err := NewChildKey([]byte("short")); err == nil {
		t.Error("short child key accepted")
	}
	if _, err := DeriveChildKey([]byte("short")); err == nil {
		t.Error("short content key accepted")
	}
	if _, err := NormaliseChildID("secret-id\x07"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("error quotes the identifier or accepts it: %v", err)
	}
}
