package integration

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cafgate/envelope/cms"
	"cafgate/envelope/cms/cmstest"
)

// S/MIME interoperability helpers: a throw-away PKI written to files, and the real peers (the openssl
// command line and GnuPG's gpgsm in a throw-away GNUPGHOME).

// smimePKI is one CA with the gateway, two practitioners and recipients of each key type, on disk.
type smimePKI struct {
	dir      string
	ca       *cmstest.CA
	caPath   string
	stranger *cmstest.CA // an untrusted CA
	ids      map[string]smimeID
}

type smimeID struct {
	cmstest.Leaf
	mail, certPath, keyPath string
}

var smimePKIOnce = sync.OnceValues(func() (*smimePKI, error) {
	dir, err := os.MkdirTemp("", "cafgate-smime-pki-")
	if err != nil {
		return nil, err
	}
	now := time.Now()
	p := &smimePKI{dir: dir, ids: map[string]smimeID{}}
	if p.ca, err = cmstest.NewCA("cafgate interop CA", now); err != nil {
		return nil, err
	}
	if p.stranger, err = cmstest.NewCA("untrusted CA", now); err != nil {
		return nil, err
	}
	p.caPath = filepath.Join(dir, "ca.pem")
	if err := cmstest.WriteCert(p.caPath, p.ca.Cert); err != nil {
		return nil, err
	}
	for _, id := range []struct {
		name string
		kt   cmstest.KeyType
		ca   *cmstest.CA
	}{
		{"gateway", cmstest.RSA2048, p.ca}, {"alice", cmstest.RSA2048, p.ca}, {"bob", cmstest.RSA2048, p.ca},
		{"rsa4096", cmstest.RSA4096, p.ca}, {"p256", cmstest.P256, p.ca}, {"mallory", cmstest.RSA2048, p.stranger},
	} {
		mail := id.name + "@interop.cafgate.test"
		l, err := id.ca.Issue(mail, id.kt)
		if err != nil {
			return nil, err
		}
		cert, key, err := l.WritePEM(dir, id.name)
		if err != nil {
			return nil, err
		}
		p.ids[id.name] = smimeID{Leaf: l, mail: mail, certPath: cert, keyPath: key}
	}
	return p, nil
})

func getSMIMEPKI(t testing.TB) *smimePKI {
	t.Helper()
	p, err := smimePKIOnce()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *smimePKI) signer(name string) *cms.Signer {
	id := p.ids[name]
	return &cms.Signer{Cert: id.Cert, Key: id.Key}
}

func (p *smimePKI) decrypter(name string) *cms.Decrypter {
	id := p.ids[name]
	return &cms.Decrypter{Cert: id.Cert, Key: id.Key}
}

func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed (integration/ci.sh installs it)", name)
	}
}

// runTool runs a peer with stdin and returns its stdout; the error carries its stderr.
func runTool(stdin []byte, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args[:min(2, len(args))], " "), err, errb.String())
	}
	return out.Bytes(), nil
}

func writeTemp(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// lf normalises line endings for comparing what a peer printed with what was sent.
func lf(b []byte) string { return strings.ReplaceAll(string(b), "\r\n", "\n") }

// gpgsmHome is a throw-away GNUPGHOME trusting the interop CA, holding the given identities' keys.
type gpgsmHome struct {
	home string
	env  []string
}

const gpgsmPass = "interop"

func newGPGSM(t testing.TB, p *smimePKI, withKeys ...string) *gpgsmHome {
	t.Helper()
	needTool(t, "gpgsm")
	needTool(t, "openssl")
	// A short path: gpg-agent's socket lives in GNUPGHOME and socket paths are limited to 108 octets.
	home, err := os.MkdirTemp("", "gs-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	g := &gpgsmHome{home: home, env: []string{"GNUPGHOME=" + home}}
	t.Cleanup(func() {
		_, _ = runTool(nil, g.env, "gpgconf", "--kill", "all")
		os.RemoveAll(home)
	})
	if _, err := g.run(nil, "--import", p.caPath); err != nil {
		t.Fatal(err)
	}
	fpr := strings.ToUpper(fmt.Sprintf("%X", sha1Sum(p.ca.Cert.Raw)))
	if err := os.WriteFile(filepath.Join(home, "trustlist.txt"), []byte(fpr+" S relax\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range withKeys {
		id := p.ids[name]
		p12 := filepath.Join(home, name+".p12")
		// gpgsm 2.2 reads only the legacy PKCS#12 algorithms.
		if _, err := runTool(nil, nil, "openssl", "pkcs12", "-export", "-legacy", "-in", id.certPath, "-inkey", id.keyPath,
			"-out", p12, "-passout", "pass:"+gpgsmPass); err != nil {
			t.Fatal(err)
		}
		if _, err := g.run([]byte(gpgsmPass), "--pinentry-mode", "loopback", "--passphrase-fd", "0", "--import", p12); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// run runs gpgsm in batch mode without CRL checks (the interop CA publishes none).
func (g *gpgsmHome) run(stdin []byte, args ...string) ([]byte, error) {
	return runTool(stdin, g.env, "gpgsm", append([]string{"--batch", "--disable-crl-checks", "--disable-policy-checks"}, args...)...)
}

// importCert makes a certificate known to gpgsm (to encrypt to it).
func (g *gpgsmHome) importCert(path string) error {
	_, err := g.run(nil, "--import", path)
	return err
}

// withPass runs gpgsm with the key passphrase on fd 0.
func (g *gpgsmHome) withPass(args ...string) ([]byte, error) {
	return g.run([]byte(gpgsmPass), append([]string{"--pinentry-mode", "loopback", "--passphrase-fd", "0"}, args...)...)
}

// p7mBody decodes the base64 body of a message whose top-level entity is application/pkcs7-mime.
func p7mBody(t testing.TB, msg []byte) []byte {
	t.Helper()
	i := bytes.Index(msg, []byte("\r\n\r\n"))
	if i < 0 || !bytes.Contains(msg[:i], []byte("application/pkcs7-mime")) {
		t.Fatalf("not application/pkcs7-mime:\n%.500s", msg)
	}
	der, err := decodeB64(msg[i+4:])
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// wrapP7M wraps CMS from a peer as an application/pkcs7-mime message.
func wrapP7M(smimeType string, der []byte) []byte {
	var b bytes.Buffer
	b.WriteString("From: <peer@interop.cafgate.test>\r\nSubject: interop\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: application/pkcs7-mime; smime-type=" + smimeType + "; name=smime.p7m\r\n")
	b.WriteString("Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=smime.p7m\r\n\r\n")
	b.WriteString(encodeB64Lines(der))
	return b.Bytes()
}

// wrapDetached builds multipart/signed from an entity and a detached signature made by a peer.
func wrapDetached(entity, sig []byte) []byte {
	var b bytes.Buffer
	b.WriteString("From: <peer@interop.cafgate.test>\r\nSubject: interop\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"SIG\"\r\n\r\n")
	b.WriteString("--SIG\r\n")
	b.Write(entity)
	b.WriteString("\r\n--SIG\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	b.WriteString(encodeB64Lines(sig))
	b.WriteString("--SIG--\r\n")
	return b.Bytes()
}

var errNoPEM = errors.New("no PEM block")

// pemDER returns the DER of the first PEM block in b.
func pemDER(b []byte) ([]byte, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errNoPEM
	}
	return blk.Bytes, nil
}

func sha1Sum(b []byte) []byte {
	s := sha1.Sum(b)
	return s[:]
}

func decodeB64(b []byte) ([]byte, error) {
	clean := bytes.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, b)
	return base64.StdEncoding.DecodeString(string(clean))
}

func encodeB64Lines(der []byte) string {
	s := base64.StdEncoding.EncodeToString(der)
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s + "\r\n")
	return b.String()
}
