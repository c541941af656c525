package cms

import (
	"crypto"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"cafgate/envelope/cms/cmstest"
)

// testPKI is a CA with S/MIME leaves of each key type, made once per test binary.
type testPKI struct {
	ca      *x509.Certificate
	roots   *x509.CertPool
	rsa2048 leaf
	rsa4096 func() leaf // made on first use: RSA-4096 takes seconds
	p256    leaf
	other   leaf // a second RSA-2048 practitioner
}

type leaf struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var pkiOnce = sync.OnceValues(func() (*testPKI, error) { return newTestPKI("cms test CA", time.Now()) })

func getPKI(t testing.TB) *testPKI {
	t.Helper()
	p, err := pkiOnce()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestPKI(name string, now time.Time) (*testPKI, error) {
	ca, err := cmstest.NewCA(name, now)
	if err != nil {
		return nil, err
	}
	issue := func(mail string, kt cmstest.KeyType) (leaf, error) {
		l, err := ca.Issue(mail, kt)
		return leaf{l.Cert, l.Key}, err
	}
	p := &testPKI{ca: ca.Cert, roots: ca.Roots}
	if p.rsa2048, err = issue("rsa2048@example.org", cmstest.RSA2048); err != nil {
		return nil, err
	}
	if p.p256, err = issue("p256@example.org", cmstest.P256); err != nil {
		return nil, err
	}
	if p.other, err = issue("other@example.org", cmstest.RSA2048); err != nil {
		return nil, err
	}
	p.rsa4096 = sync.OnceValue(func() leaf {
		l, err := issue("rsa4096@example.org", cmstest.RSA4096)
		if err != nil {
			panic(err)
		}
		return l
	})
	return p, nil
}

// writePEM writes the leaf's certificate and PKCS#8 key into dir as name.pem and name.key.
func (l leaf) writePEM(t testing.TB, dir, name string) (certPath, keyPath string) {
	t.Helper()
	certPath, keyPath, err := cmstest.Leaf{Cert: l.cert, Key: l.key}.WritePEM(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func writeCACert(t testing.TB, dir string, p *testPKI) string {
	t.Helper()
	path := dir + "/ca.pem"
	if err := cmstest.WriteCert(path, p.ca); err != nil {
		t.Fatal(err)
	}
	return path
}
