package pickup

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// node starts a second handler over e's store, as a restarted gateway or another node would run.
func (e *env) node(t *testing.T) *httptest.Server {
	t.Helper()
	h, err := New(Options{Store: e.store, Auth: e.auth, Source: e.source, Now: e.clk.Now, Contact: "help@gw.example"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// on returns a browser sharing b's cookies that asks srv.
func (b *browser) on(srv *httptest.Server) *browser {
	c := *srv.Client()
	c.Jar, c.CheckRedirect = b.c.Jar, b.c.CheckRedirect
	return &browser{e: b.e, c: &c, hdr: b.hdr, url: srv.URL}
}

func TestSessionsAreSharedByNodesAndSurviveARestart(t *testing.T) {
	e := newEnv(t, nil)
	b, p := signedIn(t, e)
	mustContain(t, p, "action-plan.pdf")
	csrf := p.csrf(t)

	// The first node goes away; the second serves the same session, form token included.
	e.srv.Close()
	b2 := b.on(e.node(t))
	p2 := b2.get(Prefix + "package")
	if p2.status != 200 || p2.csrf(t) != csrf {
		t.Fatalf("package page on the second node: %d", p2.status)
	}
	mustContain(t, p2, "action-plan.pdf")
	d := b2.post(Prefix+"package/download", url.Values{"csrf": {csrf}, "doc": {"1"}})
	if d.status != 200 || string(d.raw) != "%PDF-1.7 action plan" {
		t.Fatalf("download on the second node: %d %q", d.status, d.raw)
	}

	// Signing out on one node ends the session everywhere; the old cookie opens nothing.
	b3 := b.on(e.node(t))
	if so := b2.post(Prefix+"signout", url.Values{"csrf": {csrf}}); so.status != 200 {
		t.Fatalf("sign-out: %d", so.status)
	}
	for _, x := range []*browser{b2, b3} {
		if q := x.get(Prefix + "package"); q.status != http.StatusUnauthorized {
			t.Fatalf("after sign-out: %d", q.status)
		}
	}
	if n, _ := e.store.CountSessions(context.Background(), bob); n != 0 {
		t.Fatalf("%d sessions left after sign-out", n)
	}
}

func TestSessionCookieIsNotTheStoredValueAndWrongCookiesOpenNothing(t *testing.T) {
	e := newEnv(t, nil)
	b, _ := signedIn(t, e)
	u, _ := url.Parse(e.srv.URL)
	var cookie string
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			cookie = c.Value
		}
	}
	var n int
	if err := e.db.QueryRow(`SELECT count(*) FROM pickup_sessions WHERE instr(secret_hash, ?) > 0 OR id = ?`,
		cookie[17:], cookie).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the cookie is stored as it is (%d, %v)", n, err)
	}
	// The cookie of a session with its secret changed opens nothing.
	bad := []byte(cookie)
	bad[30] ^= 1
	if bad[30] == '-' || bad[30] == '_' {
		bad[30] = 'A'
	}
	other := e.browser()
	other.hdr.Set("Cookie", sessionCookie+"="+string(bad))
	if p := other.get(Prefix + "package"); p.status != http.StatusUnauthorized {
		t.Fatalf("a forged cookie: %d", p.status)
	}
	// and ending "its" session from it ends nothing.
	other.post(Prefix+"signout", url.Values{"csrf": {"x"}})
	if p := b.get(Prefix + "package"); p.status != 200 {
		t.Fatalf("after a forged sign-out: %d", p.status)
	}
}

func TestEnrolmentContinuesOnAnotherNode(t *testing.T) {
	e := newEnv(t, nil)
	ec, err := e.store.IssueEnrolment(context.Background(), bob, "admin:test", 0)
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	form := b.get(linkPath(e.token) + "/enrol")
	p := b.post(linkPath(e.token)+"/enrol", url.Values{"csrf": {form.csrf(t)}, "mail": {bob}, "password": {"bob-password"}, "enrolcode": {ec}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("enrolment start: %d", p.status)
	}
	qr1 := b.get(Prefix + "enrol/confirm")
	qr2 := b.on(e.node(t)).get(Prefix + "enrol/confirm")
	s1, s2 := secretRe.FindStringSubmatch(qr1.body), secretRe.FindStringSubmatch(qr2.body)
	if qr2.status != 200 || s1 == nil || s2 == nil || s1[1] != s2[1] {
		t.Fatalf("QR page on the second node: %d", qr2.status)
	}
}
