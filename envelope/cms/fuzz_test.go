package cms

import (
	"bytes"
	"errors"
	"testing"
)

// Fuzz targets for every decoder that reads untrusted input. A panic fails the target; so does an
// error outside the documented set.

func seedMessages(f *testing.F) {
	p := getPKI(f)
	content := []byte("Content-Type: text/plain\r\n\r\nseed\r\n")
	s := &Signer{Cert: p.rsa2048.cert, Key: p.rsa2048.key}
	if sig, err := s.SignDetached(bytes.NewReader(content)); err == nil {
		f.Add(sig)
	}
	var opaque bytes.Buffer
	if s.SignOpaque(&opaque, content) == nil {
		f.Add(opaque.Bytes())
	}
	for _, c := range []Cipher{AES256GCM, AES256CBC} {
		for _, to := range []Recipient{{Cert: p.rsa2048.cert}, {Cert: p.rsa2048.cert, KeyTransport: RSAPKCS1v15, BySKI: true}, {Cert: p.p256.cert}} {
			var buf bytes.Buffer
			if Encrypt(&buf, content, EncryptOptions{Cipher: c, Recipients: []Recipient{to}}) == nil {
				f.Add(buf.Bytes())
			}
		}
	}
	f.Add([]byte{0x30, 0x80, 0x30, 0x80, 0x00, 0x00, 0x00, 0x00})
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff})
}

func FuzzDecrypt(f *testing.F) {
	seedMessages(f)
	p := getPKI(f)
	rsaKey := &Decrypter{Cert: p.rsa2048.cert, Key: p.rsa2048.key}
	ecKey := &Decrypter{Cert: p.p256.cert, Key: p.p256.key}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, d := range []*Decrypter{rsaKey, ecKey} {
			_, err := d.Decrypt(in)
			if err != nil && err != ErrDecrypt && err != ErrNoRecipient {
				t.Fatalf("unexpected error %v", err)
			}
			// Not compared with err: a failed key transport yields a random key, and AES-CBC then
			// "succeeds" with garbage about once in 256 tries.
			if _, err := d.DecryptInPlace(bytes.Clone(in)); err != nil && err != ErrDecrypt && err != ErrNoRecipient {
				t.Fatalf("in place: unexpected error %v", err)
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	seedMessages(f)
	p := getPKI(f)
	content := []byte("Content-Type: text/plain\r\n\r\nseed\r\n")
	known := []error{ErrMalformed, ErrBadSignature, ErrUntrusted, ErrUnsupported, ErrTooLarge}
	f.Fuzz(func(t *testing.T, in []byte) {
		_, err1 := VerifyDetached(in, content, VerifyOptions{Roots: p.roots})
		_, _, err2 := VerifyOpaque(in, VerifyOptions{Roots: p.roots})
		for _, err := range []error{err1, err2} {
			if err == nil {
				continue
			}
			found := false
			for _, k := range known {
				found = found || errors.Is(err, k)
			}
			if !found {
				t.Fatalf("unexpected error %v", err)
			}
		}
	})
}

func FuzzBER(f *testing.F) {
	seedMessages(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := parseOne(in)
		if err != nil {
			return
		}
		if len(e.full) != len(in) {
			t.Fatalf("element of %d octets from %d", len(e.full), len(in))
		}
		if e.constructed {
			kids, err := e.children()
			if err != nil {
				t.Fatalf("validated element has bad children: %v", err)
			}
			for _, k := range kids {
				_, _ = k.octets(len(in))
			}
		}
	})
}
