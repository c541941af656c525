package validate

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cafgate/certs/devca"
)

// devFixture is the development CA with two practitioners whose certificates name a CRL served on
// loopback; bad's certificate is revoked.
type devFixture struct {
	ca         *devca.CA
	caDir      string
	srv        *server
	clk        *clock
	good, bad  *x509.Certificate
	goodPath   string
	badPath    string
	crlURLPath string
}

func newDevFixture(t testing.TB) *devFixture {
	t.Helper()
	f := &devFixture{srv: newServer(t), clk: &clock{now: t0}, crlURLPath: "/dev/ca.crl"}
	f.caDir = filepath.Join(t.TempDir(), "ca")
	ca, err := devca.LoadOrCreate(f.caDir, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f.ca = ca
	people := t.TempDir()
	url := f.srv.URL + f.crlURLPath
	if f.goodPath, _, err = ca.IssueSMIMEWithCRL(people, "good@health.test", "Good", url, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if f.badPath, _, err = ca.IssueSMIMEWithCRL(people, "bad@health.test", "Bad", url, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.good, f.bad = loadOne(t, f.goodPath), loadOne(t, f.badPath)
	if err := ca.Revoke(f.caDir, f.bad, devca.ReasonKeyCompromise, t0.Add(-30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.publish(t, t0.Add(-10*time.Minute), 24*time.Hour)
	return f
}

// publish issues a CRL at thisUpdate and serves it.
func (f *devFixture) publish(t testing.TB, thisUpdate time.Time, validity time.Duration) []byte {
	t.Helper()
	der, err := f.ca.CRL(f.caDir, thisUpdate, validity)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.serve(f.crlURLPath, der)
	return der
}

func (f *devFixture) validator(t testing.TB, soft bool, mod func(*Options)) *Validator {
	opts := Options{Now: f.clk.Now, FetchTimeout: 2 * time.Second, Anchors: []Anchor{{Name: "dev", Agencies: []string{AnyAgency},
		Roots: []*x509.Certificate{f.ca.Certificate()}, SoftRevocation: soft}}}
	if mod != nil {
		mod(&opts)
	}
	v, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func loadOne(t testing.TB, path string) *x509.Certificate {
	cs, err := LoadPEMCertificates(path)
	if err != nil {
		t.Fatal(err)
	}
	return cs[0]
}

func TestCRLRevokedGoodUnreachable(t *testing.T) {
	f := newDevFixture(t)
	strict, soft := f.validator(t, false, nil), f.validator(t, true, nil)
	for _, v := range []*Validator{strict, soft} {
		if _, err := validate(v, f.good, "good@health.test", ForEncryption); err != nil {
			t.Errorf("good certificate: %v", err)
		}
		_, err := validate(v, f.bad, "bad@health.test", ForEncryption)
		wantReason(t, err, Revoked) // soft never softens a revocation
	}

	// The CRL server goes away: fresh validators have nothing cached.
	f.srv.handle(f.crlURLPath, func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	strict, soft = f.validator(t, false, nil), f.validator(t, true, nil)
	_, err := validate(strict, f.good, "good@health.test", ForEncryption)
	wantReason(t, err, RevocationUnknown)
	res, err := validate(soft, f.good, "good@health.test", ForEncryption)
	if err != nil || len(res.Warnings) != 1 || res.Warnings[0].Reason != RevocationUnknown {
		t.Fatalf("soft anchor, CRL unreachable: %+v %v", res, err)
	}
	if !strings.Contains(res.Warnings[0].Err.Error(), "503") {
		t.Errorf("warning cause %v", res.Warnings[0].Err)
	}
	// Closed port: a connection error, not an HTTP answer.
	f.srv.Close()
	_, err = validate(f.validator(t, false, nil), f.good, "good@health.test", ForEncryption)
	wantReason(t, err, RevocationUnknown)
}

func TestCRLCachedUntilNextUpdate(t *testing.T) {
	f := newDevFixture(t)
	v := f.validator(t, false, nil)
	for i := 0; i < 5; i++ {
		if _, err := validate(v, f.good, "good@health.test", ForSigning); err != nil {
			t.Fatal(err)
		}
		f.clk.set(t0.Add(time.Duration(i) * time.Hour))
	}
	if n := f.srv.count(f.crlURLPath); n != 1 {
		t.Fatalf("CRL fetched %d times within its validity, want 1", n)
	}
	// A revocation published now is not seen until the cached CRL's nextUpdate ...
	if err := f.ca.Revoke(f.caDir, f.good, devca.ReasonCessation, t0.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.publish(t, t0.Add(5*time.Hour), 24*time.Hour)
	if _, err := validate(v, f.good, "good@health.test", ForSigning); err != nil {
		t.Fatalf("before nextUpdate: %v", err)
	}
	// ... and is seen after it.
	f.clk.set(t0.Add(24 * time.Hour))
	_, err := validate(v, f.good, "good@health.test", ForSigning)
	wantReason(t, err, Revoked)
	if n := f.srv.count(f.crlURLPath); n != 2 {
		t.Errorf("CRL fetched %d times, want 2", n)
	}
}

func TestCRLFailureNotRetriedAtOnce(t *testing.T) {
	f := newDevFixture(t)
	f.srv.handle(f.crlURLPath, func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusInternalServerError) })
	v := f.validator(t, false, func(o *Options) { o.RetryAfter = 10 * time.Minute })
	for i := 0; i < 3; i++ {
		_, err := validate(v, f.good, "good@health.test", ForSigning)
		wantReason(t, err, RevocationUnknown)
	}
	if n := f.srv.count(f.crlURLPath); n != 1 {
		t.Errorf("failing CRL fetched %d times within RetryAfter, want 1", n)
	}
	f.publish(t, t0, 24*time.Hour)
	f.clk.set(t0.Add(11 * time.Minute))
	if _, err := validate(v, f.good, "good@health.test", ForSigning); err != nil {
		t.Errorf("after RetryAfter, with the CRL back: %v", err)
	}
}

func TestCRLRefusedWhenUntrustworthy(t *testing.T) {
	f := newDevFixture(t)
	other := newRoot(t, "cafgate development CA") // same name, another key
	cases := []struct {
		name  string
		serve func()
		mod   func(*Options)
	}{
		{"signed by another key", func() { f.srv.serve(f.crlURLPath, other.crl(t, t0, nil)) }, nil},
		{"out of date", func() { f.publish(t, t0.Add(-48*time.Hour), 24*time.Hour) }, nil},
		{"from the future", func() { f.publish(t, t0.Add(time.Hour), 24*time.Hour) }, nil},
		{"too big", func() { f.publish(t, t0, 24*time.Hour) }, func(o *Options) { o.MaxCRLBytes = 100 }},
		{"not a CRL", func() { f.srv.serve(f.crlURLPath, []byte("<html>captive portal</html>")) }, nil},
		{"slow", func() {
			f.srv.handle(f.crlURLPath, func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(3 * time.Second):
				}
			})
		}, func(o *Options) { o.FetchTimeout = 200 * time.Millisecond }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.serve()
			_, err := validate(f.validator(t, false, c.mod), f.good, "good@health.test", ForSigning)
			wantReason(t, err, RevocationUnknown)
		})
	}
	t.Run("PEM accepted", func(t *testing.T) {
		der := f.publish(t, t0, 24*time.Hour)
		f.srv.serve(f.crlURLPath, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
		if _, err := validate(f.validator(t, false, nil), f.good, "good@health.test", ForSigning); err != nil {
			t.Error(err)
		}
	})
}

func TestNoRevocationSource(t *testing.T) {
	f := newFixture(t)
	c := f.root.leaf(t, "a@b.test", nil) // names neither a CRL nor OCSP
	_, err := validate(f.v, c, "a@b.test", ForSigning)
	wantReason(t, err, RevocationUnknown)
	ldap := f.root.leaf(t, "a@b.test", func(c *x509.Certificate) { c.CRLDistributionPoints = []string{"ldap://dir.example/cn=crl"} })
	_, err = validate(f.v, ldap, "a@b.test", ForSigning)
	wantReason(t, err, RevocationUnknown)
}

func TestRevokedIntermediate(t *testing.T) {
	f := newFixture(t)
	inter := f.root.intermediate(t, "Sub CA", func(c *x509.Certificate) { c.CRLDistributionPoints = []string{f.srv.URL + "/root.crl"} })
	f.srv.serve("/sub.crl", inter.crl(t, t0.Add(-time.Hour), nil))
	leaf := inter.leaf(t, "a@b.test", func(c *x509.Certificate) { c.CRLDistributionPoints = []string{f.srv.URL + "/sub.crl"} })
	if _, err := validate(f.v, leaf, "a@b.test", ForSigning, inter.cert); err != nil {
		t.Fatal(err)
	}
	f.srv.serve("/root.crl", f.root.crl(t, t0.Add(-time.Hour), nil, inter.cert))
	v := newValidator(t, f.clk, Anchor{Name: "r", Agencies: []string{AnyAgency}, Roots: []*x509.Certificate{f.root.cert}})
	_, err := validate(v, leaf, "a@b.test", ForSigning, inter.cert)
	wantReason(t, err, Revoked)
	if !strings.Contains(err.Error(), "CA certificate") {
		t.Errorf("sentence %v", err)
	}
}

func TestConcurrentValidationsFetchOnce(t *testing.T) {
	f := newDevFixture(t)
	v := f.validator(t, false, nil)
	errs := make(chan error, 16)
	for i := 0; i < cap(errs); i++ {
		go func(i int) {
			c, mail := f.good, "good@health.test"
			if i%2 == 1 {
				c, mail = f.bad, "bad@health.test"
			}
			_, err := validate(v, c, mail, ForEncryption)
			if (i%2 == 1) != (ReasonOf(err) == Revoked) || (i%2 == 0 && err != nil) {
				errs <- err
				return
			}
			errs <- nil
		}(i)
	}
	for i := 0; i < cap(errs); i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := f.srv.count(f.crlURLPath); n != 1 {
		t.Errorf("CRL fetched %d times by concurrent validations, want 1", n)
	}
}
