package pemfile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ec)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	write := func(name string, blocks ...*pem.Block) string { return writePEM(t, dir, name, blocks...) }
	for name, path := range map[string]string{
		"pkcs8":        write("a", &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		"sec1":         write("b", &pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
		"pkcs1":        write("c", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}),
		"after a cert": write("d", &pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")}, &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	} {
		if k, err := LoadKey(path); err != nil || k == nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, c := range map[string]struct{ path, want string }{
		"missing":     {filepath.Join(dir, "none"), "cannot read"},
		"no key":      {write("e", &pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")}), "no PEM PRIVATE KEY"},
		"other kind":  {write("f", &pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("x")}), "not a private key format"},
		"bad content": {write("g", &pem.Block{Type: "PRIVATE KEY", Bytes: []byte("x")}), "does not parse"},
	} {
		if _, err := LoadKey(c.path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one saying %q", name, err, c.want)
		}
	}
}

func TestLoadCertificate(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	write := func(name string, blocks ...*pem.Block) string { return writePEM(t, dir, name, blocks...) }
	if c, err := LoadCertificate(write("a", &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}, &pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil || c.SerialNumber.Int64() != 1 {
		t.Errorf("a certificate after a key: %v", err)
	}
	for name, c := range map[string]struct{ path, want string }{
		"missing":     {filepath.Join(dir, "none"), "cannot read"},
		"no cert":     {write("b", &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), "no PEM CERTIFICATE"},
		"bad content": {write("c", &pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")}), "does not parse"},
	} {
		if _, err := LoadCertificate(c.path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one saying %q", name, err, c.want)
		}
	}
}

// writePEM writes blocks to dir/name and returns its path.
func writePEM(t *testing.T, dir, name string, blocks ...*pem.Block) string {
	t.Helper()
	var b []byte
	for _, blk := range blocks {
		b = append(b, pem.EncodeToMemory(blk)...)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
