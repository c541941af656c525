package intake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"cafgate/directory"
	"cafgate/gateway/fault"
	"cafgate/mailbox"
)

// testMDN is a read receipt from reader about original, with an optional third part.
func testMDN(reader, to, original, disposition, third string) []byte {
	return fmt.Appendf(nil, "From: %s\r\nTo: %s\r\nSubject: Read\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/report; report-type=disposition-notification; boundary=\"R\"\r\n\r\n"+
		"--R\r\nContent-Type: text/plain\r\n\r\nDisplayed. Secret words the reader typed.\r\n"+
		"--R\r\nContent-Type: message/disposition-notification\r\n\r\n"+
		"Reporting-UA: laptop; Client\r\nFinal-Recipient: rfc822;%s\r\nOriginal-Message-ID: %s\r\nDisposition: %s\r\n%s"+
		"--R--\r\n", reader, to, reader, original, disposition, third)
}

func TestIsMDN(t *testing.T) {
	if !IsMDN(testMDN("b@x.test", "a@x.test", "<c@x>", "manual-action/MDN-sent-manually; displayed", "")) {
		t.Error("a receipt not recognised")
	}
	for _, s := range []string{"Subject: [CAF-2026-000001] x\r\n\r\nhello\r\n",
		"Content-Type: multipart/report; report-type=delivery-status; boundary=R\r\n\r\n--R--\r\n", ""} {
		if IsMDN([]byte(s)) {
			t.Errorf("%q taken for a receipt", s)
		}
	}
}

// TestAcceptMDNThroughTheQueue: the sender's mailbox is not hosted, so the notification is queued for
// the relay with the null reverse-path, the read is recorded, and nothing of what the reader's client
// wrote travels on; bad receipts are refused with the right face and write nothing.
func TestAcceptMDNThroughTheQueue(t *testing.T) {
	ctx := context.Background()
	store, err := mailbox.Open(ctx, mailbox.Options{Path: t.TempDir() + "/m.db", ContentKey: bytes.Repeat([]byte{7}, 32),
		Ledger: mailbox.LedgerOptions{Interval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const alice, bob, carol = "alice@agency.test", "bob@council.test", "carol@council.test"
	pkgContent := []byte("Subject: x\r\n\r\nthe package\r\n")
	if err := store.Accept(ctx, &mailbox.Incoming{ID: "PKG1", Sender: alice, SenderDN: "uid=alice", Agency: "agency",
		Recipients: []string{bob}, Via: "submission", ReceivedAt: now, Digest: sha256.Sum256(pkgContent), Content: pkgContent}); err != nil {
		t.Fatal(err)
	}
	copyContent := []byte("From: " + alice + "\r\nTo: " + bob + "\r\nMessage-ID: <pkg1.copy@gw.test>\r\n\r\nsealed\r\n")
	if _, err := store.Enqueue(ctx, &mailbox.Outbound{MessageID: "PKG1", From: alice, Recipient: bob, Content: copyContent}); err != nil {
		t.Fatal(err)
	}
	in, _, _, _ := setup(t)
	var log bytes.Buffer
	in.Log = slog.New(slog.NewTextHandler(&log, nil))
	woken := 0
	in.MDN = &MDNOptions{Store: store, Hostname: "gw.test", Hosted: func(string) bool { return false }, Queued: func() { woken++ }}
	submit := func(from string, to []string, content []byte) (string, error) {
		return in.Accept(ctx, &Submission{Sender: &directory.Practitioner{Mail: from, DN: "uid=" + from}, From: from,
			Recipients: to, Content: content, Client: Client{Via: "submission"}})
	}
	displayed := "manual-action/MDN-sent-manually; displayed"
	for name, c := range map[string]struct {
		from    string
		to      []string
		content []byte
		kind    fault.Kind
		words   string
	}{
		"not its recipient": {carol, []string{alice}, testMDN(carol, alice, "<pkg1.copy@gw.test>", displayed, ""), fault.NotPermitted, "no package the gateway delivered to you"},
		"forged final":      {carol, []string{alice}, testMDN(bob, alice, "<pkg1.copy@gw.test>", displayed, ""), fault.NotPermitted, "Final-Recipient"},
		"wrong addressee":   {bob, []string{carol}, testMDN(bob, carol, "<pkg1.copy@gw.test>", displayed, ""), fault.NotPermitted, "only to the practitioner who sent"},
		"carries original": {bob, []string{alice}, testMDN(bob, alice, "<pkg1.copy@gw.test>", displayed,
			"--R\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\nthe package\r\n"), fault.NotPermitted, "must not carry the package"},
		"other part":      {bob, []string{alice}, testMDN(bob, alice, "<pkg1.copy@gw.test>", displayed, "--R\r\nContent-Type: application/pdf\r\n\r\nx\r\n"), fault.NotPermitted, "application/pdf"},
		"no disposition":  {bob, []string{alice}, testMDN(bob, alice, "<pkg1.copy@gw.test>", "", ""), fault.BadMessage, "malformed"},
		"bad disposition": {bob, []string{alice}, testMDN(bob, alice, "<pkg1.copy@gw.test>", "manual-action/MDN-sent-manually; liked", ""), fault.BadMessage, "displayed, deleted"},
		"no original id":  {bob, []string{alice}, testMDN(bob, alice, "", displayed, ""), fault.BadMessage, "Original-Message-ID"},
	} {
		_, err := submit(c.from, c.to, c.content)
		if kindOf(t, err) != c.kind || !strings.Contains(err.(*fault.Error).Sentence(), c.words) {
			t.Errorf("%s: %v, want kind %d saying %q", name, err, c.kind, c.words)
		}
	}
	good := testMDN(bob, alice, "<pkg1.copy@gw.test>", displayed, "--R\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <pkg1.copy@gw.test>\r\n")
	for i := range 2 { // sent twice: passed on and recorded once
		if id, err := submit(bob, []string{alice}, good); err != nil || len(id) != 16 {
			t.Fatalf("attempt %d: %q %v", i, id, err)
		}
	}
	q, err := store.QueueList(ctx, mailbox.QueueFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var dsn []mailbox.QueueEntry
	for _, e := range q {
		if e.Kind == mailbox.KindDSN {
			dsn = append(dsn, e)
		}
	}
	if len(dsn) != 1 || dsn[0].Recipient != alice || dsn[0].From != "" || dsn[0].MessageID != "PKG1" || woken != 1 {
		t.Fatalf("queued %+v, relay woken %d times", dsn, woken)
	}
	note, err := store.QueueContent(ctx, dsn[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"report-type=disposition-notification", "Original-Message-ID: <pkg1.copy@gw.test>",
		"Final-Recipient: rfc822;" + bob, "Disposition: " + displayed, "To: <" + alice + ">", "PKG1"} {
		if !bytes.Contains(note, []byte(want)) {
			t.Errorf("notification lacks %q:\n%s", want, note)
		}
	}
	for _, not := range []string{"Secret words", "laptop", "the package\r\n"} {
		if bytes.Contains(note, []byte(not)) {
			t.Errorf("notification carries %q:\n%s", not, note)
		}
	}
	if n := strings.Count(log.String(), "read receipt passed on"); n != 1 || !strings.Contains(log.String(), "read_recorded=true") {
		t.Errorf("log: %d passed on\n%s", n, log.String())
	}
	if strings.Contains(log.String(), "Secret") {
		t.Error("the receipt's text reached the log")
	}
}
