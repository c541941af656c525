package pickup

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"cafgate/mailbox"
)

func TestOpeningTheLinkConsumesNothingAndShowsNothing(t *testing.T) {
	e := newEnv(t, nil)
	before := e.ledgerCount("signin") + e.ledgerCount("signin-failed") + e.ledgerCount("picked-up")
	b := e.browser()
	for range 5 {
		p := b.get(linkPath(e.token))
		if p.status != 200 {
			t.Fatalf("GET link: %d", p.status)
		}
		mustContain(t, p, text("signin.intro"), `autocomplete="one-time-code"`)
		mustNotContain(t, p, "Northfield", "action-plan", "secret child subject")
	}
	// A scanner without cookies, and HEAD, change nothing either.
	httpClient := e.srv.Client()
	if resp, err := httpClient.Head(e.srv.URL + linkPath(e.token)); err != nil || resp.StatusCode != 200 {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	l, err := e.store.LinkByID(context.Background(), e.link.ID)
	if err != nil || l.Downloads != 0 || !l.Opened.IsZero() || l.Failures != 0 || l.State != mailbox.LinkActive {
		t.Fatalf("GET changed the link: %+v %v", l, err)
	}
	if after := e.ledgerCount("signin") + e.ledgerCount("signin-failed") + e.ledgerCount("picked-up"); after != before {
		t.Fatalf("GET wrote %d ledger events", after-before)
	}
	// And the link still works afterwards.
	if p := b.signIn(e.token, bob, "bob-password", e.code(bob, 0)); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in after prefetches: %d\n%s", p.status, p.body)
	}
}

// normal strips what differs between two renderings of one page (the form token).
func normal(body string) string {
	return regexp.MustCompile(`value="[A-Za-z0-9_-]{43}"`).ReplaceAllString(body, `value=""`)
}

func TestRefusalsLookAlike(t *testing.T) {
	e := newEnv(t, nil)
	good := e.code(bob, 0)
	if p := e.browser().signIn(e.token, bob, "bob-password", good); p.status != http.StatusSeeOther {
		t.Fatalf("first sign-in: %d", p.status)
	}
	cases := map[string][3]string{
		"wrong password": {bob, "nope", e.code(bob, 0)},
		"unknown user":   {"nobody@council.example", "bob-password", e.code(bob, 0)},
		"wrong code":     {bob, "bob-password", "000000"},
		"replayed code":  {bob, "bob-password", good},
		"malformed code": {bob, "bob-password", "12ab"},
		"empty password": {bob, "", good},
	}
	var first string
	for name, c := range cases {
		p := e.browser().signIn(e.token, c[0], c[1], c[2])
		if p.status != http.StatusUnauthorized {
			t.Fatalf("%s: status %d", name, p.status)
		}
		mustContain(t, p, text("signin.failed"))
		body := strings.ReplaceAll(normal(p.body), `value="`+c[0]+`"`, `value=""`)
		if first == "" {
			first = body
		} else if body != first {
			t.Fatalf("%s: the answer differs from another refusal", name)
		}
	}
	reasons := map[string]int{}
	rows, err := e.db.Query(`SELECT json_extract(data, '$.reason') FROM ledger_events WHERE type = 'signin-failed'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r string
		rows.Scan(&r)
		reasons[r]++
	}
	rows.Close()
	if reasons[reasonBadCredentials] != 3 || reasons[reasonBadCode] != 2 || reasons[reasonReplayedCode] != 1 {
		t.Fatalf("ledger reasons: %v", reasons)
	}
}

func TestParallelSubmissionsOfOneCodeOneWins(t *testing.T) {
	e := newEnv(t, nil)
	code := e.code(bob, 0)
	const n = 6
	type prepared struct {
		b    *browser
		csrf string
	}
	var ps []prepared
	for range n {
		b := e.browser()
		ps = append(ps, prepared{b, b.get(linkPath(e.token)).csrf(t)})
	}
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			pg := p.b.post(linkPath(e.token), url.Values{"csrf": {p.csrf}, "mail": {bob},
				"password": {"bob-password"}, "code": {code}})
			statuses[i] = pg.status
		}()
	}
	close(start)
	wg.Wait()
	won := 0
	for _, s := range statuses {
		switch s {
		case http.StatusSeeOther:
			won++
		case http.StatusUnauthorized:
		default:
			t.Fatalf("status %d", s)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d parallel sign-ins with one code succeeded: %v", won, n, statuses)
	}
}

func TestAnotherPractitionerCannotOpenTheLink(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	p := b.signIn(e.token, carol, "carol-password", e.code(carol, 0))
	if p.status != http.StatusForbidden {
		t.Fatalf("carol on bob's link: %d", p.status)
	}
	mustContain(t, p, text("signin.other"))
	mustNotContain(t, p, "Northfield", "action-plan")
	if p := b.get(Prefix + "package"); p.status != http.StatusUnauthorized {
		t.Fatalf("package page after a refused sign-in: %d", p.status)
	}
	if n := e.ledgerCount("signin-failed", `json_extract(data, '$.reason') = 'not-recipient'`); n != 1 {
		t.Fatalf("not-recipient events: %d", n)
	}
	if e.source.calls.Load() != 0 {
		t.Fatal("the package source was asked before the recipient was checked")
	}
}

func TestFormTokenAndOriginChecks(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.get(linkPath(e.token))
	form := url.Values{"mail": {bob}, "password": {"bob-password"}, "code": {e.code(bob, 0)}}
	if p := b.post(linkPath(e.token), form); p.status != http.StatusForbidden {
		t.Fatalf("post without token: %d", p.status)
	}
	form.Set("csrf", strings.Repeat("A", 43))
	if p := b.post(linkPath(e.token), form); p.status != http.StatusForbidden {
		t.Fatalf("post with a wrong token: %d", p.status)
	}
	// A cross-site post with the right token is refused before it is read.
	b2 := e.browser()
	form.Set("csrf", b2.get(linkPath(e.token)).csrf(t))
	b2.hdr.Set("Sec-Fetch-Site", "cross-site")
	if p := b2.post(linkPath(e.token), form); p.status != http.StatusForbidden {
		t.Fatalf("cross-site post: %d", p.status)
	}
	b2.hdr.Del("Sec-Fetch-Site")
	b2.hdr.Set("Origin", "https://evil.example")
	if p := b2.post(linkPath(e.token), form); p.status != http.StatusForbidden {
		t.Fatalf("post from another origin: %d", p.status)
	}
	b2.hdr.Set("Origin", e.srv.URL)
	b2.hdr.Set("Sec-Fetch-Site", "same-origin")
	if p := b2.post(linkPath(e.token), form); p.status != http.StatusSeeOther {
		t.Fatalf("same-origin post: %d\n%s", p.status, p.body)
	}
}

func TestPlainHTTPIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, httptest.NewRequest("GET", "http://gw.example"+linkPath(e.token), nil))
	if w.Code != http.StatusForbidden || strings.Contains(w.Body.String(), "form") {
		t.Fatalf("plain HTTP: %d", w.Code)
	}
}

func TestAddressAccountAndLinkLimits(t *testing.T) {
	t.Run("address", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.IPFailures = 3 })
		for i := range 3 {
			if p := e.browser().signIn(e.token, bob, "wrong", "000000"); p.status != http.StatusUnauthorized {
				t.Fatalf("attempt %d: %d", i, p.status)
			}
		}
		p := e.browser().signIn(e.token, bob, "bob-password", e.code(bob, 0))
		if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" {
			t.Fatalf("after the address limit: %d %v", p.status, p.header)
		}
		e.clk.Add(16 * time.Minute)
		if p := e.browser().signIn(e.token, bob, "bob-password", e.code(bob, 0)); p.status != http.StatusSeeOther {
			t.Fatalf("after the window: %d", p.status)
		}
	})
	t.Run("account", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.AccountFailures = 2 })
		e.browser().signIn(e.token, bob, "wrong", "000000")
		p := e.browser().signIn(e.token, bob, "wrong", "000000")
		if p.status != http.StatusForbidden {
			t.Fatalf("locking attempt: %d", p.status)
		}
		mustContain(t, p, text("locked.account"))
		p = e.browser().signIn(e.token, bob, "bob-password", e.code(bob, 0))
		if p.status != http.StatusForbidden {
			t.Fatalf("right credentials on a locked account: %d", p.status)
		}
		if _, err := e.store.UnlockAccount(context.Background(), bob); err != nil {
			t.Fatal(err)
		}
		if p := e.browser().signIn(e.token, bob, "bob-password", e.code(bob, 30*time.Second)); p.status != http.StatusSeeOther {
			t.Fatalf("after unlock: %d", p.status)
		}
	})
	t.Run("link", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.LinkFailures = 2 })
		e.browser().signIn(e.token, "x1@council.example", "wrong", "000000")
		e.browser().signIn(e.token, "x2@council.example", "wrong", "000000")
		p := e.browser().get(linkPath(e.token))
		if p.status != http.StatusForbidden {
			t.Fatalf("locked link: %d", p.status)
		}
		mustContain(t, p, text("locked.link"))
		if err := e.store.UnlockLink(context.Background(), e.link.ID); err != nil {
			t.Fatal(err)
		}
		if p := e.browser().signIn(e.token, bob, "bob-password", e.code(bob, 0)); p.status != http.StatusSeeOther {
			t.Fatalf("after unlock: %d", p.status)
		}
	})
}

func TestDirectoryDownIsToldApart(t *testing.T) {
	e := newEnv(t, nil)
	e.auth.down.Store(true)
	p := e.browser().signIn(e.token, bob, "bob-password", e.code(bob, 0))
	if p.status != http.StatusServiceUnavailable {
		t.Fatalf("directory down: %d", p.status)
	}
	mustContain(t, p, text("error.directory"))
	if n := e.ledgerCount("signin-failed"); n != 0 {
		t.Fatalf("a directory outage counted as a failure: %d", n)
	}
}

func TestExpiredAndRevokedLinks(t *testing.T) {
	e := newEnv(t, nil)
	other, otherToken := e.issue(bob, 0)
	if err := e.store.RevokeLink(context.Background(), other.ID, "alice@agency.example", "sent in error"); err != nil {
		t.Fatal(err)
	}
	p := e.browser().get(linkPath(otherToken))
	if p.status != http.StatusGone {
		t.Fatalf("revoked: %d", p.status)
	}
	mustContain(t, p, text("gone.revoked"))
	if p := e.browser().signIn(otherToken, bob, "bob-password", e.code(bob, 0)); p.status != http.StatusGone {
		t.Fatalf("sign-in on a revoked link: %d", p.status)
	}
	e.clk.Add(mailbox.DefaultLinkLifetime)
	p = e.browser().get(linkPath(e.token))
	if p.status != http.StatusGone {
		t.Fatalf("expired: %d", p.status)
	}
	mustContain(t, p, text("gone.expired"))
	if p := e.browser().get(linkPath("L" + strings.Repeat("0", 59))); p.status != http.StatusNotFound {
		t.Fatalf("unknown link: %d", p.status)
	}
}
