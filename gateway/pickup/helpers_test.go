package pickup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"cafgate/directory"
	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
	"cafgate/mailbox"
)

// clock is the test's clock, shared by the store and the handler.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// fakeAuth answers like intake.Intake.Authenticate from a table of passwords.
type fakeAuth struct {
	passwords map[string]string
	down      atomic.Bool
}

func (a *fakeAuth) Authenticate(ctx context.Context, user, password string, c intake.Client) (*directory.Practitioner, error) {
	if a.down.Load() {
		return nil, fault.New(fault.AuthDirectoryUnavailable, "", directory.ErrUnavailable)
	}
	mail := intake.NormalizeMail(user)
	if pw, ok := a.passwords[mail]; !ok || pw != password || password == "" {
		return nil, fault.New(fault.BadCredentials, "", directory.ErrBadCredentials)
	}
	return &directory.Practitioner{Mail: mail, Agency: "Test agency", VettingValidUntil: time.Now().Add(time.Hour)}, nil
}

// fakeSource serves fixed documents for (M1, bob).
type fakeSource struct {
	docs      []Document
	withdrawn atomic.Bool
	calls     atomic.Int32
}

func (f *fakeSource) Contents(ctx context.Context, messageID, recipient string) (*Contents, error) {
	f.calls.Add(1)
	if f.withdrawn.Load() || messageID != "M1" || recipient != bob {
		return nil, ErrNotAllowed
	}
	return &Contents{Documents: f.docs, MIME: []byte("MIME-Version: 1.0\r\n\r\nwhole package\r\n")}, nil
}

const (
	bob   = "bob@council.example"
	carol = "carol@health.example"
)

// env is one handler on a TLS test server with a real store.
type env struct {
	t       testing.TB
	store   *mailbox.Store
	clk     *clock
	auth    *fakeAuth
	source  *fakeSource
	h       *Handler
	srv     *httptest.Server
	link    *mailbox.Link
	token   string
	secrets map[string]string // TOTP secrets by mail
	db      *sql.DB           // the database file, read directly
}

func newEnv(t testing.TB, mod func(*Options)) *env {
	t.Helper()
	e := &env{t: t, clk: &clock{}, secrets: map[string]string{}}
	e.clk.ns.Store(time.Date(2026, 5, 6, 10, 0, 0, 0, time.UTC).UnixNano())
	dir := t.TempDir()
	st, err := mailbox.Open(context.Background(), mailbox.Options{Path: filepath.Join(dir, "m.db"),
		ContentKey: bytes.Repeat([]byte{9}, 32), Now: e.clk.Now, Ledger: mailbox.LedgerOptions{Interval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.store = st
	if e.db, err = sql.Open("sqlite3", "file:"+filepath.Join(dir, "m.db")+"?mode=ro&_busy_timeout=5000"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	content := []byte("Subject: secret child subject\r\n\r\nbody\r\n")
	err = st.Accept(context.Background(), &mailbox.Incoming{ID: "M1", Sender: "alice@agency.example", SenderDN: "uid=alice",
		Agency: "Northfield Primary School", Recipients: []string{bob, carol}, Via: "submission", RemoteAddr: "192.0.2.1:1",
		ReceivedAt: e.clk.Now(), Digest: sha256.Sum256(content), Content: content})
	if err != nil {
		t.Fatal(err)
	}
	e.link, e.token = e.issue(bob, 0)
	for _, m := range []string{bob, carol} {
		key, _ := totp.Generate(totp.GenerateOpts{Issuer: "t", AccountName: m})
		e.secrets[m] = key.Secret()
		if err := st.ImportTOTPSecret(context.Background(), m, key.Secret()); err != nil {
			t.Fatal(err)
		}
	}
	e.auth = &fakeAuth{passwords: map[string]string{bob: "bob-password", carol: "carol-password"}}
	e.source = &fakeSource{docs: []Document{
		{Name: "action-plan.pdf", MediaType: "application/pdf", Content: []byte("%PDF-1.7 action plan")},
		{Name: "review<script>.html", MediaType: "text/html", Content: []byte("<script>alert(1)</script>")},
	}}
	opt := Options{Store: st, Auth: e.auth, Source: e.source, Now: e.clk.Now, Contact: "help@gw.example"}
	if mod != nil {
		mod(&opt)
	}
	if e.h, err = New(opt); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewTLSServer(e.h)
	t.Cleanup(e.srv.Close)
	return e
}

// issue issues a link for rcpt with the given download limit (0: default).
func (e *env) issue(rcpt string, max int) (*mailbox.Link, string) {
	var token string
	l, err := e.store.Notify(context.Background(), mailbox.LinkRequest{MessageID: "M1", Recipient: rcpt, MaxDownloads: max},
		func(il *mailbox.IssuedLink) (*mailbox.Outbound, error) {
			token = il.Token
			return &mailbox.Outbound{From: "gw@gw.example", Recipient: rcpt,
				Content: []byte("Message-ID: <" + il.ID + "@gw>\r\n\r\nx\r\n")}, nil
		})
	if err != nil {
		e.t.Fatal(err)
	}
	return l, token
}

// code is mail's TOTP code at the test clock plus offset.
func (e *env) code(mail string, offset time.Duration) string {
	c, err := totp.GenerateCodeCustom(e.secrets[mail], e.clk.Now().Add(offset), totp.ValidateOpts{Digits: otp.DigitsSix})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// browser is a client with its own cookie jar that does not follow redirects.
type browser struct {
	e   *env
	c   *http.Client
	hdr http.Header // extra request headers
	url string      // the server asked; default e.srv.URL
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := *e.srv.Client() // a copy: the server's client is shared
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{e: e, c: &c, hdr: http.Header{}}
}

type page struct {
	status int
	header http.Header
	body   string
	raw    []byte
}

func (b *browser) do(method, path string, form url.Values) *page {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	base := b.e.srv.URL
	if b.url != "" {
		base = b.url
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range b.hdr {
		req.Header[k] = v
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return &page{status: resp.StatusCode, header: resp.Header, body: string(raw), raw: raw}
}

func (b *browser) get(path string) *page { return b.do("GET", path, nil) }

func (b *browser) post(path string, form url.Values) *page { return b.do("POST", path, form) }

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the form token of a page.
func (p *page) csrf(t testing.TB) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no CSRF token in page (status %d):\n%s", p.status, p.body)
	}
	return m[1]
}

func linkPath(token string) string { return Prefix + "l/" + token }

// signIn opens the link and signs in as mail with password and code; it returns the answer.
func (b *browser) signIn(token, mail, password, code string) *page {
	b.e.t.Helper()
	form := b.get(linkPath(token))
	if form.status != 200 {
		return form
	}
	return b.post(linkPath(token), url.Values{"csrf": {form.csrf(b.e.t)}, "mail": {mail}, "password": {password}, "code": {code}})
}

// ledgerCount counts ledger events of typ (and, when cond is given, matching that SQL condition).
func (e *env) ledgerCount(typ string, cond ...string) int {
	e.t.Helper()
	q := `SELECT count(*) FROM ledger_events WHERE type = ?`
	for _, c := range cond {
		q += " AND " + c
	}
	var n int
	if err := e.db.QueryRow(q, typ).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func mustContain(t *testing.T, p *page, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(p.body, w) {
			t.Fatalf("page (status %d) lacks %q:\n%s", p.status, w, p.body)
		}
	}
}

func mustNotContain(t *testing.T, p *page, bad ...string) {
	t.Helper()
	for _, w := range bad {
		if strings.Contains(p.body, w) {
			t.Fatalf("page (status %d) contains %q:\n%s", p.status, w, p.body)
		}
	}
}

// text is the English sentence of key, HTML-escaped as the page shows it.
func text(key string) string {
	s := English()[key]
	return strings.NewReplacer("'", "&#39;", `"`, "&#34;", "&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
