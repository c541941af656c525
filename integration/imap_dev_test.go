package integration

import "testing"

// TestIMAPDev runs integration/py/imap_check.py against `cafgate dev`: a package sent over SMTP
// submission reaches a hosted recipient's INBOX, decrypts with the recipient's key from dev.json, and a
// second one is announced during IDLE. It is skipped until the binary lists "imap" and "imaps" in
// dev.json's "listen" (the IMAP server and hosted delivery wired into cmd/cafgate).
func TestIMAPDev(t *testing.T) {
	t.Parallel()
	requirePython(t)
	g := startGateway(t)
	info := g.Info()
	if info.Listen["imap"] == "" || info.Listen["imaps"] == "" {
		g.stop()
		t.Skip(`cafgate dev lists no "imap"/"imaps" listener in dev.json yet: the IMAP server is not wired into cmd/cafgate`)
	}
	g.runPython(t, "imap_check")
	g.stop()
	g.requireVerifyClean(-1)
}
