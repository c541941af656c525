package cms

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

func TestSignVerifyDetachedAndOpaque(t *testing.T) {
	p := getPKI(t)
	content := []byte("Content-Type: text/plain\r\n\r\nhello\r\n")
	signingTime := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	for _, l := range []leaf{p.rsa2048, p.p256} {
		s := &Signer{Cert: l.cert, Key: l.key, Now: func() time.Time { return signingTime }}
		opts := VerifyOptions{Roots: p.roots}
		sig, err := s.SignDetached(bytes.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		got, err := VerifyDetached(sig, content, opts)
		if err != nil {
			t.Fatalf("%s detached: %v", l.cert.Subject.CommonName, err)
		}
		if !got.Signer.Equal(l.cert) || !got.SigningTime.Equal(signingTime) {
			t.Errorf("signer %v time %v", got.Signer.Subject, got.SigningTime)
		}
		if !got.HasCapabilities || len(got.Capabilities) != 2 || got.Capabilities[0] != AES256GCM || !got.SupportsGCM() {
			t.Errorf("capabilities %v", got.Capabilities)
		}
		var opaque bytes.Buffer
		if err := s.SignOpaque(&opaque, content); err != nil {
			t.Fatal(err)
		}
		inner, got, err := VerifyOpaque(opaque.Bytes(), opts)
		if err != nil || !bytes.Equal(inner, content) || !got.Signer.Equal(l.cert) {
			t.Fatalf("opaque: %v %q", err, inner)
		}
	}
}

// crossSigner claims one certificate's public key but signs with another key.
type crossSigner struct {
	pub crypto.PublicKey
	crypto.Signer
}

func (c crossSigner) Public() crypto.PublicKey { return c.pub }

func TestVerifyRefusals(t *testing.T) {
	p := getPKI(t)
	content := []byte("Content-Type: text/plain\r\n\r\nthe assessment\r\n")
	good := &Signer{Cert: p.rsa2048.cert, Key: p.rsa2048.key}
	sig, err := good.SignDetached(bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	opts := VerifyOptions{Roots: p.roots}
	tampered := bytes.Replace(content, []byte("the"), []byte("THE"), 1)
	if _, err := VerifyDetached(sig, tampered, opts); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered content: %v", err)
	}
	forger := &Signer{Cert: p.rsa2048.cert, Key: crossSigner{p.rsa2048.cert.PublicKey, p.other.key}}
	forged, err := forger.SignDetached(bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyDetached(forged, content, opts); !errors.Is(err, ErrBadSignature) {
		t.Errorf("signature by another key: %v", err)
	}
	for n := 1; n < len(sig); n += len(sig)/17 + 1 {
		if _, err := VerifyDetached(sig[:n], content, opts); err == nil {
			t.Fatalf("truncated at %d accepted", n)
		}
	}
	stranger, err := newTestPKI("another CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyDetached(sig, content, VerifyOptions{Roots: stranger.roots}); !errors.Is(err, ErrUntrusted) {
		t.Errorf("untrusted root: %v", err)
	}
	if _, err := VerifyDetached(sig, content, VerifyOptions{}); !errors.Is(err, ErrUntrusted) {
		t.Errorf("no roots: %v", err)
	}
	late := VerifyOptions{Roots: p.roots, Now: time.Now().Add(48 * time.Hour)}
	if _, err := VerifyDetached(sig, content, late); !errors.Is(err, ErrUntrusted) {
		t.Errorf("expired at verification time: %v", err)
	}
	policy := errors.New("not the signed-in practitioner")
	var seen *x509.Certificate
	check := VerifyOptions{Roots: p.roots, Check: func(s *x509.Certificate, _ []*x509.Certificate) error {
		seen = s
		return policy
	}}
	if _, err := VerifyDetached(sig, content, check); !errors.Is(err, policy) || !seen.Equal(p.rsa2048.cert) {
		t.Errorf("policy check: %v", err)
	}
	if _, err := VerifyDetached(sig, content, VerifyOptions{Roots: p.roots, MaxBytes: 10}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("size limit: %v", err)
	}
}

func TestSignerRefusesMismatchedKey(t *testing.T) {
	p := getPKI(t)
	s := &Signer{Cert: p.rsa2048.cert, Key: p.other.key}
	if _, err := s.SignDetached(bytes.NewReader(nil)); err == nil {
		t.Fatal("a key that is not the certificate's signed")
	}
}

type encCase struct {
	name   string
	cipher Cipher
	to     func(*testPKI) leaf
	kt     KeyTransport
	ski    bool
}

func encCases() []encCase {
	var out []encCase
	leaves := map[string]func(*testPKI) leaf{
		"rsa2048": func(p *testPKI) leaf { return p.rsa2048 },
		"rsa4096": func(p *testPKI) leaf { return p.rsa4096() },
		"p256":    func(p *testPKI) leaf { return p.p256 },
	}
	for _, c := range []Cipher{AES256GCM, AES256CBC} {
		for name, to := range leaves {
			kts := []KeyTransport{RSAOAEPSHA256, RSAOAEPSHA1, RSAPKCS1v15}
			if name == "p256" {
				kts = kts[:1] // ignored for EC: ECDH
			}
			for _, kt := range kts {
				for _, ski := range []bool{false, true} {
					out = append(out, encCase{fmt.Sprintf("%v/%s/%v/ski=%v", c, name, kt, ski), c, to, kt, ski})
				}
			}
		}
	}
	return out
}

func TestEncryptDecryptMatrix(t *testing.T) {
	p := getPKI(t)
	plaintext := bytes.Repeat([]byte("0123456789abcdef-"), 1000)
	for _, tc := range encCases() {
		t.Run(tc.name, func(t *testing.T) {
			to := tc.to(p)
			var buf bytes.Buffer
			err := Encrypt(&buf, plaintext, EncryptOptions{Cipher: tc.cipher, Recipients: []Recipient{
				{Cert: to.cert, KeyTransport: tc.kt, BySKI: tc.ski},
				{Cert: p.other.cert}, // escrow
			}})
			if err != nil {
				t.Fatal(err)
			}
			for _, who := range []leaf{to, p.other} {
				d := &Decrypter{Cert: who.cert, Key: who.key}
				got, err := d.Decrypt(buf.Bytes())
				if err != nil || !bytes.Equal(got.Content, plaintext) || got.Cipher != tc.cipher {
					t.Fatalf("%s: %v", who.cert.Subject.CommonName, err)
				}
				msg := bytes.Clone(buf.Bytes())
				got, err = d.DecryptInPlace(msg)
				if err != nil || !bytes.Equal(got.Content, plaintext) {
					t.Fatalf("%s in place: %v", who.cert.Subject.CommonName, err)
				}
				snapshot := bytes.Clone(msg)
				got.Content[0] ^= 1
				if bytes.Equal(msg, snapshot) {
					t.Fatal("in place: the content is a copy")
				}
			}
		})
	}
}

func TestEncryptInPlace(t *testing.T) {
	p := getPKI(t)
	plain := []byte("in place")
	buf := make([]byte, len(plain), len(plain)+16)
	copy(buf, plain)
	var out bytes.Buffer
	if err := EncryptInPlace(&out, buf, EncryptOptions{Recipients: []Recipient{{Cert: p.rsa2048.cert}}}); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(buf, plain) {
		t.Error("buffer not reused")
	}
	got, err := (&Decrypter{Cert: p.rsa2048.cert, Key: p.rsa2048.key}).Decrypt(out.Bytes())
	if err != nil || !bytes.Equal(got.Content, plain) {
		t.Fatal(err)
	}
}

func TestDecryptFailuresLookAlike(t *testing.T) {
	p := getPKI(t)
	plaintext := []byte("secret assessment")
	me := &Decrypter{Cert: p.rsa2048.cert, Key: p.rsa2048.key}
	for _, c := range []Cipher{AES256GCM, AES256CBC} {
		for _, kt := range []KeyTransport{RSAPKCS1v15, RSAOAEPSHA256} {
			var buf bytes.Buffer
			if err := Encrypt(&buf, plaintext, EncryptOptions{Cipher: c, Recipients: []Recipient{{Cert: p.rsa2048.cert, KeyTransport: kt}}}); err != nil {
				t.Fatal(err)
			}
			msg := buf.Bytes()
			if _, err := (&Decrypter{Cert: p.other.cert, Key: p.other.key}).Decrypt(msg); !errors.Is(err, ErrNoRecipient) {
				t.Errorf("%v/%v other recipient: %v", c, kt, err)
			}
			// Flip every byte in turn: the answer is success (a byte that does not matter) or the
			// one error, never a panic nor another error.
			for i := range msg {
				bad := bytes.Clone(msg)
				bad[i] ^= 0x01
				_, err := me.Decrypt(bad)
				if err != nil && !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrNoRecipient) {
					t.Fatalf("%v/%v byte %d: %v", c, kt, i, err)
				}
				if err == nil && c.IsGCM() && i >= len(msg)-len(plaintext)-32 {
					t.Fatalf("%v/%v byte %d: tampered ciphertext decrypted", c, kt, i)
				}
			}
			for n := 0; n < len(msg); n += 7 {
				if _, err := me.Decrypt(msg[:n]); err != ErrDecrypt {
					t.Fatalf("truncated at %d: %v", n, err)
				}
				if _, err := me.DecryptInPlace(bytes.Clone(msg[:n])); err != ErrDecrypt {
					t.Fatalf("truncated at %d, in place: %v", n, err)
				}
			}
			bad := bytes.Clone(msg)
			bad[len(bad)-20] ^= 1
			if _, err := me.DecryptInPlace(bad); c.IsGCM() && err != ErrDecrypt {
				t.Fatalf("tampered, in place: %v", err)
			}
		}
	}
	if _, err := (&Decrypter{Cert: p.rsa2048.cert, Key: p.rsa2048.key, MaxBytes: 5}).Decrypt(make([]byte, 6)); err != ErrTooLarge {
		t.Errorf("size limit: %v", err)
	}
}

func TestEncryptRefusesWeakRecipients(t *testing.T) {
	if err := Encrypt(io.Discard, nil, EncryptOptions{}); err == nil {
		t.Error("no recipients accepted")
	}
	if err := Encrypt(io.Discard, nil, EncryptOptions{Recipients: []Recipient{{}}}); !errors.Is(err, ErrBadRecipient) {
		t.Errorf("nil certificate: %v", err)
	}
}

func TestUnpadNeverPanics(t *testing.T) {
	cases := []struct {
		in   []byte
		want int
		ok   bool
	}{
		{append(bytes.Repeat([]byte{'a'}, 15), 1), 15, true},
		{bytes.Repeat([]byte{16}, 16), 0, true},
		{bytes.Repeat([]byte{0}, 16), 0, false},
		{bytes.Repeat([]byte{17}, 16), 0, false},
		{bytes.Repeat([]byte{255}, 16), 0, false},
		{append(bytes.Repeat([]byte{3}, 14), 2, 3), 0, false},
		{[]byte{}, 0, false},
		{[]byte{1, 1, 1}, 0, false},
	}
	for i, c := range cases {
		got, ok := unpad(c.in, 16)
		if ok != c.ok || (ok && len(got) != c.want) {
			t.Errorf("case %d: %d %v", i, len(got), ok)
		}
	}
}

func TestKeyWrapRFC3394(t *testing.T) {
	kek := make([]byte, 32)
	for i := range kek {
		kek[i] = byte(i)
	}
	key := []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF,
		0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F}
	want := fromHex(t, "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21") // RFC 3394 4.6
	got, err := keyWrap(kek, key)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("wrap %X %v", got, err)
	}
	back, err := keyUnwrap(kek, got)
	if err != nil || !bytes.Equal(back, key) {
		t.Fatalf("unwrap %X %v", back, err)
	}
	got[3] ^= 1
	if _, err := keyUnwrap(kek, got); err == nil {
		t.Fatal("tampered wrap accepted")
	}
}

func fromHex(t *testing.T, s string) []byte {
	t.Helper()
	var out []byte
	if _, err := fmt.Sscanf(s, "%X", &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestIdentify(t *testing.T) {
	p := getPKI(t)
	s := &Signer{Cert: p.rsa2048.cert, Key: p.rsa2048.key}
	sig, err := s.SignDetached(bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	var gcm, cbc bytes.Buffer
	to := []Recipient{{Cert: p.rsa2048.cert}}
	if Encrypt(&gcm, []byte("x"), EncryptOptions{Recipients: to}) != nil || Encrypt(&cbc, []byte("x"), EncryptOptions{Cipher: AES256CBC, Recipients: to}) != nil {
		t.Fatal("encrypt")
	}
	for in, want := range map[string]Kind{
		string(sig): KindSignedData, string(gcm.Bytes()): KindAuthEnvelopedData, string(cbc.Bytes()): KindEnvelopedData,
		string(gcm.Bytes()[:40]): KindAuthEnvelopedData, "": KindUnknown, "\x30\x03\x02\x01\x00": KindUnknown,
	} {
		if got := Identify([]byte(in)); got != want {
			t.Errorf("%x: %v, want %v", in[:min(len(in), 16)], got, want)
		}
	}
}
