package smime

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"cafgate/envelope/cms"
	"cafgate/envelope/cms/cmstest"
)

type fixture struct {
	ca       *cmstest.CA
	gateway  cmstest.Leaf // signs outbound, decrypts inbound
	gwSign   cmstest.Leaf // the gateway's separate P-256 signing certificate
	alice    cmstest.Leaf // a practitioner
	recips   []cmstest.Leaf
	ecRecip  cmstest.Leaf
	stranger *cmstest.CA
}

var fixtureOnce = sync.OnceValues(func() (*fixture, error) {
	now := time.Now()
	ca, err := cmstest.NewCA("smime test CA", now)
	if err != nil {
		return nil, err
	}
	f := &fixture{ca: ca}
	if f.gateway, err = ca.Issue("gateway@cafgate.test", cmstest.RSA2048); err != nil {
		return nil, err
	}
	if f.gwSign, err = ca.Issue("gateway@cafgate.test", cmstest.P256); err != nil {
		return nil, err
	}
	if f.alice, err = ca.Issue("alice@agency.test", cmstest.RSA2048); err != nil {
		return nil, err
	}
	for _, m := range []string{"r1@a.test", "r2@a.test", "r3@a.test", "r4@a.test", "r5@a.test"} {
		l, err := ca.Issue(m, cmstest.RSA2048)
		if err != nil {
			return nil, err
		}
		f.recips = append(f.recips, l)
	}
	if f.ecRecip, err = ca.Issue("ec@a.test", cmstest.P256); err != nil {
		return nil, err
	}
	f.stranger, err = cmstest.NewCA("stranger CA", now)
	return f, err
})

func getFixture(t testing.TB) *fixture {
	t.Helper()
	f, err := fixtureOnce()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) signer(l cmstest.Leaf) *cms.Signer { return &cms.Signer{Cert: l.Cert, Key: l.Key} }

func (f *fixture) decrypter(l cmstest.Leaf) *cms.Decrypter {
	return &cms.Decrypter{Cert: l.Cert, Key: l.Key}
}

const sample = "From: Alice <alice@agency.test>\r\n" +
	"To: r1@a.test\r\n" +
	"Subject: CAF episode E-1\r\n" +
	"Message-ID: <1@agency.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"xyz\"\r\n" +
	"\r\n" +
	"--xyz\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"The assessment is attached.\r\n" +
	"--xyz\r\n" +
	"Content-Type: application/pdf; name=\"caf.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQK\r\n" +
	"--xyz--\r\n"

// innerEntity is what sample's protected entity must be: its Content-* fields and body.
const innerEntity = "Content-Type: multipart/mixed; boundary=\"xyz\"\r\n\r\n--xyz\r\n"

func TestSealOpenCombinations(t *testing.T) {
	f := getFixture(t)
	gw := f.signer(f.gateway)
	to := []cms.Recipient{{Cert: f.recips[0].Cert}, {Cert: f.recips[1].Cert, KeyTransport: cms.RSAPKCS1v15}}
	cases := []struct {
		name  string
		opts  SealOptions
		kinds []LayerKind
	}{
		{"sign+gcm", SealOptions{Signer: gw, Encrypt: &cms.EncryptOptions{Recipients: to}}, []LayerKind{Encrypted, SignedDetached}},
		{"sign+cbc", SealOptions{Signer: gw, Encrypt: &cms.EncryptOptions{Cipher: cms.AES256CBC, Recipients: to}}, []LayerKind{Encrypted, SignedDetached}},
		{"opaque+gcm", SealOptions{Signer: gw, Opaque: true, Encrypt: &cms.EncryptOptions{Recipients: to}}, []LayerKind{Encrypted, SignedOpaque}},
		{"sign only", SealOptions{Signer: gw}, []LayerKind{SignedDetached}},
		{"opaque only", SealOptions{Signer: gw, Opaque: true}, []LayerKind{SignedOpaque}},
		{"encrypt only", SealOptions{Encrypt: &cms.EncryptOptions{Recipients: to}}, []LayerKind{Encrypted}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Seal(&out, []byte(sample), tc.opts); err != nil {
				t.Fatal(err)
			}
			sealed := out.String()
			if !strings.HasPrefix(sealed, "From: Alice <alice@agency.test>\r\nTo: r1@a.test\r\nSubject: CAF episode E-1\r\n") {
				t.Fatalf("outer header not kept:\n%.300s", sealed)
			}
			if tc.opts.Encrypt != nil && strings.Contains(sealed, "assessment") {
				t.Fatal("plaintext visible in the encrypted message")
			}
			for _, r := range f.recips[:2] {
				o, err := Open(out.Bytes(), OpenOptions{Decrypter: f.decrypter(r), Verify: cms.VerifyOptions{Roots: f.ca.Roots}})
				if err != nil {
					t.Fatal(err)
				}
				checkOpened(t, o, tc.kinds)
				if tc.opts.Signer != nil && !o.Signer().Equal(f.gateway.Cert) {
					t.Error("signer is not the gateway")
				}
			}
		})
	}
}

func checkOpened(t *testing.T, o *Opened, kinds []LayerKind) {
	t.Helper()
	if len(o.Layers) != len(kinds) {
		t.Fatalf("layers %v, want %v", o.Layers, kinds)
	}
	for i, k := range kinds {
		if o.Layers[i].Kind != k {
			t.Fatalf("layer %d is %v, want %v", i, o.Layers[i].Kind, k)
		}
	}
	if !strings.HasPrefix(string(o.Entity), innerEntity) || !strings.HasSuffix(string(o.Entity), "JVBERi0xLjQK\r\n--xyz--\r\n") {
		t.Fatalf("entity:\n%s", o.Entity)
	}
	msg, err := o.Message()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(msg), "From: Alice <alice@agency.test>\r\nTo: r1@a.test\r\nSubject: CAF episode E-1\r\nMessage-ID: <1@agency.test>\r\nMIME-Version: 1.0\r\n"+innerEntity) {
		t.Fatalf("message:\n%.400s", msg)
	}
	e, err := o.ParseEntity()
	if err != nil || !strings.HasPrefix(e.Header.Get("Content-Type"), "multipart/mixed") {
		t.Fatalf("parse entity: %v", err)
	}
}

func TestOpenEncryptedThenSigned(t *testing.T) {
	f := getFixture(t)
	entity := []byte("Content-Type: text/plain\r\n\r\nencrypted, then signed\r\n")
	var enc bytes.Buffer
	if err := Encrypt(&enc, entity, cms.EncryptOptions{Recipients: []cms.Recipient{{Cert: f.gateway.Cert}}}); err != nil {
		t.Fatal(err)
	}
	var signed bytes.Buffer
	signed.WriteString("From: alice@agency.test\r\nMIME-Version: 1.0\r\n")
	if err := SignDetached(&signed, enc.Bytes(), f.signer(f.alice)); err != nil {
		t.Fatal(err)
	}
	o, err := Open(signed.Bytes(), OpenOptions{Decrypter: f.decrypter(f.gateway), Verify: cms.VerifyOptions{Roots: f.ca.Roots}})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Layers) != 2 || o.Layers[0].Kind != SignedDetached || o.Layers[1].Kind != Encrypted || !bytes.Equal(o.Entity, entity) {
		t.Fatalf("layers %v entity %q", o.Layers, o.Entity)
	}
	if !o.Signer().Equal(f.alice.Cert) || !o.Encrypted() || o.Layers[1].Cipher != cms.AES256GCM {
		t.Fatal("signer or cipher")
	}
	if _, err := Open(signed.Bytes(), OpenOptions{Verify: cms.VerifyOptions{Roots: f.ca.Roots}}); !errors.Is(err, ErrNoDecrypter) {
		t.Fatalf("no decrypter: %v", err)
	}
}

func TestOpenRefusals(t *testing.T) {
	f := getFixture(t)
	var out bytes.Buffer
	if err := Seal(&out, []byte(sample), SealOptions{Signer: f.signer(f.alice)}); err != nil {
		t.Fatal(err)
	}
	good := out.Bytes()
	opts := OpenOptions{Verify: cms.VerifyOptions{Roots: f.ca.Roots}}
	if _, err := Open(good, opts); err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(good, []byte("The assessment"), []byte("The Assessment"), 1)
	if _, err := Open(tampered, opts); !errors.Is(err, cms.ErrBadSignature) {
		t.Errorf("tampered: %v", err)
	}
	if _, err := Open(good, OpenOptions{Verify: cms.VerifyOptions{Roots: f.stranger.Roots}}); !errors.Is(err, cms.ErrUntrusted) {
		t.Errorf("untrusted: %v", err)
	}
	notAlice := errors.New("signer is not the signed-in practitioner")
	policy := OpenOptions{Verify: cms.VerifyOptions{Roots: f.ca.Roots, Check: func(s *x509.Certificate, _ []*x509.Certificate) error {
		if s.EmailAddresses[0] != "bob@agency.test" {
			return notAlice
		}
		return nil
	}}}
	if _, err := Open(good, policy); !errors.Is(err, notAlice) {
		t.Errorf("policy: %v", err)
	}
	// Truncate inside the signature part: the base64 or the CMS breaks.
	i := bytes.Index(good, []byte("smime.p7s\"\r\nContent-Description"))
	cut := append(bytes.Clone(good[:i+200]), []byte("\r\n--"+boundaryOf(t, good)+"--\r\n")...)
	if _, err := Open(cut, opts); err == nil {
		t.Error("truncated signature accepted")
	}
}

func boundaryOf(t *testing.T, msg []byte) string {
	t.Helper()
	i := bytes.Index(msg, []byte("boundary=\""))
	j := bytes.IndexByte(msg[i+10:], '"')
	return string(msg[i+10 : i+10+j])
}

func TestSealCanonicalisesLineEndings(t *testing.T) {
	f := getFixture(t)
	lf := strings.ReplaceAll(sample, "\r\n", "\n")
	var out bytes.Buffer
	if err := Seal(&out, []byte(lf), SealOptions{Signer: f.signer(f.gateway)}); err != nil {
		t.Fatal(err)
	}
	if !isCanonical(out.Bytes()) {
		t.Fatal("output has bare LF")
	}
	// Relays may hand it on with LF endings; Open canonicalises again before verifying.
	back := bytes.ReplaceAll(out.Bytes(), []byte("\r\n"), []byte("\n"))
	o, err := Open(back, OpenOptions{Verify: cms.VerifyOptions{Roots: f.ca.Roots}})
	if err != nil {
		t.Fatal(err)
	}
	checkOpened(t, o, []LayerKind{SignedDetached})
}

func TestOpenPlainMessage(t *testing.T) {
	o, err := Open([]byte(sample), OpenOptions{})
	if err != nil || len(o.Layers) != 0 || o.Signed() || o.Encrypted() || o.Signer() != nil {
		t.Fatalf("%v %v", err, o)
	}
	msg, _ := o.Message()
	if string(msg) != sample {
		t.Fatal("plain message changed")
	}
}

func TestSplitSigned(t *testing.T) {
	body := "preamble\r\n--b\r\nA\r\n--bX\r\nstill A\r\n--b  \r\nB\r\n--b--\r\nepilogue"
	first, second, err := splitSigned([]byte(body), "b")
	if err != nil || string(first) != "A\r\n--bX\r\nstill A" || string(second) != "B" {
		t.Fatalf("%q %q %v", first, second, err)
	}
	for _, bad := range []string{"--b\r\nA\r\n--b--\r\n", "--b\r\nA\r\n--b\r\nB\r\n--b\r\nC\r\n--b--", "no parts", "--b\r\nA\r\n--b\r\nB"} {
		if _, _, err := splitSigned([]byte(bad), "b"); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"a\nb\r\nc\rd": "a\r\nb\r\nc\r\nd", "": "", "x\r\n": "x\r\n", "\r": "\r\n", "\n\n": "\r\n\r\n",
	} {
		if got := string(Canonical([]byte(in))); got != want {
			t.Errorf("%q: %q", in, got)
		}
	}
}

// TestSignOnceSealToEach: an entity signed once and sealed to two recipients opens for each, signed by
// the gateway with the same signature, holding what Seal would have sealed, under each one's header.
func TestSignOnceSealToEach(t *testing.T) {
	f := getFixture(t)
	s, err := Sign([]byte(sample), f.signer(f.gateway))
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := Seal(&want, []byte(sample), SealOptions{Signer: f.signer(f.gateway), Encrypt: &cms.EncryptOptions{Recipients: []cms.Recipient{{Cert: f.recips[0].Cert}}}}); err != nil {
		t.Fatal(err)
	}
	ref, err := Open(want.Bytes(), OpenOptions{Decrypter: f.decrypter(f.recips[0]), Verify: cms.VerifyOptions{Roots: f.ca.Roots}})
	if err != nil {
		t.Fatal(err)
	}
	var sigs [][]byte
	for i, r := range f.recips[:2] {
		header := fmt.Sprintf("From: Alice <alice@agency.test>\r\nTo: r%d@a.test\r\nSubject: CAF episode E-1\r\nMessage-ID: <1.%d@agency.test>\r\nMIME-Version: 1.0\r\n", i+1, i)
		var out bytes.Buffer
		if err := SealSigned(&out, []byte(header), s, cms.EncryptOptions{Recipients: []cms.Recipient{{Cert: r.Cert}}}); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out.String(), strings.TrimSuffix(header, "MIME-Version: 1.0\r\n")+"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime") {
			t.Fatalf("header of copy %d:\n%.400s", i, out.String())
		}
		if strings.Contains(out.String(), "assessment") {
			t.Fatal("plaintext visible")
		}
		o, err := Open(out.Bytes(), OpenOptions{Decrypter: f.decrypter(r), Verify: cms.VerifyOptions{Roots: f.ca.Roots}})
		if err != nil {
			t.Fatalf("copy %d: %v", i, err)
		}
		if len(o.Layers) != 2 || o.Layers[0].Kind != Encrypted || o.Layers[1].Kind != SignedDetached {
			t.Fatalf("copy %d: layers %v", i, o.Layers)
		}
		if !o.Signer().Equal(f.gateway.Cert) || !bytes.Equal(o.Entity, ref.Entity) {
			t.Fatalf("copy %d: signer %v, entity %q; want the gateway and %q", i, o.Signer().Subject, o.Entity, ref.Entity)
		}
		// The signed entity inside the encryption, byte for byte.
		_, body, err := splitEntity(out.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		der, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(body), "\r\n", ""))
		if err != nil {
			t.Fatal(err)
		}
		dec, err := f.decrypter(r).Decrypt(der)
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, dec.Content)
	}
	if !bytes.Equal(sigs[0], sigs[1]) {
		t.Error("the two copies carry different signed entities; want the one signature")
	}
	// s is unchanged by sealing: a third copy still opens.
	var again bytes.Buffer
	if err := SealSigned(&again, []byte("To: r1@a.test\r\n"), s, cms.EncryptOptions{Recipients: []cms.Recipient{{Cert: f.recips[0].Cert}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(again.Bytes(), OpenOptions{Decrypter: f.decrypter(f.recips[0]), Verify: cms.VerifyOptions{Roots: f.ca.Roots}}); err != nil {
		t.Fatalf("third copy: %v", err)
	}
}

// TestSealedSizeBound: the sealed form (outer header aside) of entities from a few octets to a
// megabyte, encrypted to one and to two recipients (RSA, and EC with RSA by key identifier), fits SealedSizeBound and SealedSizeBoundFor those
// recipients, and not by much.
func TestSealedSizeBound(t *testing.T) {
	f := getFixture(t)
	header := "From: Alice <alice@agency.test>\r\nTo: r1@a.test\r\nSubject: CAF episode E-1\r\nMIME-Version: 1.0\r\n"
	for _, n := range []int{10, 4 << 10, 100 << 10, 1 << 20} {
		s, err := Sign(benchMessage(n), f.signer(f.gateway))
		if err != nil {
			t.Fatal(err)
		}
		for _, rcpts := range [][]cms.Recipient{{{Cert: f.recips[0].Cert}}, {{Cert: f.recips[0].Cert}, {Cert: f.recips[1].Cert}},
			{{Cert: f.ecRecip.Cert}, {Cert: f.recips[2].Cert, BySKI: true}}} {
			var out bytes.Buffer
			if err := SealSigned(&out, []byte(header), s, cms.EncryptOptions{Recipients: rcpts}); err != nil {
				t.Fatal(err)
			}
			body := out.Len() - len(header) - 200 // the outer header: header, MIME-Version and Content-* lines
			if tight := SealedSizeBoundFor(s.Size(), cms.EncryptOptions{Recipients: rcpts}); body > tight || tight-body > 4<<10 {
				t.Errorf("entity %d octets, %d recipients: sealed about %d, bound for them %d", s.Size(), len(rcpts), body, tight)
			}
			bound := SealedSizeBound(s.Size())
			t.Logf("entity %d, %d recipients: sealed %d, bound %d (the estimate before it: %d)", s.Size(), len(rcpts), body, bound, s.Size()*4/3+s.Size()/38+8<<10)
			if body > bound || bound-body > 24<<10 {
				t.Errorf("entity %d octets, %d recipients: sealed about %d, bound %d", s.Size(), len(rcpts), body, bound)
			}
		}
	}
}
