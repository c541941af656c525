package cms

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A P-256 signing key beside an RSA encryption certificate: the SignedData carries both certificates
// and the SMIMEEncryptionKeyPreference attribute names the RSA one; we and openssl read it.
func TestEncryptionKeyPreference(t *testing.T) {
	p := getPKI(t)
	content := []byte("Content-Type: text/plain\r\n\r\nsigned with P-256, encrypt to RSA\r\n")
	s := &Signer{Cert: p.p256.cert, Key: p.p256.key, EncryptCert: p.rsa2048.cert}
	sig, err := s.SignDetached(bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyDetached(sig, content, VerifyOptions{Roots: p.roots})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Signer.Equal(p.p256.cert) || got.EncryptionCert == nil || !got.EncryptionCert.Equal(p.rsa2048.cert) {
		t.Fatalf("signer %v, encryption certificate %v", got.Signer.Subject, got.EncryptionCert)
	}
	var opaque bytes.Buffer
	if err := s.SignOpaque(&opaque, content); err != nil {
		t.Fatal(err)
	}
	if _, o, err := VerifyOpaque(opaque.Bytes(), VerifyOptions{Roots: p.roots}); err != nil || o.EncryptionCert == nil || !o.EncryptionCert.Equal(p.rsa2048.cert) {
		t.Fatalf("opaque: %v %+v", err, o)
	}

	// Without a separate certificate (none, or the signing one again) the attribute is absent.
	for _, enc := range []*Signer{{Cert: p.p256.cert, Key: p.p256.key}, {Cert: p.p256.cert, Key: p.p256.key, EncryptCert: p.p256.cert}} {
		plain, err := enc.SignDetached(bytes.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(plain, oidBytes(oidAttrEncKeyPref)) || bytes.Contains(plain, p.rsa2048.cert.Raw) {
			t.Fatal("the attribute or the RSA certificate is present without a separate encryption certificate")
		}
		if g, err := VerifyDetached(plain, content, VerifyOptions{Roots: p.roots}); err != nil || g.EncryptionCert != nil {
			t.Fatalf("%v %v", err, g)
		}
	}

	if testing.Short() {
		return
	}
	needOpenSSL(t)
	dir := t.TempDir()
	ca := writeCACert(t, dir, p)
	contentPath := filepath.Join(dir, "content")
	if err := os.WriteFile(contentPath, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openssl(t, sig, "cms", "-verify", "-inform", "DER", "-binary", "-content", contentPath, "-CAfile", ca, "-out", os.DevNull); err != nil {
		t.Fatalf("openssl verify: %v", err)
	}
	out, err := openssl(t, sig, "cms", "-cmsout", "-print", "-inform", "DER")
	if err != nil {
		t.Fatal(err)
	}
	printed := string(out)
	at := strings.Index(printed, "id-smime-aa-encrypKeyPref")
	if at < 0 {
		t.Fatalf("openssl does not show the SMIMEEncryptionKeyPreference attribute:\n%s", printed)
	}
	// openssl prints the [0] value as a hex dump; the RSA certificate's serial number is in it.
	// openssl shows the [0] IssuerAndSerialNumber choice; its INTEGER is the RSA certificate's serial.
	section := printed[at:]
	if end := strings.Index(section, "object:"); end > 0 {
		section = section[:end]
	}
	serial := p.rsa2048.cert.SerialNumber.Text(16)
	found := false
	for _, line := range strings.Split(section, "\n") {
		if _, v, ok := strings.Cut(line, "INTEGER"); ok {
			v = strings.TrimLeft(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":")), "0")
			found = found || strings.EqualFold(v, strings.TrimLeft(serial, "0"))
		}
	}
	if !strings.Contains(section, "cont [ 0 ]") || !found {
		t.Fatalf("openssl shows no [0] issuerAndSerialNumber with serial %s:\n%s", serial, section)
	}
}
