package configs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeEscrowCert writes a self-signed PEM certificate made by edit from a valid RSA escrow template.
func writeEscrowCert(t *testing.T, path string, edit func(*x509.Certificate) any) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "archive"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageKeyEncipherment, BasicConstraintsValid: true}
	var pub any = key.Public()
	if edit != nil {
		if p := edit(tmpl); p != nil {
			pub = p
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSMIMEEscrowAndCBCValidated(t *testing.T) {
	path := exampleTree(t)
	dir := filepath.Dir(path)
	base, _ := os.ReadFile(path)
	writeEscrowCert(t, filepath.Join(dir, "good.pem"), nil)
	writeEscrowCert(t, filepath.Join(dir, "ca.pem"), func(c *x509.Certificate) any { c.IsCA = true; return nil })
	writeEscrowCert(t, filepath.Join(dir, "expired.pem"), func(c *x509.Certificate) any {
		c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
		return nil
	})
	writeEscrowCert(t, filepath.Join(dir, "signonly.pem"), func(c *x509.Certificate) any { c.KeyUsage = x509.KeyUsageDigitalSignature; return nil })
	writeEscrowCert(t, filepath.Join(dir, "p384.pem"), func(c *x509.Certificate) any {
		k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		c.KeyUsage = x509.KeyUsageKeyAgreement
		return k.Public()
	})
	if err := os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	with := func(extra string) string {
		return strings.Replace(string(base), "key_file = \"smime/gateway.key\"\n", "key_file = \"smime/gateway.key\"\n"+extra, 1)
	}
	good := with("cbc_for = [\"legacy.example\", \"one@old.example\"]\n[[smime.escrow]]\nname = \"archive\"\ncert_file = \"good.pem\"\nagencies = [\"Eastshire Police\"]\n")
	if good == string(base) {
		t.Fatal("example has no [smime] table to edit")
	}
	c, err := Parse(path, []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.SMIME.Escrow) != 1 || c.SMIME.Escrow[0].CertFile != filepath.Join(dir, "good.pem") || len(c.SMIME.CBCFor) != 2 {
		t.Fatalf("decoded wrong: %+v", c.SMIME)
	}
	cases := []struct{ extra, setting, words string }{
		{"[[smime.escrow]]\nname = \"a\"\n", "smime.escrow[0].cert_file", "is required"},
		{"[[smime.escrow]]\ncert_file = \"good.pem\"\n", "smime.escrow[0].name", "is required"},
		{"[[smime.escrow]]\nname = \"a\"\ncert_file = \"missing.pem\"\n", "smime.escrow[0].cert_file", "cannot read"},
		{"[[smime.escrow]]\nname = \"a\"\ncert_file = \"junk.pem\"\n", "smime.escrow[0].cert_file", "no PEM CERTIFICATE"},
		{"[[smime.escrow]]\nname = \"a\"\ncert_file = \"ca.pem\"\n", "smime.escrow[0].cert_file", "is a CA certificate"},
		{"[[smime.escrow]]\nname = \"a\"\ncert_file = \"expired.pem\"\n", "smime.escrow[0].cert_file", "expired on"},
		{"[[smime.escrow]]\nname = \"a\"\ncert_file = \"signonly.pem\"\n", "smime.escrow[0].cert_file", "key usage does not allow encryption"},
		{"[[smime.escrow]]\nname = \"a\"\ncert_file = \"p384.pem\"\n", "smime.escrow[0].cert_file", "only P-256"},
		{"[[smime.escrow]]\nname = \"a\"\ncert_file = \"good.pem\"\n[[smime.escrow]]\nname = \"a\"\ncert_file = \"good.pem\"\n", "smime.escrow[1].name", "used by another"},
		{"[[smime.escrow]]\nname = \"a\"\ncert_file = \"good.pem\"\nagencies = [\" \"]\n", "smime.escrow[0].agencies", "empty name"},
		{"cbc_for = [\"a b\"]\n", "smime.cbc_for[0]", "neither a mail domain"},
	}
	for i, tc := range cases {
		_, err := Parse(path, []byte(with(tc.extra)))
		if err == nil {
			t.Fatalf("case %d: bad configuration accepted", i)
		}
		msg := err.Error()
		if !strings.Contains(msg, path) || !strings.Contains(msg, tc.setting) || !strings.Contains(msg, tc.words) {
			t.Errorf("case %d: problem %q should name %s, %q and %q", i, msg, path, tc.setting, tc.words)
		}
	}
}
