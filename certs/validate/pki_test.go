package validate

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// t0 is the tests' clock: every certificate is valid around it.
var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// testCA is an in-memory CA for tests that need more than the development CA gives: intermediates, OCSP
// responders, odd extensions.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var serial atomic.Int64

func nextSerial() *big.Int { return big.NewInt(1000 + serial.Add(1)) }

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// sharedRSAKey is one RSA key for every test that needs RSA: generating them is slow.
func sharedRSAKey(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKey = k
	})
	return rsaKey
}

func newRoot(t testing.TB, name string) *testCA {
	key := ecKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: name},
		NotBefore: t0.Add(-365 * 24 * time.Hour), NotAfter: t0.Add(5 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

// sign issues tmpl (for pub) from ca; mod may change the template first.
func (ca *testCA) sign(t testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey, mod func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	if mod != nil {
		mod(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (ca *testCA) intermediate(t testing.TB, name string, mod func(*x509.Certificate)) *testCA {
	key := ecKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: name},
		NotBefore: t0.Add(-300 * 24 * time.Hour), NotAfter: t0.Add(3 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	return &testCA{cert: ca.sign(t, tmpl, key.Public(), mod), key: key}
}

// leaf issues an ECDSA S/MIME certificate for mail (digitalSignature|keyAgreement, emailProtection).
func (ca *testCA) leaf(t testing.TB, mail string, mod func(*x509.Certificate)) *x509.Certificate {
	return ca.leafFor(t, mail, ecKey(t).Public(), x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement, mod)
}

// rsaLeaf issues an RSA S/MIME certificate for mail (digitalSignature|keyEncipherment).
func (ca *testCA) rsaLeaf(t testing.TB, mail string, mod func(*x509.Certificate)) *x509.Certificate {
	return ca.leafFor(t, mail, sharedRSAKey(t).Public(), x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, mod)
}

func (ca *testCA) leafFor(t testing.TB, mail string, pub crypto.PublicKey, ku x509.KeyUsage, mod func(*x509.Certificate)) *x509.Certificate {
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: mail},
		NotBefore: t0.Add(-30 * 24 * time.Hour), NotAfter: t0.Add(365 * 24 * time.Hour),
		KeyUsage: ku, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses: []string{mail},
	}
	return ca.sign(t, tmpl, pub, mod)
}

// crl makes a CRL of ca listing revoked, valid from thisUpdate for a day.
func (ca *testCA) crl(t testing.TB, thisUpdate time.Time, mod func(*x509.RevocationList), revoked ...*x509.Certificate) []byte {
	t.Helper()
	l := &x509.RevocationList{Number: big.NewInt(thisUpdate.Unix()), ThisUpdate: thisUpdate, NextUpdate: thisUpdate.Add(24 * time.Hour)}
	for _, c := range revoked {
		l.RevokedCertificateEntries = append(l.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: thisUpdate.Add(-time.Hour), ReasonCode: 1})
	}
	if mod != nil {
		mod(l)
	}
	der, err := x509.CreateRevocationList(rand.Reader, l, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// server is a loopback HTTP server whose answers a test can change, counting requests per path.
type server struct {
	*httptest.Server
	mu      sync.Mutex
	answers map[string]func(w http.ResponseWriter, r *http.Request)
	hits    map[string]int
}

func newServer(t testing.TB) *server {
	s := &server{answers: map[string]func(http.ResponseWriter, *http.Request){}, hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		h := s.answers[r.URL.Path]
		s.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) serve(path string, data []byte) {
	s.handle(path, func(w http.ResponseWriter, _ *http.Request) { w.Write(data) })
}

func (s *server) handle(path string, h func(http.ResponseWriter, *http.Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[path] = h
}

func (s *server) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// clock is a settable clock for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func newValidator(t testing.TB, clk *clock, anchors ...Anchor) *Validator {
	t.Helper()
	v, err := New(Options{Anchors: anchors, Now: clk.Now, FetchTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func validate(v *Validator, c *x509.Certificate, mail string, u Usage, inter ...*x509.Certificate) (*Result, error) {
	return v.Validate(context.Background(), Request{Cert: c, Mail: mail, Agency: "Riverside Community Health", Usage: u, Intermediates: inter})
}

func wantReason(t *testing.T, err error, r Reason) {
	t.Helper()
	if got := ReasonOf(err); got != r {
		t.Fatalf("reason %q (%v), want %q", got, err, r)
	}
	var e *Error
	if r != "" && (!asError(err, &e) || e.Sentence == "") {
		t.Fatalf("no sentence: %v", err)
	}
}

func asError(err error, e **Error) bool {
	x, ok := err.(*Error)
	*e = x
	return ok
}

var _ = asn1.ObjectIdentifier{}
