package validate

import (
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAgreesWithOpenSSL validates the same certificates, against the same CA and the same CRL, with the
// validator and with `openssl verify -crl_check`, and requires the same verdicts.
func TestAgreesWithOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	f := newDevFixture(t)
	dir := t.TempDir()
	people := filepath.Join(dir, "people")
	oldPath, _, err := f.ca.IssueSMIMEWithCRL(people, "old@health.test", "Old", f.srv.URL+f.crlURLPath, t0.Add(-3*365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tlsPath, _, err := f.ca.IssueTLS(people, "server", []string{"gw.test"}, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	stranger := newRoot(t, "cafgate development CA")
	strangerPath := filepath.Join(dir, "stranger.pem")
	writePEM(t, strangerPath, stranger.leaf(t, "good@health.test", nil).Raw)

	der, err := f.ca.CRL(f.caDir, t0.Add(-10*time.Minute), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.serve(f.crlURLPath, der)
	crlPath := filepath.Join(dir, "ca.crl.pem")
	if err := os.WriteFile(crlPath, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	v := f.validator(t, false, nil)
	for _, c := range []struct {
		name, path, mail string
		want             Reason
	}{
		{"good", f.goodPath, "good@health.test", ""},
		{"revoked", f.badPath, "bad@health.test", Revoked},
		{"expired", oldPath, "old@health.test", Expired},
		{"TLS server certificate", tlsPath, "", WrongUsage},
		{"another CA", strangerPath, "good@health.test", Untrusted},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := validate(v, loadOne(t, c.path), c.mail, ForEncryption)
			wantReason(t, err, c.want)
			out, oerr := exec.Command("openssl", "verify", "-attime", strconv.FormatInt(t0.Unix(), 10), "-crl_check",
				"-CAfile", devcaCertPath(f), "-CRLfile", crlPath, "-purpose", "smimeencrypt", c.path).CombinedOutput()
			opensslOK := oerr == nil && strings.Contains(string(out), ": OK")
			if opensslOK != (err == nil) {
				t.Errorf("validator says %v; openssl says:\n%s", err, out)
			}
		})
	}
}

func devcaCertPath(f *devFixture) string { return filepath.Join(f.caDir, "ca.pem") }

func writePEM(t *testing.T, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}
