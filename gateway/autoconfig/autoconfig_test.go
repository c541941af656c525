package autoconfig

import (
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"cafgate/configs"
)

func TestDocument(t *testing.T) {
	h, err := New(Settings{Hostname: "cafgate.example.org", Domains: []string{"council.example", "health.example"},
		IMAPS: ":993", IMAP: "0.0.0.0:143", Submissions: ":465", Submission: "[::]:587"})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", Paths[0]+"?emailaddress=Bob%40Council.Example", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/xml") {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	body := rec.Body.String()
	if strings.Contains(strings.ToLower(body), "bob") {
		t.Fatal("the address was echoed")
	}
	var doc clientConfig
	if err := xml.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	p := doc.Provider
	if doc.Version != "1.1" || len(p.Domains) != 2 || len(p.Incoming) != 2 || len(p.Outgoing) != 2 {
		t.Fatalf("%+v", doc)
	}
	want := []server{
		{"imap", "cafgate.example.org", 993, "SSL", "password-cleartext", "%EMAILADDRESS%"},
		{"imap", "cafgate.example.org", 143, "STARTTLS", "password-cleartext", "%EMAILADDRESS%"},
		{"smtp", "cafgate.example.org", 465, "SSL", "password-cleartext", "%EMAILADDRESS%"},
		{"smtp", "cafgate.example.org", 587, "STARTTLS", "password-cleartext", "%EMAILADDRESS%"},
	}
	for i, s := range append(p.Incoming, p.Outgoing...) {
		if s != want[i] {
			t.Errorf("server %d: %+v, want %+v", i, s, want[i])
		}
	}
	for _, c := range []struct {
		method, target string
		code           int
	}{
		{"GET", Paths[1] + "?emailaddress=eve%40elsewhere.example", 404},
		{"GET", Paths[1] + "?emailaddress=nonsense", 404},
		{"POST", Paths[1], 405},
		{"HEAD", Paths[1], 200},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.target, nil))
		if rec.Code != c.code || (c.method == "HEAD" && rec.Body.Len() != 0) {
			t.Errorf("%s %s: %d (%d bytes)", c.method, c.target, rec.Code, rec.Body.Len())
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, s := range []Settings{
		{Hostname: "", Domains: []string{"a"}, IMAPS: ":993"},
		{Hostname: "h", IMAPS: ":993"},
		{Hostname: "h", Domains: []string{"a"}},
		{Hostname: "h", Domains: []string{"a"}, IMAPS: "993"},
	} {
		if _, err := New(s); err == nil {
			t.Errorf("%+v accepted", s)
		}
	}
	var _ http.Handler
}

func TestFromConfigAndMount(t *testing.T) {
	cfg := &configs.Config{Hostname: "gw.example"}
	cfg.IMAP.HostedDomains = []string{"council.example"}
	cfg.IMAP.IMAPS, cfg.IMAP.IMAP = "127.0.0.1:10993", ""
	cfg.SMTP.Submission, cfg.SMTP.Submissions = ":587", "127.0.0.1:0"
	s := FromConfig(cfg)
	if s.IMAPS != "127.0.0.1:10993" || s.IMAP != "" || s.Submission != ":587" || s.Submissions != "" || s.Hostname != "gw.example" {
		t.Fatalf("%+v", s)
	}
	mounts := map[string]http.Handler{}
	if err := Mount(mounts, s); err != nil || len(mounts) != len(Paths) {
		t.Fatalf("%v %v", err, mounts)
	}
	cfg.IMAP.HostedDomains = nil
	none := map[string]http.Handler{}
	if err := Mount(none, FromConfig(cfg)); err != nil || len(none) != 0 {
		t.Fatalf("no hosted domain: %v %v", err, none)
	}
	cfg.IMAP.HostedDomains, cfg.IMAP.IMAPS = []string{"council.example"}, ""
	if err := Mount(map[string]http.Handler{}, FromConfig(cfg)); err == nil {
		t.Fatal("hosted domains without an IMAP listener were mounted")
	}
}
