package integration

// testssl.sh (Debian's package, /usr/bin/testssl) against the HTTPS listener of the built binary,
// which serves the pickup page: only TLS 1.2 and 1.3 may be offered, and no finding of the protocol,
// cipher, forward secrecy and vulnerability checks may be rated at all (LOW or above; the listener
// offers only ECDHE with AEAD suites, gateway/httpd.AEADSuites). The checks
// of the certificate itself (-S) are left out: `cafgate dev` serves a development certificate without
// CRL or OCSP addresses, which testssl rightly rates HIGH, and production certificates are the
// operator's. About a minute on a loaded 2-core machine.

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPickupTLSWithTestssl(t *testing.T) {
	exe, err := exec.LookPath("testssl")
	if err != nil {
		if exe, err = exec.LookPath("testssl.sh"); err != nil {
			t.Skip("testssl.sh is not installed (apt-get install testssl.sh)")
		}
	}
	g := startGateway(t)
	info := g.Info()
	out := filepath.Join(t.TempDir(), "testssl.json")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "--quiet", "--color", "0", "--warnings", "off", "--add-ca", info.CACert,
		"-p", "-s", "-f", "-U", "--jsonfile", out, info.Listen["https"])
	start := time.Now()
	text, err := cmd.CombinedOutput()
	t.Logf("testssl.sh took %v", time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("testssl.sh: %v\n%s", err, text)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var findings []struct {
		ID       string `json:"id"`
		Severity string `json:"severity"`
		Finding  string `json:"finding"`
	}
	if err := json.Unmarshal(raw, &findings); err != nil {
		t.Fatalf("testssl.sh JSON: %v", err)
	}
	seen := map[string]string{}
	for _, f := range findings {
		seen[f.ID] = f.Finding
		switch f.Severity {
		case "LOW", "MEDIUM", "HIGH", "CRITICAL":
			// Anything testssl.sh rates (its "NOT ok" and weaker warnings, e.g. Lucky13 while TLS 1.2
			// CBC suites were offered) fails: the listener offers only ECDHE with AEAD.
			t.Errorf("testssl.sh: %s %s: %s", f.Severity, f.ID, f.Finding)
		case "WARN":
			t.Logf("testssl.sh: %s %s: %s", f.Severity, f.ID, f.Finding)
		case "FATAL":
			t.Errorf("testssl.sh could not finish: %s: %s", f.ID, f.Finding)
		}
	}
	for _, old := range []string{"SSLv2", "SSLv3", "TLS1", "TLS1_1"} {
		if f, ok := seen[old]; !ok || !strings.Contains(f, "not offered") {
			t.Errorf("%s: %q (want not offered)", old, f)
		}
	}
	for _, want := range []string{"TLS1_2", "TLS1_3"} {
		if f := seen[want]; !strings.HasPrefix(f, "offered") {
			t.Errorf("%s: %q (want offered)", want, f)
		}
	}
	if len(findings) < 30 {
		t.Errorf("testssl.sh reported only %d findings: did it run its checks?\n%s", len(findings), text)
	}
	g.stop()
}
