package smime

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cafgate/envelope/cms"
	"cafgate/envelope/cms/cmstest"
)

// withCapsExtension returns a copy of l whose certificate carries an SMIMECapabilities extension
// (RFC 4262) announcing ciphers.
func withCapsExtension(t *testing.T, ca *cmstest.CA, mail string, oaep bool, ciphers ...cms.Cipher) *x509.Certificate {
	t.Helper()
	l, err := ca.Issue(mail, cmstest.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	val, err := cms.MarshalCapabilities(ciphers, oaep)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *l.Cert
	tmpl.ExtraExtensions = []pkix.Extension{{Id: cms.OIDSMIMECapabilities, Value: val}}
	der, err := x509.CreateCertificate(nil, &tmpl, ca.Cert, l.Cert.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPlanChoosesCipher(t *testing.T) {
	f := getFixture(t)
	plain := f.recips[0].Cert
	certCBC := withCapsExtension(t, f.ca, "cbc@a.test", false, cms.AES256CBC, cms.AES128CBC)
	certCBCOAEP := withCapsExtension(t, f.ca, "cbc-oaep@a.test", true, cms.AES256CBC)
	certGCM := withCapsExtension(t, f.ca, "gcm@a.test", false, cms.AES256GCM, cms.AES256CBC)
	remembered := map[string]Capabilities{
		"old@a.test":  {Ciphers: []cms.Cipher{cms.AES256CBC, cms.AES128CBC}},
		"oaep@a.test": {Ciphers: []cms.Cipher{cms.AES256CBC}, OAEP: true},
		"new@a.test":  {Ciphers: []cms.Cipher{cms.AES128GCM, cms.AES256CBC}},
		"none@a.test": {}, // announced capabilities, none of them an AES algorithm we know
	}
	p := &Policy{CBCFor: []string{"legacy.test", "@Old.Example", "one@b.test"},
		Known: func(_ context.Context, mail string) (Capabilities, bool, error) {
			c, ok := remembered[mail]
			return c, ok, nil
		}}
	const oaep, v15 = cms.RSAOAEPSHA256, cms.RSAPKCS1v15
	cases := []struct {
		mail string
		cert *x509.Certificate
		want cms.Cipher
		why  string
		kt   cms.KeyTransport
	}{
		{"nobody@a.test", plain, cms.AES256GCM, ChoiceDefault, oaep},
		{"OLD@a.test", plain, cms.AES256CBC, ChoiceSignedMail, v15},
		{"oaep@a.test", plain, cms.AES256CBC, ChoiceSignedMail, oaep},
		{"new@a.test", certCBC, cms.AES256GCM, ChoiceSignedMail, oaep}, // signed mail beats the certificate
		{"none@a.test", plain, cms.AES256CBC, ChoiceSignedMail, v15},
		{"x@a.test", certCBC, cms.AES256CBC, ChoiceCertificate, v15},
		{"x@a.test", certCBCOAEP, cms.AES256CBC, ChoiceCertificate, oaep},
		{"x@a.test", certGCM, cms.AES256GCM, ChoiceCertificate, oaep},
		{"x@legacy.test", plain, cms.AES256CBC, ChoiceConfigured, v15},
		{"x@old.example", plain, cms.AES256CBC, ChoiceConfigured, v15},
		{"One@B.test", certGCM, cms.AES256CBC, ChoiceConfigured, v15},
		{"two@b.test", plain, cms.AES256GCM, ChoiceDefault, oaep},
		{"x@sub.legacy.test", plain, cms.AES256GCM, ChoiceDefault, oaep},
	}
	for _, c := range cases {
		pl, err := p.Plan(context.Background(), c.mail, "Agency", c.cert)
		if err != nil {
			t.Fatal(err)
		}
		if pl.Cipher != c.want || pl.Why != c.why || pl.Encrypt.Cipher != c.want {
			t.Errorf("%s: got %v (%s), want %v (%s)", c.mail, pl.Cipher, pl.Why, c.want, c.why)
		}
		if pl.KeyTransport != c.kt || len(pl.Encrypt.Recipients) == 0 || pl.Encrypt.Recipients[0].KeyTransport != c.kt {
			t.Errorf("%s: key transport %v, want %v", c.mail, pl.KeyTransport, c.kt)
		}
		if len(pl.Encrypt.Recipients) != 1 || pl.Encrypt.Recipients[0].Cert != c.cert || pl.Escrow != nil {
			t.Errorf("%s: recipients %v, escrow %v", c.mail, pl.Encrypt.Recipients, pl.Escrow)
		}
	}
	var nilPolicy *Policy
	if pl, err := nilPolicy.Plan(context.Background(), "x@a.test", "", certCBC); err != nil || pl.Cipher != cms.AES256GCM || pl.Why != ChoiceDefault {
		t.Errorf("nil policy: %v %v", pl, err)
	}
	broken := &Policy{Known: func(context.Context, string) (Capabilities, bool, error) {
		return Capabilities{}, false, errors.New("database is locked")
	}}
	if _, err := broken.Plan(context.Background(), "x@a.test", "", plain); err == nil {
		t.Error("a store error must leave the choice to a later attempt")
	}
}

func TestPlanEscrowCoversAgencies(t *testing.T) {
	f := getFixture(t)
	all, police := f.recips[1], f.recips[2]
	p := &Policy{Escrow: []Escrow{
		{Name: "all", Cert: all.Cert},
		{Name: "police", Cert: police.Cert, Agencies: []string{"Eastshire Police"}},
		{Name: "again", Cert: all.Cert}, // the same certificate twice is one recipient
	}}
	fp := func(c *x509.Certificate) string { return fingerprint(c) }
	pl, err := p.Plan(context.Background(), "r@a.test", "eastshire police", f.recips[0].Cert)
	if err != nil {
		t.Fatal(err)
	}
	if len(pl.Encrypt.Recipients) != 3 || strings.Join(pl.Escrow, ",") != fp(all.Cert)+","+fp(police.Cert) {
		t.Errorf("police recipient: %d recipients, escrow %v", len(pl.Encrypt.Recipients), pl.Escrow)
	}
	pl, err = p.Plan(context.Background(), "r@a.test", "Westshire Health", f.recips[0].Cert)
	if err != nil {
		t.Fatal(err)
	}
	if len(pl.Encrypt.Recipients) != 2 || strings.Join(pl.Escrow, ",") != fp(all.Cert) {
		t.Errorf("health recipient: %d recipients, escrow %v", len(pl.Encrypt.Recipients), pl.Escrow)
	}
	// The escrow certificate is the recipient's own: it is not added twice.
	pl, _ = p.Plan(context.Background(), "r@a.test", "x", all.Cert)
	if len(pl.Encrypt.Recipients) != 1 || pl.Escrow != nil {
		t.Errorf("own certificate as escrow: %d recipients, escrow %v", len(pl.Encrypt.Recipients), pl.Escrow)
	}
}

// TestPlanSealsForOpenSSL: the copy sealed by a plan, CBC or GCM, with an escrow recipient, is
// decrypted by `openssl cms` with the recipient's key and with the escrow key, and verified.
func TestPlanSealsForOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	f := getFixture(t)
	dir := t.TempDir()
	rcpt, escrow := f.recips[0], f.recips[1]
	rcptCert, rcptKey, err := rcpt.WritePEM(dir, "rcpt")
	if err != nil {
		t.Fatal(err)
	}
	escCert, escKey, err := escrow.WritePEM(dir, "escrow")
	if err != nil {
		t.Fatal(err)
	}
	caPath := filepath.Join(dir, "ca.pem")
	if err := cmstest.WriteCert(caPath, f.ca.Cert); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		caps Capabilities
		want string
	}{
		{Capabilities{Ciphers: []cms.Cipher{cms.AES256CBC}}, "enveloped-data"},
		{Capabilities{Ciphers: []cms.Cipher{cms.AES256GCM}}, "authEnveloped-data"},
	} {
		p := &Policy{Escrow: []Escrow{{Name: "archive", Cert: escrow.Cert}},
			Known: func(context.Context, string) (Capabilities, bool, error) { return tc.caps, true, nil }}
		pl, err := p.Plan(context.Background(), "r1@a.test", "A", rcpt.Cert)
		if err != nil {
			t.Fatal(err)
		}
		var sealed bytes.Buffer
		if err := Seal(&sealed, []byte(sample), SealOptions{Signer: f.signer(f.gateway), Encrypt: &pl.Encrypt}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(sealed.String(), "smime-type="+tc.want) {
			t.Fatalf("%v: sealed copy is not %s:\n%.300s", pl.Cipher, tc.want, sealed.String())
		}
		in := filepath.Join(dir, "in.eml")
		if err := os.WriteFile(in, sealed.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, k := range [][2]string{{rcptCert, rcptKey}, {escCert, escKey}} {
			dec, err := exec.Command("openssl", "cms", "-decrypt", "-in", in, "-recip", k[0], "-inkey", k[1]).Output()
			if err != nil {
				t.Fatalf("%v: openssl cms -decrypt with %s: %v", pl.Cipher, filepath.Base(k[0]), err)
			}
			cmd := exec.Command("openssl", "cms", "-verify", "-CAfile", caPath, "-purpose", "any")
			cmd.Stdin = bytes.NewReader(dec)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "The assessment is attached.") {
				t.Fatalf("%v: openssl cms -verify: %v\n%s", pl.Cipher, err, out)
			}
		}
	}
}
