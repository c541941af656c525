package validate

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"testing"
	"time"
)

// fixture is a root with an empty CRL served on loopback, and a validator trusting it for one agency.
type fixture struct {
	root *testCA
	srv  *server
	clk  *clock
	v    *Validator
	dp   func(*x509.Certificate) // puts the root's CRL URL in a certificate
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{root: newRoot(t, "Riverside Root"), srv: newServer(t), clk: &clock{now: t0}}
	f.srv.serve("/root.crl", f.root.crl(t, t0.Add(-time.Hour), nil))
	f.dp = func(c *x509.Certificate) { c.CRLDistributionPoints = []string{f.srv.URL + "/root.crl"} }
	f.v = newValidator(t, f.clk, Anchor{Name: "riverside", Agencies: []string{"riverside community health"}, Roots: []*x509.Certificate{f.root.cert}})
	return f
}

func (f *fixture) with(mods ...func(*x509.Certificate)) func(*x509.Certificate) {
	return func(c *x509.Certificate) {
		f.dp(c)
		for _, m := range mods {
			m(c)
		}
	}
}

func TestValidCertificate(t *testing.T) {
	f := newFixture(t)
	c := f.root.leaf(t, "sam@health.test", f.dp)
	for _, u := range []Usage{ForSigning, ForEncryption} {
		res, err := validate(f.v, c, "Sam@Health.test", u)
		if err != nil {
			t.Fatalf("usage %d: %v", u, err)
		}
		if res.Anchor != "riverside" || len(res.Chain) != 2 || len(res.Warnings) != 0 {
			t.Errorf("result %+v", res)
		}
	}
	r := f.root.rsaLeaf(t, "rsa@health.test", f.dp)
	if _, err := validate(f.v, r, "rsa@health.test", ForEncryption); err != nil {
		t.Errorf("RSA keyEncipherment for encryption: %v", err)
	}
}

func TestDates(t *testing.T) {
	f := newFixture(t)
	c := f.root.leaf(t, "a@b.test", f.dp)
	f.clk.set(c.NotAfter.Add(time.Second))
	_, err := validate(f.v, c, "a@b.test", ForSigning)
	wantReason(t, err, Expired)
	if !strings.Contains(err.Error(), "expired on") {
		t.Errorf("sentence: %v", err)
	}
	f.clk.set(c.NotBefore.Add(-time.Second))
	_, err = validate(f.v, c, "a@b.test", ForSigning)
	wantReason(t, err, Expired)
	if !strings.Contains(err.Error(), "not valid until") {
		t.Errorf("sentence: %v", err)
	}
	// An intermediate that has expired while the leaf has not.
	f.clk.set(t0)
	inter := f.root.intermediate(t, "Old Sub CA", func(c *x509.Certificate) { c.NotAfter = t0.Add(-time.Hour) })
	leaf := inter.leaf(t, "a@b.test", func(c *x509.Certificate) { c.NotBefore = t0.Add(-2 * time.Hour) })
	_, err = validate(f.v, leaf, "a@b.test", ForSigning, inter.cert)
	wantReason(t, err, Expired)
}

func TestUsage(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name string
		cert *x509.Certificate
		u    Usage
		ok   bool
	}{
		{"server auth only", f.root.leaf(t, "a@b.test", f.with(func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })), ForSigning, false},
		{"any EKU", f.root.leaf(t, "a@b.test", f.with(func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageAny} })), ForSigning, true},
		{"no EKU", f.root.leaf(t, "a@b.test", f.with(func(c *x509.Certificate) { c.ExtKeyUsage = nil })), ForSigning, true},
		{"encryption-only key signing", f.root.rsaLeaf(t, "a@b.test", f.with(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyEncipherment })), ForSigning, false},
		{"nonRepudiation signing", f.root.leaf(t, "a@b.test", f.with(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageContentCommitment })), ForSigning, true},
		{"signing-only RSA encrypting", f.root.rsaLeaf(t, "a@b.test", f.with(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageDigitalSignature })), ForEncryption, false},
		{"EC keyEncipherment encrypting", f.root.leaf(t, "a@b.test", f.with(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyEncipherment })), ForEncryption, false},
		{"RSA keyAgreement encrypting", f.root.rsaLeaf(t, "a@b.test", f.with(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyAgreement })), ForEncryption, false},
		{"no usage given", f.root.leaf(t, "a@b.test", f.dp), 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := validate(f.v, c.cert, "a@b.test", c.u)
			if c.ok {
				wantReason(t, err, "")
			} else {
				wantReason(t, err, WrongUsage)
			}
		})
	}
	// An intermediate limited to server auth cannot vouch for e-mail protection.
	inter := f.root.intermediate(t, "TLS Sub CA", func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })
	_, err := validate(f.v, inter.leaf(t, "a@b.test", f.dp), "a@b.test", ForSigning, inter.cert)
	wantReason(t, err, WrongUsage)
}

func TestTrust(t *testing.T) {
	f := newFixture(t)
	other := newRoot(t, "Stranger Root")
	_, err := validate(f.v, other.leaf(t, "a@b.test", nil), "a@b.test", ForSigning)
	wantReason(t, err, Untrusted)

	c := f.root.leaf(t, "a@b.test", f.dp)
	_, err = f.v.Validate(t.Context(), Request{Cert: c, Mail: "a@b.test", Agency: "Eastshire Police", Usage: ForSigning})
	wantReason(t, err, Untrusted)
	_, err = f.v.Validate(t.Context(), Request{Cert: c, Mail: "a@b.test", Usage: ForSigning})
	wantReason(t, err, Untrusted)
	_, err = f.v.Validate(t.Context(), Request{Mail: "a@b.test", Usage: ForSigning})
	wantReason(t, err, Untrusted)

	// An intermediate: from the message, or from the anchor's configuration.
	inter := f.root.intermediate(t, "Sub CA", nil)
	f.srv.serve("/sub.crl", inter.crl(t, t0.Add(-time.Hour), nil))
	f.srv.serve("/root.crl", f.root.crl(t, t0.Add(-time.Hour), nil))
	leaf := inter.leaf(t, "a@b.test", func(c *x509.Certificate) { c.CRLDistributionPoints = []string{f.srv.URL + "/sub.crl"} })
	interWithDP := f.root.sign(t, &x509.Certificate{SerialNumber: inter.cert.SerialNumber, Subject: inter.cert.Subject,
		NotBefore: inter.cert.NotBefore, NotAfter: inter.cert.NotAfter, KeyUsage: inter.cert.KeyUsage,
		BasicConstraintsValid: true, IsCA: true, CRLDistributionPoints: []string{f.srv.URL + "/root.crl"}}, inter.key.Public(), nil)
	_, err = validate(f.v, leaf, "a@b.test", ForSigning)
	wantReason(t, err, Untrusted)
	res, err := validate(f.v, leaf, "a@b.test", ForSigning, interWithDP)
	if err != nil || len(res.Chain) != 3 {
		t.Fatalf("with the intermediate: %v %v", res, err)
	}
	any := newValidator(t, f.clk, Anchor{Name: "regional", Agencies: []string{AnyAgency}, Roots: []*x509.Certificate{f.root.cert},
		Intermediates: []*x509.Certificate{interWithDP}})
	if _, err := any.Validate(t.Context(), Request{Cert: leaf, Mail: "a@b.test", Agency: "Eastshire Police", Usage: ForSigning}); err != nil {
		t.Errorf("anchor for any agency with a configured intermediate: %v", err)
	}
	if _, err := New(Options{Anchors: []Anchor{{Name: "empty"}}}); err == nil {
		t.Error("anchor without roots accepted")
	}
}

func TestMail(t *testing.T) {
	f := newFixture(t)
	_, err := validate(f.v, f.root.leaf(t, "a@b.test", f.dp), "c@b.test", ForSigning)
	wantReason(t, err, MailMismatch)
	_, err = validate(f.v, f.root.leaf(t, "a@b.test", f.dp), "", ForSigning)
	wantReason(t, err, MailMismatch)

	subjectOnly := func(mail string) func(*x509.Certificate) {
		return f.with(func(c *x509.Certificate) {
			c.EmailAddresses = nil
			c.Subject = pkix.Name{CommonName: "A", ExtraNames: []pkix.AttributeTypeAndValue{
				{Type: oidEmailAddress, Value: asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte(mail)}}}}
		})
	}
	c := f.root.leaf(t, "ignored@b.test", subjectOnly("a@b.test"))
	if _, err := validate(f.v, c, "A@B.test", ForSigning); err != nil {
		t.Errorf("subject emailAddress only: %v", err)
	}
	// With a SAN, the subject emailAddress does not count.
	both := f.root.leaf(t, "a@b.test", f.with(func(c *x509.Certificate) {
		c.Subject.ExtraNames = []pkix.AttributeTypeAndValue{{Type: oidEmailAddress, Value: asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte("x@b.test")}}}
	}))
	_, err = validate(f.v, both, "x@b.test", ForSigning)
	wantReason(t, err, MailMismatch)
}
