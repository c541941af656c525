package configs

import (
	"crypto"
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
	"sync"
	"testing"
	"time"
)

var signTestKeys = sync.OnceValues(func() (map[string]crypto.Signer, error) {
	out := map[string]crypto.Signer{}
	for name, gen := range map[string]func() (crypto.Signer, error){
		"rsa":   func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
		"rsa1":  func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 1024) },
		"p256":  func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
		"p384":  func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) },
		"p521":  func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P521(), rand.Reader) },
		"p256b": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
	} {
		k, err := gen()
		if err != nil {
			return nil, err
		}
		out[name] = k
	}
	return out, nil
})

// writeSMIMEPair writes dir/name.pem (a self-signed S/MIME certificate for mail with key, changed by
// edit) and dir/name.key (key, PKCS#8, mode 0600).
func writeSMIMEPair(t *testing.T, dir, name string, key crypto.Signer, mail string, edit func(*x509.Certificate)) {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "gateway"}, EmailAddresses: []string{mail},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSMIMESigningIdentityValidated(t *testing.T) {
	keys, err := signTestKeys()
	if err != nil {
		t.Fatal(err)
	}
	path := exampleTree(t)
	dir := filepath.Dir(path)
	sm := filepath.Join(dir, "smime")
	base, _ := os.ReadFile(path)
	const mail = "gateway@cafgate.example"
	// The example's smime/gateway.pem becomes a real RSA certificate for mail.
	writeSMIMEPair(t, sm, "gateway", keys["rsa"], mail, func(c *x509.Certificate) {
		c.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	})
	writeSMIMEPair(t, sm, "sign", keys["p256"], "Gateway@CAFGATE.example", nil)
	writeSMIMEPair(t, sm, "p384", keys["p384"], mail, func(c *x509.Certificate) { c.ExtKeyUsage = nil })
	writeSMIMEPair(t, sm, "rsasign", keys["rsa"], mail, func(c *x509.Certificate) { c.KeyUsage = 0 })
	writeSMIMEPair(t, sm, "other", keys["p256"], "someone@cafgate.example", nil)
	writeSMIMEPair(t, sm, "encrypt-only", keys["p256"], mail, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyAgreement })
	writeSMIMEPair(t, sm, "tls", keys["p256"], mail, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })
	writeSMIMEPair(t, sm, "p521", keys["p521"], mail, nil)
	writeSMIMEPair(t, sm, "rsa1024", keys["rsa1"], mail, nil)
	writeSMIMEPair(t, sm, "ca", keys["p256"], mail, func(c *x509.Certificate) { c.IsCA = true })
	writeSMIMEPair(t, sm, "expired", keys["p256"], mail, func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	})
	writeSMIMEPair(t, sm, "mismatch", keys["p256b"], mail, nil)
	if err := os.WriteFile(filepath.Join(sm, "mismatch.key"), mustRead(t, filepath.Join(sm, "sign.key")), 0o600); err != nil {
		t.Fatal(err)
	}
	writeSMIMEPair(t, sm, "open", keys["p256"], mail, nil)
	if err := os.Chmod(filepath.Join(sm, "open.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sm, "junk.pem"), []byte("not pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	with := func(extra string) string {
		return strings.Replace(string(base), "key_file = \"smime/gateway.key\"\n", "key_file = \"smime/gateway.key\"\n"+extra, 1)
	}
	pair := func(name string) string {
		return "sign_cert_file = \"smime/" + name + ".pem\"\nsign_key_file = \"smime/" + name + ".key\"\n"
	}
	if with(pair("sign")) == string(base) {
		t.Fatal("example has no [smime] table to edit")
	}
	for _, good := range []string{"sign", "p384", "rsasign"} {
		c, err := Parse(path, []byte(with(pair(good))))
		if err != nil {
			t.Fatalf("%s: %v", good, err)
		}
		if c.SMIME.SignCertFile != filepath.Join(sm, good+".pem") || c.SMIME.SignKeyFile != filepath.Join(sm, good+".key") {
			t.Fatalf("%s: files not resolved: %+v", good, c.SMIME)
		}
	}
	if c, err := Parse(path, base); err != nil || c.SMIME.SignCertFile != "" {
		t.Fatalf("without a signing identity: %v %+v", err, c)
	}
	cases := []struct{ config, setting, words string }{
		{with("sign_cert_file = \"smime/sign.pem\"\n"), "smime", "must both be set"},
		{with("sign_key_file = \"smime/sign.key\"\n"), "smime", "must both be set"},
		{strings.Replace(strings.Replace(with(pair("sign")), "cert_file = \"smime/gateway.pem\"\n", "", 1), "key_file = \"smime/gateway.key\"\n", "", 1),
			"smime.sign_cert_file", "needs smime.cert_file"},
		{with(pair("missing")), "smime.sign_cert_file", "cannot read"},
		{with("sign_cert_file = \"smime/junk.pem\"\nsign_key_file = \"smime/sign.key\"\n"), "smime.sign_cert_file", "no PEM CERTIFICATE"},
		{with(pair("other")), "smime.sign_cert_file", "is for someone@cafgate.example, not for smime.cert_file's gateway@cafgate.example"},
		{with(pair("encrypt-only")), "smime.sign_cert_file", "does not allow digitalSignature"},
		{with(pair("tls")), "smime.sign_cert_file", "lacks emailProtection"},
		{with(pair("p521")), "smime.sign_cert_file", "P-256 or P-384 is required"},
		{with(pair("rsa1024")), "smime.sign_cert_file", "at least 2048"},
		{with(pair("ca")), "smime.sign_cert_file", "is a CA certificate"},
		{with(pair("expired")), "smime.sign_cert_file", "expired on"},
		{with(pair("mismatch")), "smime.sign_key_file", "does not hold the key of"},
		{with(pair("open")), "smime.sign_key_file", "readable by group or others"},
	}
	for i, tc := range cases {
		_, err := Parse(path, []byte(tc.config))
		if err == nil {
			t.Fatalf("case %d (%s): bad configuration accepted", i, tc.words)
		}
		msg := err.Error()
		if !strings.Contains(msg, path) || !strings.Contains(msg, tc.setting) || !strings.Contains(msg, tc.words) {
			t.Errorf("case %d: problem %q should name %s, %q and %q", i, msg, path, tc.setting, tc.words)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
