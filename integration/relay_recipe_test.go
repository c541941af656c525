package integration

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"
)

// TestRelayedCopySealedWhenSent: a package to a recipient whose domain is not hosted is queued as a
// recipe and sealed by the relay as it sends it (gateway/deliver/recipe.go). Through a real Postfix,
// the copy arrives once, under the Message-ID the pipeline recorded, encrypted to the recipient's
// certificate (openssl cms -decrypt with her key from dev.json) and signed by the gateway (openssl
// cms -verify against the dev CA), holding the package's text; the hosted recipient of the same
// package gets their copy in IMAP as before; the ledger verifies.
func TestRelayedCopySealedWhenSent(t *testing.T) {
	t.Parallel()
	needTool(t, "openssl")
	g := startGateway(t)
	info := g.Info()
	g.stop()
	pf := startPostfixFor(t, "police.cafgate.test", "rita.notreal@police.cafgate.test rita/\n")
	_, stop := servePoliceRelayed(t, g, "127.0.0.1:"+pf.port)

	acc := map[string]account{}
	for _, a := range info.Accounts {
		acc[a.Mail] = a
	}
	harriet, rita, gwen := acc["harriet.example@school.cafgate.test"], acc["rita.notreal@police.cafgate.test"], acc["gwen.testcase@socialcare.cafgate.test"]
	if rita.Cert == "" || gwen.Cert == "" {
		t.Fatal("dev.json: Rita and Gwen should both have certificates")
	}
	tlsConf := tlsConfig(t, info)
	marker := "Sealed-When-Sent-" + randomToken(8)
	r := submitOnce(info, "submission", tlsConf, harriet, []string{rita.Mail, gwen.Mail},
		newMessage(harriet.Mail, rita.Mail+">, <"+gwen.Mail, "[CAF-2026-000001] review", marker))
	if r.Reply.Code != 250 {
		t.Fatalf("the package: %s", r)
	}
	id := r.Reply.AcceptedID()

	got := pf.waitMaildir(t, "rita", 1)
	if len(got) != 1 {
		t.Fatalf("Rita's maildir holds %d messages, want 1", len(got))
	}
	m, err := mail.ReadMessage(bytes.NewReader(got[0]))
	if err != nil {
		t.Fatal(err)
	}
	if want := copyMessageID(id, rita.Mail, info.Hostname); m.Header.Get("Message-ID") != want {
		t.Fatalf("Message-ID %q, want %q (the one the pipeline recorded)", m.Header.Get("Message-ID"), want)
	}
	if bytes.Contains(got[0], []byte(marker)) {
		t.Fatal("the package text crossed the relay in the clear")
	}
	dir := t.TempDir()
	signed, err := runTool(nil, nil, "openssl", "cms", "-decrypt", "-in", writeTemp(t, dir, "rita.eml", got[0]),
		"-recip", rita.Cert, "-inkey", rita.Key)
	if err != nil {
		t.Fatalf("openssl cms -decrypt: %v", err)
	}
	if out, err := runTool(Canonicalish(signed), nil, "openssl", "cms", "-verify", "-CAfile", info.CACert); err != nil || !bytes.Contains(out, []byte(marker)) {
		t.Fatalf("openssl cms -verify: %v\n%.400s", err, out)
	}
	// The hosted recipient's copy is sealed by the pipeline and stored in their mailbox, as before.
	gc := waitInbox(t, info, tlsConf, gwen, 1)[0]
	if _, err := runTool(nil, nil, "openssl", "cms", "-decrypt", "-in", writeTemp(t, dir, "gwen.eml", gc), "-recip", gwen.Cert, "-inkey", gwen.Key); err != nil {
		t.Fatalf("Gwen's copy: openssl cms -decrypt: %v", err)
	}
	stop()
	out, _, code := g.cli("ledger", "verify") // the same data directory as relay.toml's
	if code != 0 || !strings.Contains(out, "OK: every event") {
		t.Fatalf("cafgate ledger verify: exit %d\n%s", code, out)
	}
}
