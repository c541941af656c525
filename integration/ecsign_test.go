package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cafgate/envelope/cms"
	"cafgate/envelope/smime"
)

// TestECSignDevQuickStart: `cafgate dev` signs the copies it seals with its P-256 signing certificate;
// a delivered copy, decrypted by openssl, verifies with openssl cms -verify and with gpgsm --verify,
// carries the gateway's RSA certificate and names it (SMIMEEncryptionKeyPreference, seen by openssl
// and by cafgate's own parser); a reply gpgsm encrypts to that RSA certificate is accepted and
// delivered. Then the signing files are reused by the next run, and a dev directory without them (as
// made before they existed) gets them on its next run.
func TestECSignDevQuickStart(t *testing.T) {
	t.Parallel()
	needTool(t, "openssl")
	needTool(t, "gpgsm")
	g := newGateway(t, filepath.Join(t.TempDir(), "dev"))
	info := g.start()
	if info.Listen["imaps"] == "" {
		t.Skip("cafgate dev lists no imaps listener")
	}
	sm := filepath.Join(info.Dir, "smime")
	signCert, signKey := filepath.Join(sm, "gateway-sign@cafgate.test.pem"), filepath.Join(sm, "gateway-sign@cafgate.test.key")
	rsaCertPath := filepath.Join(sm, "gateway@cafgate.test.pem")
	conf, err := os.ReadFile(info.Config)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(conf, []byte("sign_cert_file = \"smime/gateway-sign@cafgate.test.pem\"")) ||
		!bytes.Contains(conf, []byte("sign_key_file = \"smime/gateway-sign@cafgate.test.key\"")) {
		t.Fatalf("the dev configuration does not set the signing certificate:\n%s", conf)
	}
	ecCert, rsaCert := ecReadPEMCert(t, signCert), ecReadPEMCert(t, rsaCertPath)
	if k, ok := ecCert.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() || ecCert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Fatalf("signing certificate: key %T, key usage %v; want P-256, digitalSignature", ecCert.PublicKey, ecCert.KeyUsage)
	}

	acc := map[string]account{}
	for _, a := range info.Accounts {
		acc[a.Mail] = a
	}
	rita, gwen := acc["rita.notreal@police.cafgate.test"], acc["gwen.testcase@socialcare.cafgate.test"]
	if rita.Cert == "" || gwen.Cert == "" {
		t.Fatal("dev.json: Rita and Gwen should both have certificates")
	}
	tlsConf := tlsConfig(t, info)
	dir := t.TempDir()

	// 1. Gwen's package to Rita: the copy Rita receives, decrypted with her key.
	marker := "EC-Signed-Marker-" + randomToken(8)
	if r := submitOnce(info, "submission", tlsConf, gwen, []string{rita.Mail}, newMessage(gwen.Mail, rita.Mail, "for Rita", marker)); r.Reply.Code != 250 {
		t.Fatalf("Gwen's package: %s", r)
	}
	copyMsg := waitInbox(t, info, tlsConf, rita, 1)[0]
	signed, err := runTool(nil, nil, "openssl", "cms", "-decrypt", "-in", writeTemp(t, dir, "copy.eml", copyMsg), "-recip", rita.Cert, "-inkey", rita.Key)
	if err != nil {
		t.Fatalf("openssl cms -decrypt: %v", err)
	}
	signed = Canonicalish(signed)

	// 2. openssl verifies it and shows the attribute naming the RSA certificate.
	if out, err := runTool(signed, nil, "openssl", "cms", "-verify", "-CAfile", info.CACert); err != nil || !bytes.Contains(out, []byte(marker)) {
		t.Fatalf("openssl cms -verify: %v\n%.400s", err, out)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ecReadPEMCert(t, info.CACert))
	o, err := smime.Open(signed, smime.OpenOptions{Verify: cms.VerifyOptions{Roots: roots}})
	if err != nil || len(o.Layers) != 1 {
		t.Fatalf("cafgate cannot read the signed copy: %v", err)
	}
	sig := o.Signature()
	if !sig.Signer.Equal(ecCert) {
		t.Fatalf("the copy is signed by %s (%T), not the P-256 signing certificate", sig.Signer.Subject, sig.Signer.PublicKey)
	}
	if sig.EncryptionCert == nil || !sig.EncryptionCert.Equal(rsaCert) {
		t.Fatalf("the signature names %v for encryption, want the RSA gateway certificate", sig.EncryptionCert)
	}
	var sigDER []byte
	var gpgArgs []string
	if o.Layers[0].Kind == smime.SignedDetached {
		first, detached := splitDetachedForPeer(t, signed)
		sigDER = detached
		gpgArgs = []string{writeTemp(t, dir, "sig.p7s", detached), writeTemp(t, dir, "content", first)}
	} else {
		sigDER = p7mBody(t, signed)
		gpgArgs = []string{"--output", filepath.Join(dir, "opaque.out"), writeTemp(t, dir, "opaque.p7m", sigDER)}
	}
	printed, err := runTool(sigDER, nil, "openssl", "cms", "-cmsout", "-print", "-inform", "DER")
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(printed, []byte("id-smime-aa-encrypKeyPref"))
	if at < 0 {
		t.Fatalf("openssl shows no SMIMEEncryptionKeyPreference:\n%s", printed)
	}
	section, _, _ := strings.Cut(string(printed[at:]), "object:")
	if serial := fmt.Sprintf(":%X", rsaCert.SerialNumber); !strings.Contains(strings.ReplaceAll(section, ":0", ":"), strings.ReplaceAll(serial, ":0", ":")) {
		t.Errorf("the attribute does not carry the RSA certificate's serial %s:\n%s", serial, section)
	}

	// 3. gpgsm 2.2 verifies the P-256 signature.
	gh := ecDevGPGSM(t, info.CACert)
	out, err := gh.run(nil, append([]string{"--status-fd", "1", "--verify"}, gpgArgs...)...)
	if err != nil || !bytes.Contains(out, []byte("[GNUPG:] GOODSIG")) || !bytes.Contains(out, []byte("[GNUPG:] TRUST_FULLY")) {
		t.Fatalf("gpgsm --verify: %v\n%s", err, out)
	}

	// 4. Rita replies encrypted with gpgsm to the certificate the signature names: the RSA one.
	encPath := writeTemp(t, dir, "encrypt-to.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sig.EncryptionCert.Raw}))
	if err := gh.importCert(encPath); err != nil {
		t.Fatal(err)
	}
	replyMarker := "EC-Reply-Marker-" + randomToken(8)
	entity := writeTemp(t, dir, "reply", []byte("Content-Type: text/plain; charset=utf-8\r\n\r\n"+replyMarker+"\r\n"))
	fpr := fmt.Sprintf("%X", sha1Sum(sig.EncryptionCert.Raw))
	enc, err := gh.run(nil, "--cipher-algo", "AES256", "-r", fpr, "--encrypt", entity)
	if err != nil {
		t.Fatalf("gpgsm --encrypt to the RSA gateway certificate: %v", err)
	}
	reply := "From: <" + rita.Mail + ">\r\nTo: <" + gwen.Mail + ">\r\nSubject: " + devEpisode + " encrypted reply\r\n" +
		"Message-ID: <" + randomToken(12) + "@it.cafgate.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n" +
		"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=smime.p7m\r\n\r\n" + encodeB64Lines(enc)
	if r := submitOnce(info, "submission", tlsConf, rita, []string{gwen.Mail}, []byte(reply)); r.Reply.Code != 250 {
		t.Fatalf("Rita's reply encrypted to the gateway: %s", r)
	}
	gwenCopy := waitInbox(t, info, tlsConf, gwen, 1)[0]
	dec, err := runTool(nil, nil, "openssl", "cms", "-decrypt", "-in", writeTemp(t, dir, "gwen.eml", gwenCopy), "-recip", gwen.Cert, "-inkey", gwen.Key)
	if err != nil {
		t.Fatalf("openssl cms -decrypt of Gwen's copy: %v", err)
	}
	if out, err := runTool(dec, nil, "openssl", "cms", "-verify", "-CAfile", info.CACert); err != nil || !bytes.Contains(out, []byte(replyMarker)) {
		t.Fatalf("Gwen's copy of the reply: %v\n%.400s", err, out)
	}
	g.stop()

	// 5. The next run reuses the signing files; a dev directory without them gets new ones.
	certBefore, keyBefore := ecReadFile(t, signCert), ecReadFile(t, signKey)
	g.start()
	if !bytes.Equal(ecReadFile(t, signCert), certBefore) || !bytes.Equal(ecReadFile(t, signKey), keyBefore) {
		t.Error("a second run replaced the signing certificate")
	}
	g.stop()
	for _, p := range []string{signCert, signKey} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	old := bytes.ReplaceAll(conf, []byte("sign_cert_file = \"smime/gateway-sign@cafgate.test.pem\"\n"), nil)
	if err := os.WriteFile(info.Config, bytes.ReplaceAll(old, []byte("sign_key_file = \"smime/gateway-sign@cafgate.test.key\"\n"), nil), 0o600); err != nil {
		t.Fatal(err)
	}
	info = g.start()
	if again := ecReadPEMCert(t, signCert); again.Equal(ecCert) || again.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Error("the run after the signing files were removed did not issue new ones")
	}
	if conf, err := os.ReadFile(info.Config); err != nil || !bytes.Contains(conf, []byte("sign_cert_file = ")) {
		t.Errorf("the rewritten dev configuration does not set sign_cert_file: %v", err)
	}
	g.stop()
	g.requireVerifyClean(-1)
}

// ecDevGPGSM is a throw-away GNUPGHOME trusting the development CA (its CRL checks off, as for the
// interop CA: gpgsm would fetch the file: distribution point through dirmngr).
func ecDevGPGSM(t *testing.T, caPath string) *gpgsmHome {
	t.Helper()
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
	if _, err := g.run(nil, "--import", caPath); err != nil {
		t.Fatal(err)
	}
	fpr := fmt.Sprintf("%X", sha1Sum(ecReadPEMCert(t, caPath).Raw))
	if err := os.WriteFile(filepath.Join(home, "trustlist.txt"), []byte(fpr+" S relax\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return g
}

func ecReadPEMCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(ecReadFile(t, path))
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ecReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
