package ledger

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

func TestBuildReceipt(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	in := ReceiptInput{Hostname: "gw.example.org", Sender: "priya@school.example", Package: "01JXPKG",
		Digest: strings.Repeat("ab", 32), SubmittedAt: at, Date: at.Add(time.Hour), Outcomes: []RecipientOutcome{
			{Recipient: "harriet@health.example", Outcome: OutcomeEncrypted, Cert: strings.Repeat("cd", 32), At: at},
			{Recipient: "gwen@council.example", Outcome: OutcomeNotified},
			{Recipient: "tom@police.example", Outcome: OutcomeRefused, Reason: "the family has not consented to sharing with this agency"},
			{Recipient: "rita@youth.example", Outcome: OutcomeRetrying, Remote: "451 4.3.0 try later"},
		}}
	raw, err := BuildReceipt(in)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatal("a bare LF in the receipt")
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("To") != "<priya@school.example>" || msg.Header.Get("Auto-Submitted") != "auto-generated" ||
		!strings.Contains(msg.Header.Get("Subject"), "01JXPKG") {
		t.Fatalf("headers %v", msg.Header)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	human, err := mr.NextPart() // decodes quoted-printable
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(human)
	for _, want := range []string{"harriet@health.example: encrypted to the recipient's certificate (SHA-256 " + strings.Repeat("cd", 32),
		"gwen@council.example: sent a notification with a one-time link", "tom@police.example: NOT sent: the family has not consented",
		"rita@youth.example: not delivered yet", "451 4.3.0 try later"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("human part lacks %q:\n%s", want, text)
		}
	}
	status, err := mr.NextPart()
	if err != nil || status.Header.Get("Content-Type") != "message/delivery-status" {
		t.Fatalf("second part: %v %v", status.Header, err)
	}
	tp := textproto.NewReader(bufio.NewReader(status))
	perMsg, err := tp.ReadMIMEHeader()
	if err != nil || perMsg.Get("Reporting-MTA") != "dns; gw.example.org" {
		t.Fatalf("per-message fields %v %v", perMsg, err)
	}
	var actions []string
	for {
		h, err := tp.ReadMIMEHeader()
		if len(h) > 0 {
			actions = append(actions, h.Get("Final-Recipient")+" "+h.Get("Action")+" "+h.Get("Status")+" "+h.Get("X-Cafgate-Outcome"))
		}
		if err != nil {
			break
		}
	}
	want := []string{"rfc822; harriet@health.example relayed 2.0.0 encrypted", "rfc822; gwen@council.example delivered 2.0.0 notified",
		"rfc822; tom@police.example failed 5.7.1 refused", "rfc822; rita@youth.example delayed 4.0.0 retrying"}
	if strings.Join(actions, "|") != strings.Join(want, "|") {
		t.Fatalf("recipient fields:\n%s\nwant\n%s", strings.Join(actions, "\n"), strings.Join(want, "\n"))
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Fatalf("a third part: %v (the receipt must not carry the package)", err)
	}

	bad := in
	bad.Outcomes = []RecipientOutcome{{Recipient: "x@y\r\nBcc: z@w", Outcome: OutcomeDelivered}}
	if _, err := BuildReceipt(bad); err == nil {
		t.Error("a line break in a field was accepted")
	}
	bad.Outcomes = []RecipientOutcome{{Recipient: "x@y", Outcome: "lost"}}
	if _, err := BuildReceipt(bad); err == nil {
		t.Error("an unknown outcome was accepted")
	}
}
