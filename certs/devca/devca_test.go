package devca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newTestCA(t *testing.T, now time.Time) (*CA, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := LoadOrCreate(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	return ca, dir
}

func TestLoadOrCreateCreatesThenLoads(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ca, dir := newTestCA(t, now)
	c := ca.Certificate()
	if c.Subject.CommonName != CommonName || !c.IsCA || !c.MaxPathLenZero {
		t.Fatalf("CA certificate: subject %q IsCA %v MaxPathLenZero %v", c.Subject.CommonName, c.IsCA, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("key usage %v", c.KeyUsage)
	}
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("CA key is %T, want ECDSA", c.PublicKey)
	}
	if got := c.NotAfter.Sub(now); got < 9*365*24*time.Hour || got > 11*365*24*time.Hour {
		t.Errorf("CA validity %v, want about 10 years", got)
	}
	checkMode(t, filepath.Join(dir, "ca.key"), 0o600)
	if CertPath(dir) != filepath.Join(dir, "ca.pem") {
		t.Errorf("CertPath %q", CertPath(dir))
	}

	again, err := LoadOrCreate(dir, now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Certificate().Equal(c) {
		t.Fatal("second LoadOrCreate made a new CA instead of loading the first")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

func TestLoadOrCreateRefusesBrokenCA(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	_, dir := newTestCA(t, now)
	if _, err := LoadOrCreate(dir, now.Add(11*365*24*time.Hour)); err == nil || !strings.Contains(err.Error(), "remove the directory") {
		t.Errorf("expired CA: err = %v", err)
	}
	// A key that belongs to another CA.
	_, other := newTestCA(t, now)
	key, _ := os.ReadFile(filepath.Join(other, "ca.key"))
	if err := os.WriteFile(filepath.Join(dir, "ca.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir, now); err == nil || !strings.Contains(err.Error(), "does not hold the key") {
		t.Errorf("mismatched key: err = %v", err)
	}
	os.Remove(filepath.Join(dir, "ca.key"))
	if _, err := LoadOrCreate(dir, now); err == nil {
		t.Error("certificate without key was accepted")
	}
}

func TestIssueTLS(t *testing.T) {
	now := time.Now()
	ca, _ := newTestCA(t, now)
	dir := filepath.Join(t.TempDir(), "tls")
	certPath, keyPath, err := ca.IssueTLS(dir, "gateway", []string{"gw.cafgate.test", "192.0.2.7"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if certPath != filepath.Join(dir, "gateway.pem") || keyPath != filepath.Join(dir, "gateway.key") {
		t.Fatalf("paths %s %s", certPath, keyPath)
	}
	checkMode(t, keyPath, 0o600)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	leaf := pair.Leaf
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("TLS key is %T, want ECDSA", leaf.PublicKey)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d > 825*24*time.Hour {
		t.Errorf("validity %v exceeds 825 days", d)
	}
	for _, host := range []string{"gw.cafgate.test", "localhost", "192.0.2.7", "127.0.0.1", "::1"} {
		opts := x509.VerifyOptions{Roots: ca.CertPool(), DNSName: host, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := leaf.Verify(opts); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.CertPool(), CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err == nil {
		t.Error("TLS certificate verified for email protection")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.CertPool(), DNSName: "other.test", CurrentTime: now}); err == nil {
		t.Error("TLS certificate verified for a host it does not name")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: x509.NewCertPool(), DNSName: "localhost", CurrentTime: now}); err == nil {
		t.Error("TLS certificate verified without the CA")
	}
	openssl(t, ca, certPath, "sslserver")
}

func TestIssueTLSReusesOnlyWhenStillRight(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ca, caDir := newTestCA(t, now)
	dir := t.TempDir()
	hosts := []string{"gw.cafgate.test"}
	certPath, _, err := ca.IssueTLS(dir, "gw", hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	first := readFile(t, certPath)

	ca.IssueTLS(dir, "gw", []string{"GW.cafgate.test", "localhost"}, now.Add(time.Hour))
	if !bytes.Equal(readFile(t, certPath), first) {
		t.Error("same hosts: certificate was reissued")
	}
	ca.IssueTLS(dir, "gw", []string{"other.cafgate.test"}, now)
	second := readFile(t, certPath)
	if bytes.Equal(second, first) {
		t.Error("different hosts: certificate was reused")
	}
	ca.IssueTLS(dir, "gw", []string{"other.cafgate.test"}, now.Add(800*24*time.Hour))
	if bytes.Equal(readFile(t, certPath), second) {
		t.Error("certificate near expiry was reused")
	}
	// A new CA (its directory removed) must not reuse the old CA's certificates.
	os.RemoveAll(caDir)
	ca2, err := LoadOrCreate(caDir, now)
	if err != nil {
		t.Fatal(err)
	}
	third := readFile(t, certPath)
	ca2.IssueTLS(dir, "gw", []string{"other.cafgate.test"}, now.Add(800*24*time.Hour))
	if bytes.Equal(readFile(t, certPath), third) {
		t.Error("certificate of a former CA was reused")
	}
}

func TestIssueSMIME(t *testing.T) {
	now := time.Now()
	ca, _ := newTestCA(t, now)
	dir := filepath.Join(t.TempDir(), "people")
	certPath, keyPath, err := ca.IssueSMIME(dir, "Ada.Example@Health.cafgate.test", "Ada Example", now)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(certPath) != "ada.example@health.cafgate.test.pem" || filepath.Base(keyPath) != "ada.example@health.cafgate.test.key" {
		t.Fatalf("paths %s %s", certPath, keyPath)
	}
	checkMode(t, keyPath, 0o600)
	if !bytes.Contains(readFile(t, keyPath), []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Error("key is not PKCS#8 PEM")
	}
	cert, key, err := readKeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok || rk.N.BitLen() != 2048 {
		t.Fatalf("key %T, want RSA-2048", key)
	}
	if len(cert.EmailAddresses) != 1 || cert.EmailAddresses[0] != "ada.example@health.cafgate.test" {
		t.Errorf("email SANs %v", cert.EmailAddresses)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("key usage %v", cert.KeyUsage)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d < 700*24*time.Hour || d > 2*366*24*time.Hour {
		t.Errorf("validity %v, want two years", d)
	}
	// PKCS#9 emailAddress in the subject, encoded as an IA5String (tag 22).
	ia5 := append([]byte{22, byte(len(cert.EmailAddresses[0]))}, cert.EmailAddresses[0]...)
	if !bytes.Contains(cert.RawSubject, append(oidEmailAddressDER(), ia5...)) {
		t.Errorf("subject %s lacks an IA5String emailAddress", cert.Subject)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.CertPool(), CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
		t.Errorf("verify for email protection: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.CertPool(), CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("S/MIME certificate verified for server auth")
	}
	openssl(t, ca, certPath, "smimeencrypt")
	openssl(t, ca, certPath, "smimesign")

	first := readFile(t, certPath)
	ca.IssueSMIME(dir, "ada.example@health.cafgate.test", "Ada Example", now)
	if !bytes.Equal(readFile(t, certPath), first) {
		t.Error("same mail and name: certificate was reissued")
	}
	ca.IssueSMIME(dir, "ada.example@health.cafgate.test", "Ada B. Example", now)
	if bytes.Equal(readFile(t, certPath), first) {
		t.Error("new name: certificate was reused")
	}
}

func TestIssueRefusesBadNames(t *testing.T) {
	now := time.Now()
	ca, _ := newTestCA(t, now)
	dir := t.TempDir()
	for _, name := range []string{"", "..", "../x", "a/b", ".hidden"} {
		if _, _, err := ca.IssueTLS(dir, name, nil, now); err == nil {
			t.Errorf("IssueTLS name %q accepted", name)
		}
	}
	if _, _, err := ca.IssueTLS(dir, "gw", []string{"bad host"}, now); err == nil {
		t.Error("host with a space accepted")
	}
	for _, mail := range []string{"", "nobody", "@x.test", "a@", "../a@x.test", "a@b@c", "a/b@x.test", "a b@x.test"} {
		if _, _, err := ca.IssueSMIME(dir, mail, "Name", now); err == nil {
			t.Errorf("IssueSMIME mail %q accepted", mail)
		}
	}
	if _, _, err := ca.IssueSMIME(dir, "a@x.test", " ", now); err == nil {
		t.Error("empty name accepted")
	}
}

// openssl checks a certificate against the CA with `openssl verify -purpose`, an implementation
// independent of Go's.
func openssl(t *testing.T, ca *CA, certPath, purpose string) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caPath, pemCert(ca.Certificate()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "verify", "-CAfile", caPath, "-purpose", purpose, certPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": OK") {
		t.Errorf("openssl verify -purpose %s: %v\n%s", purpose, err, out)
	}
	// The wrong purpose must fail, or the check above proves nothing.
	wrong := map[string]string{"sslserver": "smimeencrypt", "smimeencrypt": "sslserver", "smimesign": "sslserver"}[purpose]
	if out, err := exec.Command(bin, "verify", "-CAfile", caPath, "-purpose", wrong, certPath).CombinedOutput(); err == nil {
		t.Errorf("openssl verify -purpose %s passed for a certificate meant for %s\n%s", wrong, purpose, out)
	}
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func oidEmailAddressDER() []byte {
	b, _ := asn1.Marshal(oidEmailAddress)
	return b
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
