package configs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func writeTestCert(t *testing.T, path string, isCA bool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		BasicConstraintsValid: true, IsCA: isCA, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTrustConfig(t *testing.T) {
	dir := t.TempDir()
	writeTestCert(t, filepath.Join(dir, "root.pem"), true)
	writeTestCert(t, filepath.Join(dir, "leaf.pem"), false)
	os.WriteFile(filepath.Join(dir, "empty.pem"), []byte("nothing"), 0o644)

	load := func(text string) (*Config, Problems) {
		c := Default()
		if _, err := toml.Decode(text, c); err != nil {
			t.Fatal(err)
		}
		c.resolveTrust(dir)
		return c, c.validateTrust("cafgate.toml")
	}
	c, ps := load(`
[trust]
fetch_timeout = "3s"
[[trust.anchor]]
name = "health"
agencies = ["Riverside Community Health"]
ca_file = "root.pem"
[[trust.anchor]]
name = "regional"
agencies = ["*"]
ca_file = "root.pem"
intermediates_file = "root.pem"
revocation = "soft"
`)
	if len(ps) != 0 {
		t.Fatalf("problems: %v", ps)
	}
	a := c.Trust.Anchors
	if a[0].Revocation != "strict" || a[1].Revocation != "soft" || a[0].CAFile != filepath.Join(dir, "root.pem") ||
		c.Trust.FetchTimeout.D() != 3*time.Second || c.Trust.MaxCRLSize != 16<<20 || c.Trust.RetryAfter.D() != time.Minute {
		t.Errorf("loaded %+v", c.Trust)
	}

	_, ps = load(`
[trust]
retry_after = "0s"
[[trust.anchor]]
name = "x"
ca_file = "leaf.pem"
revocation = "lenient"
[[trust.anchor]]
name = "x"
agencies = [""]
ca_file = "empty.pem"
intermediates_file = "missing.pem"
[[trust.anchor]]
agencies = ["*"]
`)
	want := []string{"trust.retry_after", "trust.anchor[0].agencies", "trust.anchor[0].revocation", "trust.anchor[0].ca_file",
		"trust.anchor[1].name", "trust.anchor[1].agencies", "trust.anchor[1].ca_file", "trust.anchor[1].intermediates_file",
		"trust.anchor[2].name", "trust.anchor[2].ca_file"}
	var got []string
	for _, p := range ps {
		got = append(got, p.Setting)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("problems at\n %v\nwant\n %v\n%v", got, want, ps)
	}
}
