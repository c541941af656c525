package cms

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Unit-level interoperability with the openssl command line (skipped when it is not installed); the
// MIME-level matrix with gpgsm is in integration/smime_test.go.

func needOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
}

func openssl(t *testing.T, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, errors.New(err.Error() + ": " + errb.String())
	}
	return out.Bytes(), nil
}

func TestOpenSSLDecryptsWhatWeEncrypt(t *testing.T) {
	needOpenSSL(t)
	p := getPKI(t)
	dir := t.TempDir()
	plaintext := []byte("Content-Type: text/plain\r\n\r\nCAF assessment\r\n")
	for _, tc := range encCases() {
		t.Run(tc.name, func(t *testing.T) {
			to := tc.to(p)
			cert, key := to.writePEM(t, dir, to.cert.Subject.CommonName)
			var buf bytes.Buffer
			if err := Encrypt(&buf, plaintext, EncryptOptions{Cipher: tc.cipher, Recipients: []Recipient{
				{Cert: to.cert, KeyTransport: tc.kt, BySKI: tc.ski}}}); err != nil {
				t.Fatal(err)
			}
			out, err := openssl(t, buf.Bytes(), "cms", "-decrypt", "-inform", "DER", "-binary", "-recip", cert, "-inkey", key)
			if err != nil || !bytes.Equal(out, plaintext) {
				t.Fatalf("openssl: %v %q", err, out)
			}
		})
	}
}

func TestWeDecryptWhatOpenSSLEncrypts(t *testing.T) {
	needOpenSSL(t)
	p := getPKI(t)
	dir := t.TempDir()
	plaintext := []byte("Content-Type: text/plain\r\n\r\nfrom openssl\r\n")
	in := filepath.Join(dir, "in")
	if err := os.WriteFile(in, plaintext, 0o600); err != nil {
		t.Fatal(err)
	}
	rsaCert, _ := p.rsa2048.writePEM(t, dir, "rsa")
	ecCert, _ := p.p256.writePEM(t, dir, "ec")
	cases := []struct {
		name string
		to   leaf
		args []string
	}{
		{"gcm-v15", p.rsa2048, []string{"-aes-256-gcm", rsaCert}},
		{"cbc-v15", p.rsa2048, []string{"-aes-256-cbc", rsaCert}},
		{"aes128-cbc", p.rsa2048, []string{"-aes-128-cbc", rsaCert}},
		{"gcm-oaep256", p.rsa2048, []string{"-aes-256-gcm", "-recip", rsaCert, "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"}},
		{"cbc-oaep1", p.rsa2048, []string{"-aes-256-cbc", "-recip", rsaCert, "-keyopt", "rsa_padding_mode:oaep"}},
		{"gcm-ski", p.rsa2048, []string{"-aes-256-gcm", "-keyid", rsaCert}},
		{"gcm-ec", p.p256, []string{"-aes-256-gcm", ecCert}},
		{"cbc-ec-ski", p.p256, []string{"-aes-256-cbc", "-keyid", ecCert}},
		{"gcm-stream", p.rsa2048, []string{"-aes-256-gcm", "-stream", rsaCert}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"cms", "-encrypt", "-binary", "-in", in, "-outform", "DER"}, c.args...)
			der, err := openssl(t, nil, args...)
			if err != nil {
				t.Fatal(err)
			}
			d := &Decrypter{Cert: c.to.cert, Key: c.to.key}
			got, err := d.Decrypt(der)
			if err != nil || !bytes.Equal(got.Content, plaintext) {
				t.Fatalf("decrypt: %v", err)
			}
			if got, err = d.DecryptInPlace(der); err != nil || !bytes.Equal(got.Content, plaintext) {
				t.Fatalf("decrypt in place: %v", err)
			}
		})
	}
}

func TestOpenSSLVerifiesWhatWeSign(t *testing.T) {
	needOpenSSL(t)
	p := getPKI(t)
	dir := t.TempDir()
	ca := writeCACert(t, dir, p)
	content := []byte("Content-Type: text/plain\r\n\r\nsigned by the gateway\r\n")
	contentPath := filepath.Join(dir, "content")
	if err := os.WriteFile(contentPath, content, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, l := range []leaf{p.rsa2048, p.rsa4096(), p.p256} {
		s := &Signer{Cert: l.cert, Key: l.key}
		sig, err := s.SignDetached(bytes.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := openssl(t, sig, "cms", "-verify", "-inform", "DER", "-binary", "-content", contentPath, "-CAfile", ca, "-out", os.DevNull); err != nil {
			t.Errorf("%s detached: %v", l.cert.Subject.CommonName, err)
		}
		var opaque bytes.Buffer
		if err := s.SignOpaque(&opaque, content); err != nil {
			t.Fatal(err)
		}
		out, err := openssl(t, opaque.Bytes(), "cms", "-verify", "-inform", "DER", "-binary", "-CAfile", ca)
		if err != nil || !bytes.Equal(out, content) {
			t.Errorf("%s opaque: %v", l.cert.Subject.CommonName, err)
		}
		if _, err := openssl(t, sig, "cms", "-verify", "-inform", "DER", "-binary", "-content", ca, "-CAfile", ca, "-out", os.DevNull); err == nil {
			t.Error("openssl verified the signature over other content: the test cannot fail")
		}
	}
}

func TestWeVerifyWhatOpenSSLSigns(t *testing.T) {
	needOpenSSL(t)
	p := getPKI(t)
	dir := t.TempDir()
	content := []byte("Content-Type: text/plain\r\n\r\nsigned by openssl\r\n")
	in := filepath.Join(dir, "in")
	if err := os.WriteFile(in, content, 0o600); err != nil {
		t.Fatal(err)
	}
	pss := []string{"-keyopt", "rsa_padding_mode:pss"}
	for _, l := range []leaf{p.rsa2048, p.p256} {
		cert, key := l.writePEM(t, dir, "signer")
		base := []string{"cms", "-sign", "-binary", "-md", "sha256", "-in", in, "-signer", cert, "-inkey", key, "-outform", "DER"}
		extras := [][]string{nil, {"-stream"}, {"-keyid"}, {"-noattr"}, {"-keyid", "-noattr"}}
		if l.cert.PublicKeyAlgorithm == x509.RSA {
			extras = append(extras, pss, append([]string{"-keyid"}, pss...), append([]string{"-noattr"}, pss...),
				append(append([]string{}, pss...), "-keyopt", "rsa_pss_saltlen:max"), append([]string{"-md", "sha512"}, pss...))
		}
		for _, extra := range extras {
			name := strings.Join(extra, " ")
			det, err := openssl(t, nil, append(base, extra...)...)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := VerifyDetached(det, content, VerifyOptions{Roots: p.roots})
			if len(extra) > 0 && extra[0] == "-stream" {
				// openssl ignores detachment when streaming DER: the content is encapsulated.
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("-stream as detached: %v", err)
				}
			} else {
				if err != nil || !sig.Signer.Equal(l.cert) {
					t.Errorf("detached %q: %v", name, err)
				}
				if _, err := VerifyDetached(det, append(content, '!'), VerifyOptions{Roots: p.roots}); !errors.Is(err, ErrBadSignature) {
					t.Errorf("detached %q, tampered: %v", name, err)
				}
			}
			opq, err := openssl(t, nil, append(append(base, "-nodetach"), extra...)...)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := VerifyOpaque(opq, VerifyOptions{Roots: p.roots})
			if err != nil || !bytes.Equal(got, content) {
				t.Errorf("opaque %q: %v", name, err)
			}
			// The last octet of the signature value flipped: refused.
			bad := bytes.Clone(opq)
			bad[len(bad)-1] ^= 1
			if _, _, err := VerifyOpaque(bad, VerifyOptions{Roots: p.roots}); err == nil {
				t.Errorf("opaque %q with a flipped signature octet: accepted", name)
			}
		}
	}
}

// TestSKISignerMustMatch: a signer identified by a subject key identifier that no certificate in
// the message carries is refused (the certificate is not guessed).
func TestSKISignerMustMatch(t *testing.T) {
	needOpenSSL(t)
	p := getPKI(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.WriteFile(in, []byte("x\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, key := p.rsa2048.writePEM(t, dir, "signer")
	opq, err := openssl(t, nil, "cms", "-sign", "-binary", "-md", "sha256", "-in", in, "-signer", cert, "-inkey", key,
		"-outform", "DER", "-nodetach", "-keyid")
	if err != nil {
		t.Fatal(err)
	}
	ski := p.rsa2048.cert.SubjectKeyId
	i := bytes.LastIndex(opq, append([]byte{0x80, byte(len(ski))}, ski...))
	if i < 0 || len(ski) == 0 {
		t.Fatal("no [0] subjectKeyIdentifier signer id in openssl's output")
	}
	opq[i+2] ^= 0xff
	if _, _, err := VerifyOpaque(opq, VerifyOptions{Roots: p.roots}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown key identifier: %v", err)
	}
}
