package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"cafgate/certs/devca"
	"cafgate/certs/validate"
	"cafgate/envelope/cms"
	"cafgate/envelope/smime"
)

// TestSMIMECipherChoiceAndEscrow runs through `cafgate dev`:
//   - Rita (police) submits mail signed by `openssl cms -sign -keyid` with RSASSA-PSS, whose default
//     SMIMECapabilities list AES-CBC but no AES-GCM; Gwen (social care), of whose client nothing is
//     known, gets her copy as AES-256-GCM AuthEnvelopedData, with no escrow (the dev escrow covers
//     police only).
//   - Gwen then sends a package to Rita: the gateway remembered Rita's capabilities, so her copy is
//     AES-256-CBC EnvelopedData, also encrypted to the police archive (the dev [[smime.escrow]]).
//
// `openssl cms -decrypt` reads each copy with the recipient's key, the archive key reads Rita's copy
// and not Gwen's, and the ledger's "encrypted" events record cipher, choice and escrow.
func TestSMIMECipherChoiceAndEscrow(t *testing.T) {
	t.Parallel()
	needTool(t, "openssl")
	g := startGateway(t)
	info := g.Info()
	if info.Listen["imaps"] == "" {
		t.Skip("cafgate dev lists no imaps listener")
	}
	acc := map[string]account{}
	for _, a := range info.Accounts {
		acc[a.Mail] = a
	}
	rita, gwen := acc["rita.notreal@police.cafgate.test"], acc["gwen.testcase@socialcare.cafgate.test"]
	if rita.Cert == "" || gwen.Cert == "" {
		t.Fatal("dev.json: Rita and Gwen should both have certificates")
	}
	archiveCert := filepath.Join(info.Dir, "smime", "archive@police.cafgate.test.pem")
	archiveKey := filepath.Join(info.Dir, "smime", "archive@police.cafgate.test.key")
	conf := tlsConfig(t, info)
	dir := t.TempDir()

	// 1. Rita's signed submission (opaque, by openssl: default capabilities, no GCM), her signer
	// identified by subject key identifier and the signature RSASSA-PSS.
	inner := writeTemp(t, dir, "inner.txt", []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nRita's signed notes "+randomToken(6)+"\r\n"))
	signed, err := runTool(nil, nil, "openssl", "cms", "-sign", "-in", inner, "-signer", rita.Cert, "-inkey", rita.Key,
		"-md", "sha256", "-binary", "-nodetach", "-keyid", "-keyopt", "rsa_padding_mode:pss")
	if err != nil {
		t.Fatalf("openssl cms -sign: %v", err)
	}
	head := "From: <" + rita.Mail + ">\r\nTo: <" + gwen.Mail + ">\r\nSubject: " + devEpisode + " signed by openssl\r\n"
	if r := submitOnce(info, "submission", conf, rita, []string{gwen.Mail}, crlfBytes(append([]byte(head), signed...))); r.Reply.Code != 250 {
		t.Fatalf("Rita's signed submission: %s", r)
	}
	gwenCopy := waitInbox(t, info, conf, gwen, 1)[0]

	// 2. Gwen's plain package to Rita.
	marker := "Package-Marker-" + randomToken(8)
	if r := submitOnce(info, "submission", conf, gwen, []string{rita.Mail}, newMessage(gwen.Mail, rita.Mail, "for Rita", marker)); r.Reply.Code != 250 {
		t.Fatalf("Gwen's package: %s", r)
	}
	ritaCopy := waitInbox(t, info, conf, rita, 1)[0]

	if !bytes.Contains(gwenCopy, []byte("smime-type=authEnveloped-data")) {
		t.Errorf("Gwen's copy is not AuthEnvelopedData:\n%.400s", gwenCopy)
	}
	if !bytes.Contains(ritaCopy, []byte("smime-type=enveloped-data")) {
		t.Errorf("Rita's copy is not EnvelopedData (CBC):\n%.400s", ritaCopy)
	}
	decrypt := func(name string, msg []byte, cert, key string) ([]byte, error) {
		in := writeTemp(t, dir, name, msg)
		return runTool(nil, nil, "openssl", "cms", "-decrypt", "-in", in, "-recip", cert, "-inkey", key)
	}
	verify := func(what string, dec []byte, want string) {
		out, err := runTool(dec, nil, "openssl", "cms", "-verify", "-CAfile", info.CACert)
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("%s: openssl cms -verify: %v\n%.300s", what, err, out)
		}
	}
	dec, err := decrypt("gwen.eml", gwenCopy, gwen.Cert, gwen.Key)
	if err != nil {
		t.Fatalf("openssl cms -decrypt of Gwen's GCM copy: %v", err)
	}
	verify("Gwen's copy", dec, "Rita's signed notes")
	if _, err := decrypt("gwen2.eml", gwenCopy, archiveCert, archiveKey); err == nil {
		t.Error("the police archive decrypted a copy for social care")
	}
	for _, k := range [][2]string{{rita.Cert, rita.Key}, {archiveCert, archiveKey}} {
		dec, err := decrypt("rita.eml", ritaCopy, k[0], k[1])
		if err != nil {
			t.Fatalf("openssl cms -decrypt of Rita's CBC copy with %s: %v", filepath.Base(k[0]), err)
		}
		verify("Rita's copy with "+filepath.Base(k[0]), dec, marker)
	}

	// 3. The ledger.
	archiveFP := certFingerprint(t, archiveCert)
	g.stop()
	out, errs, code := ledgerCLI(t, "ledger", "show", "--config", filepath.Join(g.dir, "cafgate.toml"), "--type", "encrypted",
		"--since", "2000-01-01", "--operator", "it", "--reason", "integration test", "--json")
	if code != 0 {
		t.Fatalf("ledger show exited %d: %s", code, errs)
	}
	var shown []struct {
		Event struct {
			Data struct {
				Recipient string   `json:"recipient"`
				Cipher    string   `json:"cipher"`
				Choice    string   `json:"choice"`
				Escrow    []string `json:"escrow"`
			} `json:"data"`
		} `json:"event"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("ledger show --json: %v in %s", err, truncate(out, 400))
	}
	got := map[string]string{}
	for _, s := range shown {
		d := s.Event.Data
		got[d.Recipient] = d.Cipher + " " + d.Choice + " " + strings.Join(d.Escrow, ",")
	}
	want := map[string]string{
		gwen.Mail: "AES-256-GCM default ",
		rita.Mail: "AES-256-CBC signed-mail " + archiveFP,
	}
	for m, w := range want {
		if got[m] != w {
			t.Errorf("encrypted event for %s: %q, want %q (all: %s)", m, got[m], w, truncate(out, 600))
		}
	}
	g.requireVerifyClean(-1)
}

// waitInbox returns the n messages of who's INBOX, waiting up to 60 s for them.
func waitInbox(t *testing.T, info *devInfo, conf *tls.Config, who account, n int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		msgs, err := fetchInbox(info, conf, who)
		if err == nil && len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("INBOX of %s: %d messages, err %v; want %d", who.Mail, len(msgs), err, n)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func fetchInbox(info *devInfo, conf *tls.Config, who account) ([][]byte, error) {
	c, err := imapclient.DialTLS(info.Listen["imaps"], &imapclient.Options{TLSConfig: conf})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Login(who.Mail, who.Password).Wait(); err != nil {
		return nil, err
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages == 0 {
		return nil, err
	}
	var set imap.SeqSet
	set.AddRange(1, sel.NumMessages)
	msgs, err := c.Fetch(set, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, m := range msgs {
		// The delivery reports a sender receives about their own packages are not what these tests
		// look for (copies and link notifications): leave them out.
		if len(m.BodySection) == 1 && !isDeliveryReport(m.BodySection[0].Bytes) {
			out = append(out, m.BodySection[0].Bytes)
		}
	}
	_ = c.Logout().Wait()
	return out, nil
}

// isDeliveryReport tells the gateway's report to a sender about a package (mailbox/report.go) by its
// Message-ID and Subject.
func isDeliveryReport(msg []byte) bool {
	hdr, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	return bytes.Contains(hdr, []byte("\r\nSubject: Delivery report for package ")) &&
		bytes.Contains(hdr, []byte("\r\nMessage-ID: <receipt."))
}

func crlfBytes(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}

func certFingerprint(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("openssl", "x509", "-in", path, "-noout", "-fingerprint", "-sha256").Output()
	if err != nil {
		t.Fatal(err)
	}
	_, fp, _ := strings.Cut(strings.TrimSpace(string(out)), "=")
	return strings.ToLower(strings.ReplaceAll(fp, ":", ""))
}

// TestSMIMEDevRevocationStrict: `cafgate dev` certificates name the development CA's CRL file as
// their distribution point and the development anchor is strict. Rita's signed submission is
// accepted while her certificate is good; once the development CA revokes it (and `cafgate dev`
// rewrites the CRL at its next start), her signature is refused with 550 5.7.1 and a package to her
// is not encrypted to it: she gets a notification instead.
func TestSMIMEDevRevocationStrict(t *testing.T) {
	t.Parallel()
	needTool(t, "openssl")
	g := startGateway(t)
	info := g.Info()
	conf, err := os.ReadFile(filepath.Join(info.Dir, "cafgate.toml"))
	if err != nil || !strings.Contains(string(conf), `revocation = "strict"`) || strings.Contains(string(conf), `revocation = "soft"`) {
		t.Fatalf("the development anchor should be strict: %v\n%s", err, conf)
	}
	acc := map[string]account{}
	for _, a := range info.Accounts {
		acc[a.Mail] = a
	}
	rita, gwen := acc["rita.notreal@police.cafgate.test"], acc["gwen.testcase@socialcare.cafgate.test"]
	ritaCert, err := validate.LoadPEMCertificates(rita.Cert)
	if err != nil {
		t.Fatal(err)
	}
	crlURL, err := devca.CRLFileURL(filepath.Join(info.Dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	if dp := ritaCert[0].CRLDistributionPoints; len(dp) != 1 || dp[0] != crlURL {
		t.Fatalf("Rita's certificate names %v as CRL distribution point, want %s", dp, crlURL)
	}
	if _, err := runTool(nil, nil, "openssl", "crl", "-inform", "DER", "-in", filepath.Join(info.Dir, "ca", "ca.crl"),
		"-CAfile", info.CACert, "-noout"); err != nil {
		t.Fatalf("openssl reads the development CRL: %v", err)
	}
	dir := t.TempDir()
	inner := writeTemp(t, dir, "inner.txt", []byte("Content-Type: text/plain\r\n\r\nnotes\r\n"))
	signedBy := func() []byte {
		signed, err := runTool(nil, nil, "openssl", "cms", "-sign", "-in", inner, "-signer", rita.Cert, "-inkey", rita.Key, "-md", "sha256", "-binary")
		if err != nil {
			t.Fatal(err)
		}
		head := "From: <" + rita.Mail + ">\r\nTo: <" + gwen.Mail + ">\r\nSubject: " + devEpisode + " signed\r\n"
		return crlfBytes(append([]byte(head), signed...))
	}
	tc := tlsConfig(t, info)
	if r := submitOnce(info, "submission", tc, rita, []string{gwen.Mail}, signedBy()); r.Reply.Code != 250 {
		t.Fatalf("signed by a good certificate, strict revocation: %s", r)
	}

	g.stop()
	ca, err := devca.LoadOrCreate(filepath.Join(info.Dir, "ca"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.RevokeFile(filepath.Join(info.Dir, "ca"), rita.Cert, devca.ReasonKeyCompromise, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	info = g.start()
	tc = tlsConfig(t, info)
	r := submitOnce(info, "submission", tc, rita, []string{gwen.Mail}, signedBy())
	if r.Reply.Code != 550 || r.Reply.Enhanced() != "5.7.1" || !strings.Contains(r.Reply.String(), "revoked") {
		t.Errorf("signed by a revoked certificate: %s", r)
	}
	marker := "Revoked-Marker-" + randomToken(6)
	if r := submitOnce(info, "submission", tc, gwen, []string{rita.Mail}, newMessage(gwen.Mail, rita.Mail, "to a revoked certificate", marker)); r.Reply.Code != 250 {
		t.Fatalf("package to Rita: %s", r)
	}
	msgs := waitInbox(t, info, tc, rita, 1)
	if len(msgs) != 1 || bytes.Contains(msgs[0], []byte("application/pkcs7-mime")) || bytes.Contains(msgs[0], []byte(marker)) {
		t.Errorf("Rita's revoked certificate: want one notification without content, got %d messages:\n%.400s", len(msgs), msgs[0])
	}
	g.stop()
}

// TestSMIMEGpgsmCapabilities: the capabilities of a gpgsm signature, read by smime.Open, choose the
// encryption of a copy back to its signer, and gpgsm decrypts and verifies that copy. gpgsm 2.2 reads
// only AES-CBC with RSA PKCS#1 v1.5 key transport.
func TestSMIMEGpgsmCapabilities(t *testing.T) {
	t.Parallel()
	needTool(t, "gpgsm")
	p := getSMIMEPKI(t)
	g := newGPGSM(t, p, "alice")
	dir := t.TempDir()
	entity := writeTemp(t, dir, "entity", []byte(smimeSampleEntity))
	sig, err := g.withPass("-u", p.ids["alice"].mail, "--detach-sign", entity)
	if err != nil {
		t.Fatal(err)
	}
	o, err := smime.Open(wrapDetached([]byte(smimeSampleEntity), sig), smime.OpenOptions{Verify: cms.VerifyOptions{Roots: p.ca.Roots}})
	if err != nil {
		t.Fatal(err)
	}
	s := o.Signature()
	t.Logf("gpgsm SMIMECapabilities: present %v, ciphers %v, OAEP %v", s.HasCapabilities, s.Capabilities, s.AnnouncesOAEP)
	policy := &smime.Policy{Known: func(context.Context, string) (smime.Capabilities, bool, error) {
		return smime.Capabilities{Ciphers: s.Capabilities, OAEP: s.AnnouncesOAEP}, s.HasCapabilities, nil
	}}
	pl, err := policy.Plan(context.Background(), p.ids["alice"].mail, "", p.ids["alice"].Cert)
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasCapabilities {
		t.Fatalf("gpgsm's signature carries no SMIMECapabilities: the copy would be %v (%s)", pl.Cipher, pl.Why)
	}
	var sealed bytes.Buffer
	if err := smime.Seal(&sealed, []byte(smimeSample), smime.SealOptions{Signer: p.signer("gateway"), Encrypt: &pl.Encrypt}); err != nil {
		t.Fatal(err)
	}
	enc := writeTemp(t, dir, "copy.p7m", p7mBody(t, sealed.Bytes()))
	signed, err := g.withPass("--decrypt", enc)
	if err != nil {
		t.Fatalf("gpgsm cannot read the copy chosen from its capabilities (%v, %v, %s): %v", pl.Cipher, pl.KeyTransport, pl.Why, err)
	}
	gpgsmVerifies(t, g, dir, Canonicalish(signed))
}
