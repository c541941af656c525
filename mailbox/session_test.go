package mailbox

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

const (
	sBob   = "bob@council.example"
	sCarol = "carol@health.example"
)

func newSession(t *testing.T, s *Store, n NewSession, now time.Time) (string, *Session) {
	t.Helper()
	if n.Idle == 0 {
		n.Idle = 10 * time.Minute
	}
	if n.Max == 0 {
		n.Max = time.Hour
	}
	c, ss, err := s.CreateSession(context.Background(), n, now)
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	return c, ss
}

func mustSession(t *testing.T, s *Store, cookie string, now time.Time) *Session {
	t.Helper()
	ss, err := s.SessionByCookie(context.Background(), cookie, now)
	if err != nil {
		t.Fatalf("SessionByCookie: %v", err)
	}
	return ss
}

func noSession(t *testing.T, s *Store, cookie string, now time.Time, why string) {
	t.Helper()
	if ss, err := s.SessionByCookie(context.Background(), cookie, now); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("%s: session %+v, err %v; want ErrSessionNotFound", why, ss, err)
	}
}

func TestSessionKeepsOnlyAHashAndSurvivesAReopen(t *testing.T) {
	opt := testOpts(t)
	clk := newTestClock(time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC))
	opt.Now = clk.Now
	s := openTest(t, opt)
	if err := s.Accept(context.Background(), msg("M1", body(1))); err != nil {
		t.Fatal(err)
	}
	_, token := issue(t, s, LinkRequest{MessageID: "M1", Recipient: sBob})
	cookie, made := newSession(t, s, NewSession{Kind: SessionEnrol, Mail: "Bob@Council.Example", Return: token}, clk.Now())
	if len(cookie) != SessionCookieLen || made.Mail != sBob || made.CSRF == "" || strings.Contains(cookie, made.CSRF) {
		t.Fatalf("cookie %q session %+v", cookie, made)
	}
	raw := rawDB(t, opt.Path)
	var id string
	var hash, sealed []byte
	if err := raw.QueryRow(`SELECT id, secret_hash, return_sealed FROM pickup_sessions`).Scan(&id, &hash, &sealed); err != nil {
		t.Fatal(err)
	}
	secret := cookie[len(id):]
	if id != made.ID || !strings.HasPrefix(cookie, id) || bytes.Contains(hash, []byte(secret)) ||
		bytes.Contains(sealed, []byte(token)) || bytes.Contains(sealed, []byte(token[17:])) {
		t.Fatal("the store holds the cookie's secret or the link token in the clear")
	}
	for _, col := range []string{"id", "kind", "mail", "reason", "created_at", "expires_at"} {
		if count(t, raw, `SELECT count(*) FROM pickup_sessions WHERE instr(`+col+`, ?) > 0`, secret) != 0 ||
			count(t, raw, `SELECT count(*) FROM pickup_sessions WHERE instr(`+col+`, ?) > 0`, made.CSRF) != 0 {
			t.Fatalf("column %s holds the secret or the form token", col)
		}
	}
	s.Close()

	// A restart (or another node on the same store) knows the session.
	s2 := openTest(t, opt)
	got := mustSession(t, s2, cookie, clk.Now().Add(time.Minute))
	if got.ID != made.ID || got.Kind != SessionEnrol || got.Mail != sBob || got.CSRF != made.CSRF || got.Return != token {
		t.Fatalf("after reopening: %+v, made %+v", got, made)
	}
}

func TestSessionCookieMustMatch(t *testing.T) {
	s, clk := pickupStore(t)
	cookie, _ := newSession(t, s, NewSession{Kind: SessionLinks, Mail: sBob}, clk.Now())
	other, _ := newSession(t, s, NewSession{Kind: SessionLinks, Mail: sCarol}, clk.Now())
	flip := []byte(cookie)
	if flip[len(flip)-2] == 'A' {
		flip[len(flip)-2] = 'B'
	} else {
		flip[len(flip)-2] = 'A'
	}
	for why, c := range map[string]string{
		"a wrong secret":                  string(flip),
		"another session's secret":        cookie[:sessionIDLen] + other[sessionIDLen:],
		"an unknown ID":                   "S0000000000000000" + cookie[sessionIDLen:],
		"a malformed cookie":              cookie[:len(cookie)-1],
		"empty":                           "",
		"the form token instead":          cookie[:sessionIDLen] + mustSession(t, s, cookie, clk.Now()).CSRF,
		"the secret without the ID":       cookie[sessionIDLen:],
		"a link-shaped token of the same": "L" + cookie[1:],
	} {
		noSession(t, s, c, clk.Now(), why)
	}
	mustSession(t, s, cookie, clk.Now())
}

func TestSessionIdleAndAbsoluteExpiry(t *testing.T) {
	s, clk := pickupStore(t)
	t0 := clk.Now()
	idle := NewSession{Kind: SessionLinks, Mail: sBob, Idle: 10 * time.Minute, Max: 30 * time.Minute}
	cookie, _ := newSession(t, s, idle, t0)
	mustSession(t, s, cookie, t0.Add(9*time.Minute))  // used: idle time starts again
	mustSession(t, s, cookie, t0.Add(18*time.Minute)) // 9 minutes after the last use
	noSession(t, s, cookie, t0.Add(28*time.Minute+time.Second), "idle for 10 minutes")
	if n, _ := s.CountSessions(context.Background(), sBob); n != 0 {
		t.Fatal("an idle session found at a look-up stays in the store")
	}

	// Used every 5 minutes, a session still ends at its maximum age.
	cookie, _ = newSession(t, s, idle, t0)
	for m := 5; m < 30; m += 5 {
		mustSession(t, s, cookie, t0.Add(time.Duration(m)*time.Minute))
	}
	noSession(t, s, cookie, t0.Add(30*time.Minute), "at its maximum age")

	// The purge deletes ended sessions nobody looks up, and only those.
	live, _ := newSession(t, s, idle, t0.Add(25*time.Minute))
	newSession(t, s, idle, t0.Add(15*time.Minute))
	newSession(t, s, NewSession{Kind: SessionLinks, Mail: sCarol, Idle: 10 * time.Minute, Max: 30 * time.Minute}, t0)
	n, err := s.PurgeSessions(context.Background(), t0.Add(31*time.Minute))
	if err != nil || n != 2 { // bob's idle since 15 minutes and carol's past its maximum age
		t.Fatalf("purge: %d, %v", n, err)
	}
	mustSession(t, s, live, t0.Add(31*time.Minute))
}

func TestSessionsEndWithTheirLinkAccountAndSignOut(t *testing.T) {
	s, clk := pickupStore(t)
	ctx := context.Background()
	l1, _ := issue(t, s, LinkRequest{MessageID: "M1", Recipient: sBob})
	l2, _ := issue(t, s, LinkRequest{MessageID: "M1", Recipient: sBob, Lifetime: time.Hour})
	l3, _ := issue(t, s, LinkRequest{MessageID: "M1", Recipient: sCarol})
	onL1, _ := newSession(t, s, NewSession{Kind: SessionPackage, Mail: sBob, LinkID: l1.ID}, clk.Now())
	onL2, _ := newSession(t, s, NewSession{Kind: SessionPackage, Mail: sBob, LinkID: l2.ID, Max: 3 * time.Hour, Idle: 3 * time.Hour}, clk.Now())
	bobLinks, _ := newSession(t, s, NewSession{Kind: SessionLinks, Mail: sBob}, clk.Now())

	if err := s.RevokeLink(ctx, l1.ID, "admin:root", "sent to the wrong school"); err != nil {
		t.Fatal(err)
	}
	noSession(t, s, onL1, clk.Now(), "its link revoked")
	mustSession(t, s, bobLinks, clk.Now())

	clk.Add(2 * time.Hour)
	if n, err := s.ExpireLinks(ctx); err != nil || n != 1 {
		t.Fatalf("ExpireLinks: %d %v", n, err)
	}
	noSession(t, s, onL2, clk.Now(), "its link expired")

	// Sign-out.
	onL3, _ := newSession(t, s, NewSession{Kind: SessionPackage, Mail: sCarol, LinkID: l3.ID}, clk.Now())
	ss := mustSession(t, s, onL3, clk.Now())
	if err := s.EndSession(ctx, ss.ID); err != nil {
		t.Fatal(err)
	}
	noSession(t, s, onL3, clk.Now(), "signed out")

	// A disabled entry: every session of the practitioner ends, not only those of links.
	bobLinks, _ = newSession(t, s, NewSession{Kind: SessionLinks, Mail: sBob}, clk.Now())
	if _, err := s.RevokeLinksForRecipient(ctx, nil, sBob, "directory entry disabled"); err != nil {
		t.Fatal(err)
	}
	noSession(t, s, bobLinks, clk.Now(), "entry disabled")

	// An account locked out by refused sign-ins keeps no session.
	carol, _ := newSession(t, s, NewSession{Kind: SessionLinks, Mail: sCarol}, clk.Now())
	for i := 0; i < 3; i++ {
		if _, err := s.RecordPickupSignIn(ctx, PickupSignIn{User: sCarol, Reason: "bad-code", AccountLimit: 3}); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			mustSession(t, s, carol, clk.Now())
		}
	}
	noSession(t, s, carol, clk.Now(), "account locked")

	// Resetting the authenticator (a lost phone) ends every session.
	carol, _ = newSession(t, s, NewSession{Kind: SessionLinks, Mail: sCarol}, clk.Now())
	if _, err := s.IssueEnrolment(ctx, sCarol, "admin:root", 0); err != nil {
		t.Fatal(err)
	}
	noSession(t, s, carol, clk.Now(), "authenticator reset")
}

func TestSessionsPerPractitionerAreBounded(t *testing.T) {
	s, clk := pickupStore(t)
	var cookies []string
	for i := 0; i < 3; i++ {
		c, _ := newSession(t, s, NewSession{Kind: SessionLinks, Mail: sBob, Limit: 2}, clk.Now().Add(time.Duration(i)*time.Second))
		cookies = append(cookies, c)
	}
	carol, _ := newSession(t, s, NewSession{Kind: SessionLinks, Mail: sCarol, Limit: 2}, clk.Now())
	noSession(t, s, cookies[0], clk.Now().Add(5*time.Second), "the oldest beyond the limit")
	mustSession(t, s, cookies[1], clk.Now().Add(5*time.Second))
	mustSession(t, s, cookies[2], clk.Now().Add(5*time.Second))
	mustSession(t, s, carol, clk.Now().Add(5*time.Second))
}

func TestSessionRequestChecks(t *testing.T) {
	s, clk := pickupStore(t)
	for _, n := range []NewSession{
		{Kind: "admin", Mail: sBob, Idle: time.Minute, Max: time.Hour},
		{Kind: SessionLinks, Mail: "not a mail", Idle: time.Minute, Max: time.Hour},
		{Kind: SessionPackage, Mail: sBob, Idle: time.Minute, Max: time.Hour},
		{Kind: SessionLinks, Mail: sBob},
	} {
		if _, _, err := s.CreateSession(context.Background(), n, clk.Now()); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", n, err)
		}
	}
}

func TestRevokeLinkAsSenderOrLead(t *testing.T) {
	s, clk := pickupStore(t)
	ctx := context.Background()
	raw := rawDB(t, s.opt.Path)
	if _, err := raw.Exec(`INSERT INTO episodes (ref, child_hash, state, lead, opened_at, opened_by, updated_at)
		VALUES ('CAF-2026-000009', 'x', 'assessment', 'lead@health.example', '2026-01-01T00:00:00Z', 't', '2026-01-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	l1, _ := issue(t, s, LinkRequest{MessageID: "M1", Recipient: sBob, Episode: "CAF-2026-000009"})
	l2, _ := issue(t, s, LinkRequest{MessageID: "M1", Recipient: sCarol})
	list := func(mail string) []string {
		ls, err := s.LinksRevocableBy(ctx, mail, clk.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, l := range ls {
			ids = append(ids, l.ID)
		}
		return ids
	}
	if got := list("Alice@Agency.Example"); len(got) != 2 { // the sender: both
		t.Fatalf("sender sees %v", got)
	}
	if got := list("lead@health.example"); len(got) != 1 || got[0] != l1.ID { // the lead: the episode's
		t.Fatalf("lead sees %v", got)
	}
	if got := list(sBob); len(got) != 0 { // a recipient: none
		t.Fatalf("recipient sees %v", got)
	}
	for _, who := range []string{sBob, "lead@health.example"} {
		if err := s.RevokeLinkAs(ctx, l2.ID, who, who+" (pickup page)", "mistake"); !errors.Is(err, ErrLinkNotFound) {
			t.Fatalf("%s revoking %s: %v", who, l2.ID, err)
		}
	}
	if err := s.RevokeLinkAs(ctx, l1.ID, "lead@health.example", "lead@health.example (pickup page)", ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no reason: %v", err)
	}
	if err := s.RevokeLinkAs(ctx, l1.ID, "lead@health.example", "lead@health.example (pickup page)", "consent\nchanged"); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeLinkAs(ctx, l1.ID, "lead@health.example", "lead@health.example (pickup page)", "again"); !errors.Is(err, ErrLinkRevoked) {
		t.Fatalf("again: %v", err)
	}
	if err := s.RevokeLinkAs(ctx, l2.ID, "alice@agency.example", "alice@agency.example (pickup page)", "wrong person"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, raw, `SELECT count(*) FROM ledger_events WHERE type = 'revoked'
		AND json_extract(data, '$.by') = 'lead@health.example (pickup page)' AND json_extract(data, '$.reason') = 'consent changed'
		AND json_extract(data, '$.link') = ?`, l1.ID); n != 1 {
		t.Fatalf("%d revoked events naming the lead and the reason", n)
	}
	if got := list("alice@agency.example"); len(got) != 0 {
		t.Fatalf("revoked links still listed: %v", got)
	}
}
