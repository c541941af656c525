package pickup

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cafgate/directory"
	"cafgate/envelope/pkg"
	"cafgate/mailbox"
)

// signedIn returns a browser signed in to e's link as bob, on the package page.
func signedIn(t *testing.T, e *env) (*browser, *page) {
	t.Helper()
	b := e.browser()
	if p := b.signIn(e.token, bob, "bob-password", e.code(bob, 0)); p.status != http.StatusSeeOther || p.header.Get("Location") != Prefix+"package" {
		t.Fatalf("sign-in: %d %v\n%s", p.status, p.header, p.body)
	}
	return b, b.get(Prefix + "package")
}

func TestPackagePageAndDownloads(t *testing.T) {
	e := newEnv(t, nil)
	b, p := signedIn(t, e)
	if p.status != 200 {
		t.Fatalf("package page: %d\n%s", p.status, p.body)
	}
	mustContain(t, p, "Northfield Primary School", "6 May 2026", "action-plan.pdf", "review_script_.html", `id="download-all"`)
	mustNotContain(t, p, "<script>", "secret child subject")
	csrf := p.csrf(t)

	d := b.post(Prefix+"package/download", url.Values{"csrf": {csrf}, "doc": {"1"}})
	if d.status != 200 || string(d.raw) != "%PDF-1.7 action plan" || d.header.Get("Content-Type") != "application/pdf" {
		t.Fatalf("download 1: %d %q %v", d.status, d.raw, d.header)
	}
	_, params, _ := mime.ParseMediaType(d.header.Get("Content-Disposition"))
	if !strings.HasPrefix(d.header.Get("Content-Disposition"), "attachment") || params["filename"] != "action-plan.pdf" {
		t.Fatalf("disposition %q", d.header.Get("Content-Disposition"))
	}
	// An HTML document is never served as HTML.
	d = b.post(Prefix+"package/download", url.Values{"csrf": {csrf}, "doc": {"2"}})
	if d.header.Get("Content-Type") != "application/octet-stream" || !strings.Contains(d.header.Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("html document served as %q, CSP %q", d.header.Get("Content-Type"), d.header.Get("Content-Security-Policy"))
	}
	d = b.post(Prefix+"package/download", url.Values{"csrf": {csrf}, "doc": {"all"}})
	zr, err := zip.NewReader(bytes.NewReader(d.raw), int64(len(d.raw)))
	if err != nil || len(zr.File) != 2 {
		t.Fatalf("zip: %v", err)
	}
	for i, f := range zr.File {
		rc, _ := f.Open()
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, e.source.docs[i].Content) || f.Name != fileName(e.source.docs[i].Name, i+1) {
			t.Fatalf("zip entry %d: %s %q", i, f.Name, got)
		}
	}
	d = b.post(Prefix+"package/download", url.Values{"csrf": {csrf}, "doc": {"mime"}})
	if string(d.raw) != "MIME-Version: 1.0\r\n\r\nwhole package\r\n" {
		t.Fatalf("mime download %q", d.raw)
	}
	if p := b.post(Prefix+"package/download", url.Values{"csrf": {"x"}, "doc": {"1"}}); p.status != http.StatusForbidden {
		t.Fatalf("download without the session token: %d", p.status)
	}
	if p := b.post(Prefix+"package/download", url.Values{"csrf": {csrf}, "doc": {"3"}}); p.status != http.StatusBadRequest {
		t.Fatalf("download of a document not there: %d", p.status)
	}
	if n := e.ledgerCount("picked-up"); n != 5 {
		t.Fatalf("picked-up events: %d (1 view, 4 downloads)", n)
	}
	if n := e.ledgerCount("picked-up", `json_extract(data, '$.document') = 1 AND json_extract(data, '$.digest') IS NOT NULL`); n != 1 {
		t.Fatalf("download event of document 1: %d", n)
	}
	if n := e.ledgerCount("picked-up", `instr(event, 'action-plan') > 0`); n != 0 {
		t.Fatal("a document name reached the ledger")
	}
	l, _ := e.store.LinkByID(context.Background(), e.link.ID)
	if l.Downloads != 4 {
		t.Fatalf("downloads counted: %d", l.Downloads)
	}
	// Signing out ends the session.
	if p := b.post(Prefix+"signout", url.Values{"csrf": {csrf}}); p.status != 200 {
		t.Fatalf("sign-out: %d", p.status)
	}
	if p := b.get(Prefix + "package"); p.status != http.StatusUnauthorized {
		t.Fatalf("package page after sign-out: %d", p.status)
	}
}

func TestDownloadLimit(t *testing.T) {
	e := newEnv(t, nil)
	e.link, e.token = e.issue(bob, 2)
	b, p := signedIn(t, e)
	csrf := p.csrf(t)
	for i := range 2 {
		if d := b.post(Prefix+"package/download", url.Values{"csrf": {csrf}, "doc": {"1"}}); d.status != 200 {
			t.Fatalf("download %d: %d", i, d.status)
		}
	}
	d := b.post(Prefix+"package/download", url.Values{"csrf": {csrf}, "doc": {"1"}})
	if d.status != http.StatusGone || strings.Contains(d.body, "PDF") {
		t.Fatalf("third download: %d", d.status)
	}
	p = b.get(Prefix + "package")
	mustContain(t, p, text("package.usedup"))
	mustNotContain(t, p, `id="download-1"`)
}

func TestReasonForAccessIsAskedAndRecorded(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ReasonRequired = true })
	b, p := signedIn(t, e)
	mustContain(t, p, text("reason.intro"))
	mustNotContain(t, p, "action-plan")
	if d := b.post(Prefix+"package/download", url.Values{"csrf": {p.csrf(t)}, "doc": {"1"}}); strings.Contains(d.body, "PDF") {
		t.Fatal("download before a reason was given")
	}
	if r := b.post(Prefix+"package/reason", url.Values{"csrf": {p.csrf(t)}, "reason": {"  \t "}}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("empty reason: %d", r.status)
	}
	r := b.post(Prefix+"package/reason", url.Values{"csrf": {p.csrf(t)}, "reason": {"Team around the child\nmeeting"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("reason: %d", r.status)
	}
	p = b.get(Prefix + "package")
	mustContain(t, p, "action-plan.pdf")
	if n := e.ledgerCount("picked-up", `json_extract(data, '$.reason') = 'Team around the child meeting'`); n != 1 {
		t.Fatalf("view with reason: %d", n)
	}
}

func TestWithdrawnAndRevokedAfterSignIn(t *testing.T) {
	e := newEnv(t, nil)
	b, p := signedIn(t, e)
	csrf := p.csrf(t)
	e.source.withdrawn.Store(true)
	d := b.post(Prefix+"package/download", url.Values{"csrf": {csrf}, "doc": {"1"}})
	if d.status != http.StatusGone {
		t.Fatalf("download after withdrawal: %d", d.status)
	}
	mustContain(t, d, text("gone.withdrawn"))

	e2 := newEnv(t, nil)
	b2, p2 := signedIn(t, e2)
	if _, err := e2.store.RevokeLinksForRecipient(context.Background(), nil, bob, "directory entry disabled"); err != nil {
		t.Fatal(err)
	}
	// Revoking the link ended its session: nothing more is shown, whatever the browser sends.
	d = b2.post(Prefix+"package/download", url.Values{"csrf": {p2.csrf(t)}, "doc": {"1"}})
	if d.status != http.StatusUnauthorized || strings.Contains(d.body, "PDF") {
		t.Fatalf("download after revocation: %d", d.status)
	}
	mustContain(t, d, text("session.ended"))
	if n, _ := e2.store.CountSessions(context.Background(), bob); n != 0 {
		t.Fatalf("%d sessions of bob left after his links were revoked", n)
	}
}

func TestSessionsEndWhenIdle(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.SessionIdle = 5 * time.Minute })
	b, _ := signedIn(t, e)
	e.clk.Add(4 * time.Minute)
	if p := b.get(Prefix + "package"); p.status != 200 {
		t.Fatalf("within idle time: %d", p.status)
	}
	e.clk.Add(5 * time.Minute)
	if p := b.get(Prefix + "package"); p.status != http.StatusUnauthorized {
		t.Fatalf("after idle time: %d", p.status)
	}
}

func TestSecurityHeadersAndCookies(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	want := map[string]string{
		"Strict-Transport-Security": "max-age=31536000",
		"X-Frame-Options":           "DENY",
		"X-Content-Type-Options":    "nosniff",
		"Referrer-Policy":           "no-referrer",
		"Cache-Control":             "no-store",
	}
	signin := b.signIn(e.token, bob, "bob-password", e.code(bob, 0))
	pkgPage := b.get(Prefix + "package")
	for name, p := range map[string]*page{"link": b.get(linkPath(e.token)), "sign-in": signin, "package": pkgPage,
		"missing": b.get(Prefix + "nothing"), "style": b.get(Prefix + "static/pickup.css")} {
		for k, v := range want {
			if got := p.header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", name, k, got, v)
			}
		}
		csp := p.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", name, csp)
		}
	}
	var cookies []string
	for _, p := range []*page{b.get(linkPath(e.token)), signin} {
		cookies = append(cookies, p.header.Values("Set-Cookie")...)
	}
	if len(cookies) == 0 {
		t.Fatal("no cookies set")
	}
	for _, c := range cookies {
		for _, attr := range []string{"__Host-", "Path=/", "HttpOnly", "Secure", "SameSite=Strict"} {
			if !strings.Contains(c, attr) {
				t.Errorf("cookie %q lacks %s", c, attr)
			}
		}
		if strings.Contains(c, "Domain=") || strings.Contains(c, e.token) {
			t.Errorf("cookie %q", c)
		}
	}
	// No inline script or style anywhere.
	if strings.Contains(pkgPage.body, "<script") || strings.Contains(pkgPage.body, "style=") || regexp.MustCompile(`\son[a-z]+=`).MatchString(pkgPage.body) {
		t.Fatal("inline script or style on the package page")
	}
}

func TestEveryTextKeyExists(t *testing.T) {
	re := regexp.MustCompile(`\{\{t "([^"]+)"\}\}`)
	ents, _ := templateFiles.ReadDir("templates")
	used := map[string]bool{}
	for _, ent := range ents {
		b, _ := templateFiles.ReadFile("templates/" + ent.Name())
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
	}
	src, _ := os.ReadFile("handler.go")
	more, _ := os.ReadFile("signin.go")
	keyRe := regexp.MustCompile(`"((?:signin|enrol|reason|package|gone|locked|session|error)\.[a-z.]+)"`)
	for _, m := range keyRe.FindAllStringSubmatch(string(src)+string(more), -1) {
		used[m[1]] = true
	}
	en := English()
	for k := range used {
		if _, ok := en[k]; !ok {
			t.Errorf("text key %q is used but not in English()", k)
		}
	}
	if len(used) < 20 {
		t.Fatalf("only %d keys found: the test is not reading the templates", len(used))
	}
	bad := English()
	delete(bad, "signin.title")
	if _, err := New(Options{Store: &mailbox.Store{}, Auth: &fakeAuth{}, Source: &fakeSource{}, Text: bad}); err == nil {
		t.Fatal("a catalogue with a missing sentence was accepted")
	}
}

func TestContentsFromARealPackage(t *testing.T) {
	raw, err := os.ReadFile("../../envelope/pkg/testdata/golden/health-review.eml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := pkg.ParseBytes(raw, pkg.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := FromPackage(p, []pkg.Section{pkg.Consent})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Documents) != 1 || c.Documents[0].Name != "consent-form.pdf" || c.Documents[0].MediaType != "application/pdf" ||
		!bytes.HasPrefix(c.Documents[0].Content, []byte("%PDF-1.7\n% Signed consent")) {
		t.Fatalf("documents for consent only: %+v", c.Documents)
	}
	if bytes.Contains(c.MIME, []byte("action-plan.pdf")) {
		t.Fatal("the MIME download holds a document the recipient may not see")
	}
	all, err := FromPackage(p, pkg.AllSections())
	if err != nil || len(all.Documents) != 2 {
		t.Fatalf("all sections: %v %d", err, len(all.Documents))
	}
	if _, err := FromPackage(p, []pkg.Section{pkg.ChildsDetails}); err != ErrNotAllowed {
		t.Fatalf("nothing allowed: %v", err)
	}
}

// lookupFunc adapts a function to Lookup.
type lookupFunc func(ctx context.Context, mail string) (*directory.Practitioner, error)

func (f lookupFunc) Lookup(ctx context.Context, mail string) (*directory.Practitioner, error) {
	return f(ctx, mail)
}

func TestADisabledEntryLosesAccessAtOnce(t *testing.T) {
	var disabled atomic.Bool
	e := newEnv(t, func(o *Options) {
		o.Directory = lookupFunc(func(ctx context.Context, mail string) (*directory.Practitioner, error) {
			return &directory.Practitioner{Mail: mail, Disabled: disabled.Load(), VettingValidUntil: time.Now().Add(time.Hour)}, nil
		})
	})
	b, p := signedIn(t, e)
	if p.status != 200 {
		t.Fatalf("package page: %d", p.status)
	}
	disabled.Store(true)
	d := b.post(Prefix+"package/download", url.Values{"csrf": {p.csrf(t)}, "doc": {"1"}})
	if d.status != http.StatusForbidden || strings.Contains(d.body, "PDF") {
		t.Fatalf("download by a disabled practitioner: %d", d.status)
	}
	disabled.Store(false)
	if p := b.get(Prefix + "package"); p.status != http.StatusUnauthorized {
		t.Fatalf("the session survived: %d", p.status)
	}
}

func TestRunExpiryMarksExpiredLinks(t *testing.T) {
	e := newEnv(t, nil)
	e.clk.Add(mailbox.DefaultLinkLifetime)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.h.RunExpiry(ctx, time.Hour); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := e.store.LinkByID(context.Background(), e.link.ID)
		if err != nil {
			t.Fatal(err)
		}
		if l.State == mailbox.LinkExpired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the link was not marked expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if n := e.ledgerCount("expired"); n != 1 {
		t.Fatalf("expired events: %d", n)
	}
}
