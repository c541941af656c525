package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"cafgate/mailbox"
)

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	get := func(key, actor string) *resp {
		return e.do(call{method: "GET", path: "/v1/episodes/" + e.episode(0), key: key, actor: actor})
	}
	if r := get(e.keys[health], priya); r.status != 200 {
		t.Fatalf("good key: %s", r)
	}
	p := wantProblem(t, get("", priya), 401, "auth-required")
	_ = p
	r := get("", priya)
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	// Every refused credential gets one answer: wrong secret, unknown client, malformed, revoked.
	key := e.keys[health]
	wrong := key[:len(key)-4] + "0000"
	if wrong == key {
		wrong = key[:len(key)-4] + "1111"
	}
	c, revokedKey, err := e.store.AddAPIClient(context.Background(), mailbox.NewAPIClient{Agency: health, Name: "old"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.RevokeAPIClient(context.Background(), c.ID, "test", "replaced"); err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, k := range []string{wrong, mailbox.APIKeyPrefix + "0000000000000000_" + key[len(key)-52:], "nonsense", revokedKey} {
		p := wantProblem(t, get(k, priya), 401, "bad-credentials")
		details = append(details, p.Title+"|"+p.Detail+"|"+p.Field)
	}
	for _, d := range details[1:] {
		if d != details[0] {
			t.Errorf("401 answers differ: %q vs %q", d, details[0])
		}
	}
	req := call{method: "GET", path: "/v1/episodes/" + e.episode(0), actor: priya, header: map[string]string{"Authorization": "Basic " + key}}
	wantProblem(t, e.do(req), 401, "bad-credentials")
	// The practitioner acted for: missing, of another agency, unknown: one 403 for the last two.
	wantProblem(t, get(key, ""), 400, "bad-request", "header "+OnBehalfOfHeader)
	a := wantProblem(t, get(key, harriet), 403, "not-permitted", "header "+OnBehalfOfHeader)
	b := wantProblem(t, get(key, "nobody@health.cafgate.test"), 403, "not-permitted", "header "+OnBehalfOfHeader)
	if a.Detail != b.Detail || a.Title != b.Title {
		t.Errorf("403 answers differ: %q vs %q", a.Detail, b.Detail)
	}
	// Of the client's own agency but lapsed: the reason may be given.
	l := wantProblem(t, get(e.keys[school], oliver), 403, "not-permitted")
	if !strings.Contains(l.Detail, "vetting") {
		t.Errorf("lapsed practitioner: %q", l.Detail)
	}
	// The directory is down: 503, not 403.
	e.sdir.down.Store(true)
	wantProblem(t, get(key, priya), 503, "directory-unavailable")
	e.sdir.down.Store(false)
	// Not a route: 404; not a method of the route: 405 with Allow.
	wantProblem(t, e.do(call{method: "GET", path: "/v1/nothing", key: key, actor: priya, outOfSpec: true}), 404, "not-found")
	r = e.do(call{method: "DELETE", path: "/v1/packages/ABC", key: key, actor: priya, outOfSpec: true})
	wantProblem(t, r, 405, "method-not-allowed")
	if r.header.Get("Allow") != "GET" {
		t.Errorf("Allow: %q", r.header.Get("Allow"))
	}
}

func TestClientCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cert, _ := selfSigned(t, "police case system", x509.ExtKeyUsageClientAuth)
	other, _ := selfSigned(t, "unknown system", x509.ExtKeyUsageClientAuth)
	c, key, err := e.store.AddAPIClient(context.Background(), mailbox.NewAPIClient{Agency: police, Name: "niche",
		CertFingerprint: mailbox.CertFingerprint(cert.Certificate[0])})
	if err != nil || key != "" {
		t.Fatal(c, key, err)
	}
	get := func(cert *tls.Certificate, actor string) *resp {
		return e.do(call{method: "GET", path: "/v1/episodes/" + e.episode(0), cert: cert, actor: actor})
	}
	var ep struct {
		Reference string `json:"reference"`
	}
	r := get(&cert, rita)
	r.json(t, &ep)
	if r.status != 200 || ep.Reference != e.episode(0) {
		t.Fatalf("certificate client: %s", r)
	}
	wantProblem(t, get(&other, rita), 401, "bad-credentials")
	wantProblem(t, get(&cert, priya), 403, "not-permitted")
	// A key wins over the certificate when both come.
	r = e.do(call{method: "GET", path: "/v1/episodes/" + e.episode(0), cert: &cert, key: e.keys[health], actor: priya})
	if r.status != 200 {
		t.Fatalf("key with a certificate: %s", r)
	}
	if _, err := e.store.RevokeAPIClient(context.Background(), c.ID, "test", "replaced"); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, get(&cert, rita), 401, "bad-credentials")
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(l *Limits) { l.RatePerMinute = 1; l.RateBurst = 2; l.AuthFailuresPerIP = 3 })
	get := func(key string) *resp {
		return e.do(call{method: "GET", path: "/v1/episodes/" + e.episode(0), key: key, actor: priya})
	}
	get(e.keys[health])
	get(e.keys[health])
	r := get(e.keys[health])
	wantProblem(t, r, 429, "rate-limited")
	if r.header.Get("Retry-After") == "" || r.header.Get("Retry-After") == "0" {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	// Another client has its own bucket.
	if r := e.do(call{method: "GET", path: "/v1/episodes/" + e.episode(0), key: e.keys[school], actor: harriet}); r.status != 200 {
		t.Fatalf("other client: %s", r)
	}
	// Failed authentications block the address, good key or not, until the window passes.
	for i := 0; i < 3; i++ {
		wantProblem(t, get("cafk_wrong"), 401, "bad-credentials")
	}
	wantProblem(t, e.do(call{method: "GET", path: "/v1/episodes/" + e.episode(0), key: e.keys[school], actor: harriet}), 429, "rate-limited")
}

// TestTLSOnly: mounted on plain HTTP by mistake, the API answers nothing but a refusal.
func TestTLSOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	plain := httptest.NewServer(e.h)
	defer plain.Close()
	req, _ := http.NewRequest("GET", plain.URL+"/v1/openapi.json", nil)
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 403 || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("plain HTTP: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	// TLS 1.1 is refused by the server's configuration.
	conn, err := tls.Dial("tcp", e.srv.Listener.Addr().String(), &tls.Config{RootCAs: e.pool, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10})
	if err == nil {
		conn.Close()
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}
