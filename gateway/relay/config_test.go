package relay

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cafgate/configs"
)

func TestFromConfig(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "smart.test")
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := configs.Default()
	cfg.Hostname = "gw.example"
	cfg.Relay.DelayWarning = 0
	cfg.Relay.Routes = []configs.RelayRoute{{Domains: []string{"*"}, SmartHost: "smart.test:465", Security: "tls", TLS: "verify",
		CAFile: caFile, Username: "gw", PasswordFile: pw, MaxConnections: 7, Chunking: "off"}}
	opt, err := FromConfig(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	rt := opt.Routes[0]
	if opt.Hostname != "gw.example" || opt.Lifetime != 120*time.Hour || opt.DelayWarning >= 0 || rt.Password != "s3cret" ||
		!rt.ImplicitTLS || rt.RootCAs == nil || rt.MaxConns != 7 || rt.TLS != Verify || !rt.NoChunking {
		t.Fatalf("options = %+v, route = %+v", opt, rt)
	}
	if _, err := New(nil, opt); err != nil {
		t.Fatalf("New refused the configured options: %v", err)
	}
	if err := os.Chmod(pw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FromConfig(cfg, nil); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("a readable password file = %v", err)
	}
	cfg.Relay.Routes[0].PasswordFile, cfg.Relay.Routes[0].CAFile = "", pw
	if _, err := FromConfig(cfg, nil); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Fatalf("a CA file without certificates = %v", err)
	}
}
