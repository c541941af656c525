package devca

import (
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cafgate/certs/pemfile"
)

func TestRevokeAndCRL(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ca, caDir := newTestCA(t, now)
	people := t.TempDir()
	badPath, _, err := ca.IssueSMIMEWithCRL(people, "bad@x.test", "Bad", "http://127.0.0.1:1/ca.crl", now)
	if err != nil {
		t.Fatal(err)
	}
	goodPath, _, err := ca.IssueSMIME(people, "good@x.test", "Good", now)
	if err != nil {
		t.Fatal(err)
	}
	bad, good := mustCert(t, badPath), mustCert(t, goodPath)
	if len(bad.CRLDistributionPoints) != 1 || bad.CRLDistributionPoints[0] != "http://127.0.0.1:1/ca.crl" {
		t.Errorf("CRL distribution points %v", bad.CRLDistributionPoints)
	}
	if len(good.CRLDistributionPoints) != 0 {
		t.Error("IssueSMIME now adds a CRL distribution point")
	}

	empty, err := ca.CRL(caDir, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if l := mustCRL(t, ca, empty); len(l.RevokedCertificateEntries) != 0 {
		t.Errorf("fresh CRL lists %d", len(l.RevokedCertificateEntries))
	}
	if err := ca.RevokeFile(caDir, badPath, ReasonKeyCompromise, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(caDir, bad, ReasonSuperseded, now.Add(time.Hour)); err != nil {
		t.Fatal(err) // a second revocation is a no-op
	}
	path, err := ca.WriteCRL(caDir, now.Add(2*time.Minute), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l := mustCRL(t, ca, readFile(t, path))
	if len(l.RevokedCertificateEntries) != 1 {
		t.Fatalf("CRL lists %d, want 1", len(l.RevokedCertificateEntries))
	}
	e := l.RevokedCertificateEntries[0]
	if e.SerialNumber.Cmp(bad.SerialNumber) != 0 || e.ReasonCode != ReasonKeyCompromise || !e.RevocationTime.Equal(now.Add(time.Minute)) {
		t.Errorf("entry %+v", e)
	}
	if !l.NextUpdate.Equal(now.Add(2*time.Minute+24*time.Hour)) || l.Number.Sign() <= 0 || l.Number.Cmp(mustCRL(t, ca, empty).Number) <= 0 {
		t.Errorf("nextUpdate %v number %v", l.NextUpdate, l.Number)
	}

	// openssl agrees: the revoked certificate fails, the other passes.
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	for cert, want := range map[string]string{badPath: "certificate revoked", goodPath: ": OK"} {
		out, _ := exec.Command("openssl", "verify", "-attime", strconv.FormatInt(now.Add(time.Hour).Unix(), 10), "-crl_check", "-CAfile", CertPath(caDir),
			"-CRLfile", filepath.Join(caDir, fileCRLPEM), "-purpose", "smimesign", cert).CombinedOutput()
		if !strings.Contains(string(out), want) {
			t.Errorf("openssl verify %s: %s", filepath.Base(cert), out)
		}
	}
}

func TestRevokeRefusesForeignCertificate(t *testing.T) {
	now := time.Now()
	ca, caDir := newTestCA(t, now)
	other, _ := newTestCA(t, now)
	p, _, err := other.IssueSMIME(t.TempDir(), "x@y.test", "X", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.RevokeFile(caDir, p, ReasonUnspecified, now); err == nil {
		t.Error("revoked a certificate of another CA")
	}
	if _, err := os.Stat(filepath.Join(caDir, fileRevoked)); err == nil {
		t.Error("revoked.json written anyway")
	}
	if _, _, err := ca.IssueSMIMEWithCRL(t.TempDir(), "x@y.test", "X", "ldap://x/crl", now); err == nil {
		t.Error("ldap URL accepted")
	}
}

func TestIssueSMIMEWithCRLReuse(t *testing.T) {
	now := time.Now()
	ca, _ := newTestCA(t, now)
	dir := t.TempDir()
	p, _, err := ca.IssueSMIMEWithCRL(dir, "a@b.test", "A", "http://127.0.0.1:8/a.crl", now)
	if err != nil {
		t.Fatal(err)
	}
	first := readFile(t, p)
	ca.IssueSMIMEWithCRL(dir, "a@b.test", "A", "http://127.0.0.1:8/a.crl", now)
	if string(readFile(t, p)) != string(first) {
		t.Error("same URL: reissued")
	}
	ca.IssueSMIMEWithCRL(dir, "a@b.test", "A", "http://127.0.0.1:9/a.crl", now)
	if string(readFile(t, p)) == string(first) {
		t.Error("new URL: reused")
	}
}

func mustCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := pemfile.LoadCertificate(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustCRL(t *testing.T, ca *CA, der []byte) *x509.RevocationList {
	t.Helper()
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.CheckSignatureFrom(ca.Certificate()); err != nil {
		t.Fatal(err)
	}
	return l
}
