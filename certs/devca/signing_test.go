package devca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"cafgate/certs/pemfile"
)

func TestIssueSMIMESigning(t *testing.T) {
	now := time.Now()
	ca, caDir := newTestCA(t, now)
	crl, err := CRLFileURL(caDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "smime")
	rsaCert, rsaKey, err := ca.IssueSMIMEWithCRL(dir, "gateway@cafgate.test", "cafgate gateway", crl, now)
	if err != nil {
		t.Fatal(err)
	}
	rsaBefore := readFile(t, rsaCert)
	certPath, keyPath, err := ca.IssueSMIMESigning(dir, "gateway-sign@cafgate.test", "Gateway@cafgate.test", "cafgate gateway", crl, now)
	if err != nil {
		t.Fatal(err)
	}
	if certPath != filepath.Join(dir, "gateway-sign@cafgate.test.pem") || keyPath != filepath.Join(dir, "gateway-sign@cafgate.test.key") {
		t.Fatalf("paths %s %s", certPath, keyPath)
	}
	if !bytes.Equal(readFile(t, rsaCert), rsaBefore) {
		t.Fatal("the signing certificate replaced the RSA one")
	}
	checkMode(t, keyPath, 0o600)
	cert, key, err := readKeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if ek, ok := key.(*ecdsa.PrivateKey); !ok || ek.Curve != elliptic.P256() {
		t.Fatalf("key %T, want ECDSA P-256", key)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage %v, want digitalSignature only", cert.KeyUsage)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}) {
		t.Errorf("EKU %v", cert.ExtKeyUsage)
	}
	if !slices.Equal(cert.EmailAddresses, []string{"gateway@cafgate.test"}) || cert.Subject.CommonName != "cafgate gateway" {
		t.Errorf("mail %v, name %q", cert.EmailAddresses, cert.Subject.CommonName)
	}
	rsa, err := pemfile.LoadCertificate(rsaCert)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cert.CRLDistributionPoints, []string{crl}) || !slices.Equal(cert.CRLDistributionPoints, rsa.CRLDistributionPoints) {
		t.Errorf("CRL distribution points %v, the RSA certificate's %v", cert.CRLDistributionPoints, rsa.CRLDistributionPoints)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d < 700*24*time.Hour || d > 2*366*24*time.Hour {
		t.Errorf("validity %v, want two years", d)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.CertPool(), CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
		t.Errorf("verify for email protection: %v", err)
	}
	openssl(t, ca, certPath, "smimesign")

	// Reused while right; replaced for another CRL URL, another name, or an RSA pair under its name.
	first := readFile(t, certPath)
	if _, _, err := ca.IssueSMIMESigning(dir, "gateway-sign@cafgate.test", "gateway@cafgate.test", "cafgate gateway", crl, now); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, certPath), first) {
		t.Error("same mail, name and CRL: the signing certificate was reissued")
	}
	if _, _, err := ca.IssueSMIMESigning(dir, "gateway-sign@cafgate.test", "gateway@cafgate.test", "cafgate gateway", "http://127.0.0.1:9/ca.crl", now); err != nil {
		t.Fatal(err)
	}
	second := readFile(t, certPath)
	if bytes.Equal(second, first) {
		t.Error("new CRL URL: the signing certificate was reused")
	}
	for _, p := range [][2]string{{rsaCert, certPath}, {rsaKey, keyPath}} {
		if err := os.WriteFile(p[1], readFile(t, p[0]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := ca.IssueSMIMESigning(dir, "gateway-sign@cafgate.test", "gateway@cafgate.test", "cafgate gateway", crl, now); err != nil {
		t.Fatal(err)
	}
	if c, _ := pemfile.LoadCertificate(certPath); c == nil || c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Error("an RSA pair under the signing name was kept")
	}
	// Reissued a month before it ends.
	if _, _, err := ca.IssueSMIMESigning(dir, "gateway-sign@cafgate.test", "gateway@cafgate.test", "cafgate gateway", crl, now); err != nil {
		t.Fatal(err)
	}
	kept := readFile(t, certPath)
	if _, _, err := ca.IssueSMIMESigning(dir, "gateway-sign@cafgate.test", "gateway@cafgate.test", "cafgate gateway", crl, cert.NotAfter.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(readFile(t, certPath), kept) {
		t.Error("a certificate ending within 30 days was reused")
	}

	for _, bad := range []struct{ file, mail, name, crl string }{
		{"../x", "a@b.test", "A", crl}, {".hidden", "a@b.test", "A", crl}, {"x", "not-mail", "A", crl},
		{"x", "a@b.test", " ", crl}, {"x", "a@b.test", "A", "ldap://x/crl"},
	} {
		if _, _, err := ca.IssueSMIMESigning(dir, bad.file, bad.mail, bad.name, bad.crl, now); err == nil {
			t.Errorf("IssueSMIMESigning(%q, %q, %q, %q) accepted", bad.file, bad.mail, bad.name, bad.crl)
		}
	}
}
