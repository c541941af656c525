package integration

import (
	"encoding/xml"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestAutoconfigOverHTTPS fetches the Thunderbird autoconfig document from the built gateway with curl
// (verifying the gateway's certificate against the development CA) at both paths clients try, and
// checks that it names the IMAP and submission listeners of dev.json with the right TLS mode; an
// address outside the hosted domains gets 404.
func TestAutoconfigOverHTTPS(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is required (integration/ci.sh installs it)")
	}
	t.Parallel()
	g := startGateway(t)
	info := g.Info()
	port := func(role string) int {
		_, p, err := net.SplitHostPort(info.Listen[role])
		n, _ := strconv.Atoi(p)
		if err != nil || n == 0 {
			t.Fatalf("dev.json listen %s = %q", role, info.Listen[role])
		}
		return n
	}
	base := "https://" + info.Hostname + ":" + strconv.Itoa(port("https"))
	resolve := info.Hostname + ":" + strconv.Itoa(port("https")) + ":127.0.0.1"
	curl := func(path string) (code int, ctype, body string) {
		t.Helper()
		out, err := exec.Command("curl", "-sS", "--max-time", "20", "--cacert", info.CACert, "--resolve", resolve,
			"-w", "\n%{http_code} %{content_type}", base+path).Output()
		if err != nil {
			t.Fatalf("curl %s: %v", path, err)
		}
		s := string(out)
		i := strings.LastIndexByte(s, '\n')
		status, ct, _ := strings.Cut(s[i+1:], " ")
		code, _ = strconv.Atoi(status)
		return code, ct, s[:i]
	}
	type server struct {
		Type     string `xml:"type,attr"`
		Hostname string `xml:"hostname"`
		Port     int    `xml:"port"`
		Socket   string `xml:"socketType"`
		Auth     string `xml:"authentication"`
		Username string `xml:"username"`
	}
	type document struct {
		XMLName  xml.Name `xml:"clientConfig"`
		Provider struct {
			Domains  []string `xml:"domain"`
			Incoming []server `xml:"incomingServer"`
			Outgoing []server `xml:"outgoingServer"`
		} `xml:"emailProvider"`
	}
	user := info.accountWith(t, "active")
	for _, path := range []string{"/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml?emailaddress=" + user.Mail} {
		var doc document
		code, ctype, body := curl(path)
		if code != 200 || !strings.HasPrefix(ctype, "application/xml") {
			t.Fatalf("GET %s: %d %q\n%s", path, code, ctype, body)
		}
		if err := xml.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, body)
		}
		want := []server{
			{"imap", info.Hostname, port("imaps"), "SSL", "password-cleartext", "%EMAILADDRESS%"},
			{"imap", info.Hostname, port("imap"), "STARTTLS", "password-cleartext", "%EMAILADDRESS%"},
			{"smtp", info.Hostname, port("submissions"), "SSL", "password-cleartext", "%EMAILADDRESS%"},
			{"smtp", info.Hostname, port("submission"), "STARTTLS", "password-cleartext", "%EMAILADDRESS%"},
		}
		got := append(doc.Provider.Incoming, doc.Provider.Outgoing...)
		if len(got) != len(want) {
			t.Fatalf("GET %s: servers %+v, want %+v", path, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("GET %s: server %d is %+v, want %+v", path, i, got[i], want[i])
			}
		}
		domain := user.Mail[strings.LastIndexByte(user.Mail, '@')+1:]
		if !strings.Contains(strings.Join(doc.Provider.Domains, " "), domain) {
			t.Errorf("GET %s: domains %v lack %s", path, doc.Provider.Domains, domain)
		}
	}
	if code, _, _ := curl("/mail/config-v1.1.xml?emailaddress=someone%40elsewhere.example"); code != 404 {
		t.Errorf("an address outside the hosted domains: %d, want 404", code)
	}
}
