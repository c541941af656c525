package integration

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cafgate/certs/devca"
	"cafgate/envelope/cms"
	"cafgate/envelope/cms/cmstest"
	"cafgate/envelope/smime"
)

// S/MIME interoperability with real peers: everything cafgate encrypts and signs is decrypted and
// verified by `openssl cms` (RSA-2048, RSA-4096 and P-256 recipients; AES-256-GCM and AES-256-CBC;
// RSA-OAEP and PKCS#1 v1.5) and, for what gpgsm 2.2 reads (AES-CBC with RSA PKCS#1 v1.5), by gpgsm;
// cafgate verifies and decrypts what both peers produce; and the refusals hold.

// smimeSample is a package as the gateway delivers it: outer fields, then the MIME entity.
const smimeSample = "From: CAF gateway <gateway@interop.cafgate.test>\r\n" +
	"To: <alice@interop.cafgate.test>\r\n" +
	"Subject: CAF episode CAF-2026-000123\r\n" +
	"Message-ID: <interop-1@cafgate.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"PKG\"\r\n" +
	"\r\n" +
	smimeSampleBody

const smimeSampleBody = "--PKG\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Sections withheld: none.\r\n" +
	"--PKG\r\n" +
	"Content-Type: application/pdf; name=\"caf-form.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"caf-form.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjcKJcfsj6IK\r\n" +
	"--PKG--\r\n"

// smimeSampleEntity is the protected entity of smimeSample.
const smimeSampleEntity = "Content-Type: multipart/mixed; boundary=\"PKG\"\r\n\r\n" + smimeSampleBody

func TestSMIMEOpenSSLReadsCafgate(t *testing.T) {
	t.Parallel()
	needTool(t, "openssl")
	p := getSMIMEPKI(t)
	dir := t.TempDir()
	type rcpt struct {
		name string
		kts  []cms.KeyTransport
	}
	rsa := []cms.KeyTransport{cms.RSAOAEPSHA256, cms.RSAOAEPSHA1, cms.RSAPKCS1v15}
	for _, r := range []rcpt{{"alice", rsa}, {"rsa4096", rsa}, {"p256", []cms.KeyTransport{cms.RSAOAEPSHA256}}} {
		for _, c := range []cms.Cipher{cms.AES256GCM, cms.AES256CBC} {
			for _, kt := range r.kts {
				for _, opaque := range []bool{false, true} {
					name := fmt.Sprintf("%s/%v/%v/opaque=%v", r.name, c, kt, opaque)
					if r.name == "p256" {
						name = fmt.Sprintf("%s/%v/ECDH/opaque=%v", r.name, c, opaque)
					}
					t.Run(name, func(t *testing.T) {
						id := p.ids[r.name]
						var sealed bytes.Buffer
						err := smime.Seal(&sealed, []byte(smimeSample), smime.SealOptions{
							Signer: p.signer("gateway"), Opaque: opaque,
							Encrypt: &cms.EncryptOptions{Cipher: c, Recipients: []cms.Recipient{
								{Cert: id.Cert, KeyTransport: kt},
								{Cert: p.ids["bob"].Cert}, // an escrow recipient alongside
							}},
						})
						if err != nil {
							t.Fatal(err)
						}
						opensslOpens(t, dir, sealed.Bytes(), id, p.caPath)
					})
				}
			}
		}
	}
}

// opensslOpens decrypts a sealed message with openssl as the recipient, verifies the signed entity
// inside against the CA, and compares the content with the sample.
func opensslOpens(t *testing.T, dir string, sealed []byte, id smimeID, caPath string) {
	t.Helper()
	in := writeTemp(t, dir, "sealed-"+randomToken(6)+".eml", sealed)
	signed, err := runTool(nil, nil, "openssl", "cms", "-decrypt", "-in", in, "-recip", id.certPath, "-inkey", id.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	content, err := runTool(signed, nil, "openssl", "cms", "-verify", "-CAfile", caPath)
	if err != nil {
		t.Fatalf("%v\n%.300s", err, signed)
	}
	if lf(content) != lf([]byte(smimeSampleEntity)) {
		t.Fatalf("openssl content:\n%s", content)
	}
}

func TestSMIMEDevCACertificates(t *testing.T) {
	t.Parallel()
	needTool(t, "openssl")
	dir := t.TempDir()
	now := time.Now()
	ca, err := devca.LoadOrCreate(filepath.Join(dir, "ca"), now)
	if err != nil {
		t.Fatal(err)
	}
	load := func(mail, name string) smimeID {
		certPath, keyPath, err := ca.IssueSMIME(dir, mail, name, now)
		if err != nil {
			t.Fatal(err)
		}
		certPEM, _ := os.ReadFile(certPath)
		keyPEM, _ := os.ReadFile(keyPath)
		certDER, err := pemDER(certPEM)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := pemDER(keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(certDER)
		if err != nil {
			t.Fatal(err)
		}
		key, err := x509.ParsePKCS8PrivateKey(keyDER)
		if err != nil {
			t.Fatal(err)
		}
		return smimeID{mail: mail, certPath: certPath, keyPath: keyPath, Leaf: leafOf(cert, key)}
	}
	gw := load("gateway@dev.cafgate.test", "cafgate gateway")
	alice := load("alice@dev.cafgate.test", "Alice")
	var sealed bytes.Buffer
	if err := smime.Seal(&sealed, []byte(smimeSample), smime.SealOptions{
		Signer:  &cms.Signer{Cert: gw.Cert, Key: gw.Key},
		Encrypt: &cms.EncryptOptions{Recipients: []cms.Recipient{{Cert: alice.Cert, BySKI: true}}},
	}); err != nil {
		t.Fatal(err)
	}
	opensslOpens(t, dir, sealed.Bytes(), alice, devca.CertPath(filepath.Join(dir, "ca")))
}

func TestSMIMEGpgsmReadsCafgate(t *testing.T) {
	t.Parallel()
	p := getSMIMEPKI(t)
	g := newGPGSM(t, p, "alice")
	dir := t.TempDir()
	for _, opaque := range []bool{false, true} {
		t.Run(fmt.Sprintf("opaque=%v", opaque), func(t *testing.T) {
			var sealed bytes.Buffer
			if err := smime.Seal(&sealed, []byte(smimeSample), smime.SealOptions{
				Signer: p.signer("gateway"), Opaque: opaque,
				Encrypt: &cms.EncryptOptions{Cipher: cms.AES256CBC, Recipients: []cms.Recipient{
					{Cert: p.ids["alice"].Cert, KeyTransport: cms.RSAPKCS1v15}}},
			}); err != nil {
				t.Fatal(err)
			}
			enc := writeTemp(t, dir, fmt.Sprintf("enc-%v.p7m", opaque), p7mBody(t, sealed.Bytes()))
			signed, err := g.withPass("--decrypt", enc)
			if err != nil {
				t.Fatal(err)
			}
			gpgsmVerifies(t, g, dir, Canonicalish(signed))
		})
	}
}

// Canonicalish makes a peer's output CRLF (gpgsm writes what it decrypted byte for byte; this only
// guards against a peer that does not).
func Canonicalish(b []byte) []byte { return smime.Canonical(b) }

// gpgsmVerifies checks with gpgsm a signed entity cafgate produced (multipart/signed or opaque) and
// compares the content.
func gpgsmVerifies(t *testing.T, g *gpgsmHome, dir string, signed []byte) {
	t.Helper()
	o, err := smime.Open(signed, smime.OpenOptions{Verify: cms.VerifyOptions{Roots: getSMIMEPKI(t).ca.Roots}})
	if err != nil || len(o.Layers) != 1 {
		t.Fatalf("cafgate cannot read its own signed entity: %v", err)
	}
	var args []string
	if o.Layers[0].Kind == smime.SignedDetached {
		first, sig := splitDetachedForPeer(t, signed)
		args = []string{writeTemp(t, dir, "sig.p7s", sig), writeTemp(t, dir, "content", first)}
	} else {
		args = []string{"--output", filepath.Join(dir, "opaque.out"), writeTemp(t, dir, "opaque.p7m", p7mBody(t, signed))}
		os.Remove(filepath.Join(dir, "opaque.out"))
	}
	out, err := g.run(nil, append([]string{"--status-fd", "1", "--verify"}, args...)...)
	if err != nil || !bytes.Contains(out, []byte("[GNUPG:] GOODSIG")) || !bytes.Contains(out, []byte("[GNUPG:] TRUST_FULLY")) {
		t.Fatalf("gpgsm: %v\n%s", err, out)
	}
	if o.Layers[0].Kind == smime.SignedOpaque {
		content, _ := os.ReadFile(filepath.Join(dir, "opaque.out"))
		if lf(content) != lf([]byte(smimeSampleEntity)) {
			t.Fatalf("gpgsm content:\n%s", content)
		}
	}
}

// splitDetachedForPeer returns the first part and the decoded signature of a multipart/signed entity.
func splitDetachedForPeer(t *testing.T, signed []byte) (first, sig []byte) {
	t.Helper()
	i := bytes.Index(signed, []byte("boundary=\""))
	b := signed[i+10:]
	delim := []byte("--" + string(b[:bytes.IndexByte(b, '"')]))
	start := bytes.Index(signed, append(bytes.Clone(delim), '\r', '\n')) + len(delim) + 2
	end := start + bytes.Index(signed[start:], append([]byte("\r\n"), delim...))
	first = signed[start:end]
	rest := signed[end+2+len(delim)+2:]
	sigPart := rest[:bytes.Index(rest, append([]byte("\r\n"), delim...))]
	h := bytes.Index(sigPart, []byte("\r\n\r\n"))
	sig, err := decodeB64(sigPart[h+4:])
	if err != nil {
		t.Fatal(err)
	}
	return first, sig
}

func leafOf(cert *x509.Certificate, key any) cmstest.Leaf {
	return cmstest.Leaf{Cert: cert, Key: key.(crypto.Signer)}
}

func TestSMIMECafgateReadsOpenSSL(t *testing.T) {
	t.Parallel()
	needTool(t, "openssl")
	p := getSMIMEPKI(t)
	dir := t.TempDir()
	entity := writeTemp(t, dir, "entity", []byte(smimeSampleEntity))
	alice, gw := p.ids["alice"], p.ids["gateway"]
	opts := smime.OpenOptions{Decrypter: p.decrypter("gateway"), Verify: cms.VerifyOptions{Roots: p.ca.Roots}}
	sign := []string{"cms", "-sign", "-md", "sha256", "-signer", alice.certPath, "-inkey", alice.keyPath}
	cases := []struct {
		name  string
		args  [][]string // a pipeline of openssl invocations, the first reading the entity
		kinds []smime.LayerKind
		c     cms.Cipher
	}{
		{"sign detached", [][]string{append(sign, "-in", entity)}, []smime.LayerKind{smime.SignedDetached}, 0},
		{"sign opaque", [][]string{append(sign, "-nodetach", "-in", entity)}, []smime.LayerKind{smime.SignedOpaque}, 0},
		{"sign opaque stream", [][]string{append(sign, "-nodetach", "-stream", "-in", entity)}, []smime.LayerKind{smime.SignedOpaque}, 0},
		{"gcm v1.5", [][]string{{"cms", "-encrypt", "-aes-256-gcm", "-in", entity, gw.certPath}}, []smime.LayerKind{smime.Encrypted}, cms.AES256GCM},
		{"cbc v1.5", [][]string{{"cms", "-encrypt", "-aes-256-cbc", "-in", entity, gw.certPath}}, []smime.LayerKind{smime.Encrypted}, cms.AES256CBC},
		{"gcm oaep-sha256", [][]string{{"cms", "-encrypt", "-aes-256-gcm", "-in", entity, "-recip", gw.certPath,
			"-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"}}, []smime.LayerKind{smime.Encrypted}, cms.AES256GCM},
		{"cbc oaep-sha1", [][]string{{"cms", "-encrypt", "-aes-256-cbc", "-in", entity, "-recip", gw.certPath,
			"-keyopt", "rsa_padding_mode:oaep"}}, []smime.LayerKind{smime.Encrypted}, cms.AES256CBC},
		{"gcm stream", [][]string{{"cms", "-encrypt", "-aes-256-gcm", "-stream", "-in", entity, gw.certPath}}, []smime.LayerKind{smime.Encrypted}, cms.AES256GCM},
		{"sign then encrypt", [][]string{append(sign, "-in", entity), {"cms", "-encrypt", "-aes-256-gcm", gw.certPath}},
			[]smime.LayerKind{smime.Encrypted, smime.SignedDetached}, cms.AES256GCM},
		{"encrypt then sign", [][]string{{"cms", "-encrypt", "-aes-256-cbc", "-in", entity, gw.certPath}, sign},
			[]smime.LayerKind{smime.SignedDetached, smime.Encrypted}, cms.AES256CBC},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var msg []byte
			for _, args := range c.args {
				out, err := runTool(msg, nil, "openssl", args...)
				if err != nil {
					t.Fatal(err)
				}
				msg = out
			}
			msg = append([]byte("From: <alice@interop.cafgate.test>\r\nSubject: from openssl\r\n"), msg...)
			o, err := smime.Open(msg, opts)
			if err != nil {
				t.Fatalf("%v\n%.400s", err, msg)
			}
			checkOpenedSample(t, o, c.kinds)
			for _, l := range o.Layers {
				if l.Kind == smime.Encrypted && l.Cipher != c.c {
					t.Errorf("cipher %v, want %v", l.Cipher, c.c)
				}
				if l.Signature != nil && !l.Signature.Signer.Equal(alice.Cert) {
					t.Error("signer is not alice")
				}
			}
		})
	}
}

func checkOpenedSample(t *testing.T, o *smime.Opened, kinds []smime.LayerKind) {
	t.Helper()
	if len(o.Layers) != len(kinds) {
		t.Fatalf("layers %v, want %v", o.Layers, kinds)
	}
	for i, k := range kinds {
		if o.Layers[i].Kind != k {
			t.Fatalf("layer %d: %v, want %v", i, o.Layers[i].Kind, k)
		}
	}
	if lf(o.Entity) != lf([]byte(smimeSampleEntity)) {
		t.Fatalf("entity:\n%s", o.Entity)
	}
}

func TestSMIMECafgateReadsGpgsm(t *testing.T) {
	t.Parallel()
	p := getSMIMEPKI(t)
	g := newGPGSM(t, p, "alice")
	if err := g.importCert(p.ids["gateway"].certPath); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	entity := writeTemp(t, dir, "entity", []byte(smimeSampleEntity))
	opts := smime.OpenOptions{Decrypter: p.decrypter("gateway"), Verify: cms.VerifyOptions{Roots: p.ca.Roots}}
	alice := p.ids["alice"].mail

	sig, err := g.withPass("-u", alice, "--detach-sign", entity)
	if err != nil {
		t.Fatal(err)
	}
	o, err := smime.Open(wrapDetached([]byte(smimeSampleEntity), sig), opts)
	if err != nil {
		t.Fatal("gpgsm detached:", err)
	}
	checkOpenedSample(t, o, []smime.LayerKind{smime.SignedDetached})

	opaque, err := g.withPass("-u", alice, "--sign", entity)
	if err != nil {
		t.Fatal(err)
	}
	if o, err = smime.Open(wrapP7M("signed-data", opaque), opts); err != nil {
		t.Fatal("gpgsm opaque:", err)
	}
	checkOpenedSample(t, o, []smime.LayerKind{smime.SignedOpaque})

	for _, algo := range []string{"AES", "AES256"} {
		enc, err := g.run(nil, "--cipher-algo", algo, "-r", p.ids["gateway"].mail, "--encrypt", entity)
		if err != nil {
			t.Fatal(err)
		}
		if o, err = smime.Open(wrapP7M("enveloped-data", enc), opts); err != nil {
			t.Fatalf("gpgsm encrypted %s: %v", algo, err)
		}
		checkOpenedSample(t, o, []smime.LayerKind{smime.Encrypted})
	}
}

func TestSMIMERefusals(t *testing.T) {
	t.Parallel()
	needTool(t, "openssl")
	p := getSMIMEPKI(t)
	dir := t.TempDir()
	entity := writeTemp(t, dir, "entity", []byte(smimeSampleEntity))
	signBy := func(name string, extra ...string) []byte {
		id := p.ids[name]
		out, err := runTool(nil, nil, "openssl", append([]string{"cms", "-sign", "-md", "sha256", "-in", entity,
			"-signer", id.certPath, "-inkey", id.keyPath}, extra...)...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	mustBeAlice := func(s *x509.Certificate, _ []*x509.Certificate) error {
		if len(s.EmailAddresses) != 1 || s.EmailAddresses[0] != p.ids["alice"].mail {
			return errors.New("the signer is not the signed-in practitioner")
		}
		return nil
	}
	opts := smime.OpenOptions{Decrypter: p.decrypter("gateway"), Verify: cms.VerifyOptions{Roots: p.ca.Roots, Check: mustBeAlice}}
	good := signBy("alice")
	if _, err := smime.Open(good, opts); err != nil {
		t.Fatal("the good message is refused, so the refusals prove nothing:", err)
	}
	tampered := bytes.Replace(good, []byte("Sections withheld: none."), []byte("Sections withheld: some."), 1)
	if _, err := smime.Open(tampered, opts); !errors.Is(err, cms.ErrBadSignature) {
		t.Errorf("tampered content: %v", err)
	}
	if _, err := smime.Open(signBy("bob"), opts); err == nil || !strings.Contains(err.Error(), "not the signed-in practitioner") {
		t.Errorf("another practitioner's key: %v", err)
	}
	if _, err := smime.Open(signBy("mallory"), opts); !errors.Is(err, cms.ErrUntrusted) {
		t.Errorf("untrusted root: %v", err)
	}
	opaque := signBy("alice", "-nodetach", "-outform", "DER")
	for _, n := range []int{len(opaque) / 3, len(opaque) - 40, len(opaque) - 1} {
		if _, err := smime.Open(wrapP7M("signed-data", opaque[:n]), opts); err == nil {
			t.Errorf("signed CMS truncated to %d accepted", n)
		}
	}
	enc, err := runTool(nil, nil, "openssl", "cms", "-encrypt", "-aes-256-gcm", "-in", entity, "-outform", "DER", p.ids["gateway"].certPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{len(enc) / 2, len(enc) - 1} {
		if _, err := smime.Open(wrapP7M("authEnveloped-data", enc[:n]), opts); !errors.Is(err, cms.ErrDecrypt) {
			t.Errorf("encrypted CMS truncated to %d: %v", n, err)
		}
	}
	flipped := bytes.Clone(enc)
	flipped[len(flipped)-30] ^= 1
	if _, err := smime.Open(wrapP7M("authEnveloped-data", flipped), opts); !errors.Is(err, cms.ErrDecrypt) {
		t.Errorf("tampered ciphertext: %v", err)
	}
}
