package validate

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// responder answers OCSP requests for ca with status, signed by signer (ca itself when nil).
func responder(t *testing.T, ca *testCA, signerCert *x509.Certificate, signerKey crypto.Signer, status int, revokedAt time.Time) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(body)
		if err != nil || r.Header.Get("Content-Type") != "application/ocsp-request" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		tmpl := ocsp.Response{Status: status, SerialNumber: req.SerialNumber, ThisUpdate: t0.Add(-time.Hour),
			NextUpdate: t0.Add(time.Hour), RevokedAt: revokedAt, RevocationReason: ocsp.KeyCompromise}
		cert, key := ca.cert, crypto.Signer(ca.key)
		if signerCert != nil {
			tmpl.Certificate, cert, key = signerCert, signerCert, signerKey
		}
		der, err := ocsp.CreateResponse(ca.cert, cert, tmpl, key)
		if err != nil {
			t.Error(err)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(der)
	}
}

func TestOCSP(t *testing.T) {
	f := newFixture(t)
	withOCSP := func(c *x509.Certificate) { c.OCSPServer = []string{f.srv.URL + "/ocsp"} }
	onlyOCSP := f.root.leaf(t, "a@b.test", withOCSP)
	both := f.root.leaf(t, "a@b.test", f.with(withOCSP))

	delegateKey := ecKey(t)
	delegate := func(eku []x509.ExtKeyUsage) *x509.Certificate {
		return f.root.sign(t, &x509.Certificate{SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: "OCSP responder"},
			NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: eku},
			delegateKey.Public(), nil)
	}
	goodDelegate, plainDelegate := delegate([]x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}), delegate(nil)
	stranger := newRoot(t, "Riverside Root")

	cases := []struct {
		name   string
		cert   *x509.Certificate
		answer func(http.ResponseWriter, *http.Request)
		want   Reason
	}{
		{"good", onlyOCSP, responder(t, f.root, nil, nil, ocsp.Good, time.Time{}), ""},
		{"revoked", onlyOCSP, responder(t, f.root, nil, nil, ocsp.Revoked, t0.Add(-2*time.Hour)), Revoked},
		{"unknown, no CRL", onlyOCSP, responder(t, f.root, nil, nil, ocsp.Unknown, time.Time{}), RevocationUnknown},
		{"unknown, CRL good", both, responder(t, f.root, nil, nil, ocsp.Unknown, time.Time{}), ""},
		{"responder down, CRL good", both, func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "x", 500) }, ""},
		{"delegated responder", onlyOCSP, responder(t, f.root, goodDelegate, delegateKey, ocsp.Good, time.Time{}), ""},
		{"delegate without OCSP signing", onlyOCSP, responder(t, f.root, plainDelegate, delegateKey, ocsp.Good, time.Time{}), RevocationUnknown},
		{"signed by a stranger", onlyOCSP, responder(t, stranger, nil, nil, ocsp.Good, time.Time{}), RevocationUnknown},
		{"garbage", onlyOCSP, func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("not ocsp")) }, RevocationUnknown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.srv.handle("/ocsp", c.answer)
			v := newValidator(t, f.clk, Anchor{Name: "r", Agencies: []string{AnyAgency}, Roots: []*x509.Certificate{f.root.cert}})
			_, err := validate(v, c.cert, "a@b.test", ForSigning)
			wantReason(t, err, c.want)
		})
	}

	t.Run("cached until nextUpdate", func(t *testing.T) {
		f.srv.handle("/ocsp", responder(t, f.root, nil, nil, ocsp.Good, time.Time{}))
		v := newValidator(t, f.clk, Anchor{Name: "r", Agencies: []string{AnyAgency}, Roots: []*x509.Certificate{f.root.cert}})
		before := f.srv.count("/ocsp")
		for i := 0; i < 3; i++ {
			if _, err := validate(v, onlyOCSP, "a@b.test", ForSigning); err != nil {
				t.Fatal(err)
			}
		}
		if n := f.srv.count("/ocsp") - before; n != 1 {
			t.Errorf("responder asked %d times, want 1", n)
		}
		f.clk.set(t0.Add(time.Hour)) // the response's nextUpdate: it is stale now, and so is a fresh one
		_, err := validate(v, onlyOCSP, "a@b.test", ForSigning)
		wantReason(t, err, RevocationUnknown)
		f.clk.set(t0)
	})
}
