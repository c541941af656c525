package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cafgate/envelope/pkg"
	"cafgate/mailbox"
)

func sample() Notice {
	return Notice{From: "no-reply@gw.example", To: "harriet@school.example", Agency: "Northfield Primary School",
		Link: "https://gw.example/pickup/l/LABCDEFGHJKMNPQRS" + strings.Repeat("x", 43), Report: "help@gw.example",
		Expires: time.Date(2026, 5, 13, 10, 0, 0, 0, time.UTC), Date: time.Date(2026, 5, 6, 10, 0, 0, 0, time.UTC)}
}

func read(t *testing.T, raw []byte) (*mail.Message, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var body io.Reader = m.Body
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(m.Body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return m, string(b)
}

func TestBuildSaysWhatItMustAndKeepsTheLinkWhole(t *testing.T) {
	n := sample()
	raw, err := Build(n)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatal("a bare LF in the message")
	}
	for _, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 998 {
			t.Fatalf("line of %d bytes", len(line))
		}
	}
	m, body := read(t, raw)
	subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	from, _ := mail.ParseAddress(m.Header.Get("From"))
	if !strings.Contains(subject, "Northfield Primary School") || from.Address != n.From ||
		m.Header.Get("To") != "<harriet@school.example>" || m.Header.Get("Auto-Submitted") != "auto-generated" ||
		!strings.HasSuffix(m.Header.Get("Message-ID"), "@gw.example>") {
		t.Fatalf("headers: %v (subject %q)", m.Header, subject)
	}
	for _, want := range []string{"\r\n" + n.Link + "\r\n", "Northfield Primary School", "Wednesday 13 May 2026 at 10:00 UTC",
		"help@gw.example", "by mistake"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	again, _ := Build(n)
	m2, _ := read(t, again)
	if m2.Header.Get("Message-ID") == m.Header.Get("Message-ID") {
		t.Fatal("two notifications share a Message-ID")
	}
}

func TestBuildRefusesWhatCouldBendTheMessage(t *testing.T) {
	for name, mod := range map[string]func(*Notice){
		"CRLF in To":       func(n *Notice) { n.To = "a@b.example\r\nBcc: evil@x.example" },
		"name in To":       func(n *Notice) { n.To = "Eve <eve@x.example>" },
		"plain http link":  func(n *Notice) { n.Link = "http://gw.example/pickup/l/x" },
		"space in link":    func(n *Notice) { n.Link = "https://gw.example/a b" },
		"no agency":        func(n *Notice) { n.Agency = " \r\n " },
		"no expiry":        func(n *Notice) { n.Expires = time.Time{} },
		"bad host":         func(n *Notice) { n.Hostname = "gw.example>\r\nX: y" },
		"no report target": func(n *Notice) { n.Report = "" },
	} {
		n := sample()
		mod(&n)
		if _, err := Build(n); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	n := sample()
	n.Agency = "Evil\r\nBcc: evil@x.example\r\n\r\nbody"
	raw, err := Build(n)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := read(t, raw)
	if m.Header.Get("Bcc") != "" || len(m.Header["Subject"]) != 1 {
		t.Fatalf("agency name bent the header: %v", m.Header)
	}
}

func TestNonASCIIAgency(t *testing.T) {
	n := sample()
	n.Agency = "Ysgol Gymraeg Aberystwyth – Ŵyn"
	raw, err := Build(n)
	if err != nil {
		t.Fatal(err)
	}
	m, body := read(t, raw)
	subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if !strings.Contains(subject, n.Agency) || !strings.Contains(body, n.Agency) || !strings.Contains(body, "\r\n"+n.Link+"\r\n") {
		t.Fatalf("subject %q body:\n%s", subject, body)
	}
}

// TestNotificationCarriesNothingOfThePackage queues a real notification for a real package and reads
// it back from the queue: none of the child identifier, subject, section names or document names.
func TestNotificationCarriesNothingOfThePackage(t *testing.T) {
	golden, err := os.ReadFile("../../envelope/pkg/testdata/golden/health-review.eml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := pkg.ParseBytes(golden, pkg.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	subject := "CAF review for NFS-2026-0042 (Jamie Placeholder)"
	content := append([]byte("Subject: "+subject+"\r\n"), golden...)
	ctx := context.Background()
	st, err := mailbox.Open(ctx, mailbox.Options{Path: filepath.Join(t.TempDir(), "m.db"), ContentKey: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rcpt := "harriet@school.example"
	err = st.Accept(ctx, &mailbox.Incoming{ID: "M1", Sender: p.Manifest.Sender, SenderDN: "uid=priya", Agency: "Eastshire Health",
		Recipients: []string{rcpt}, Via: "submission", RemoteAddr: "192.0.2.1:1", ReceivedAt: time.Now(),
		Digest: sha256.Sum256(content), Content: content})
	if err != nil {
		t.Fatal(err)
	}
	b := &Builder{From: "no-reply@gw.example", Report: "help@gw.example", BaseURL: "https://gw.example/pickup/"}
	l, err := st.Notify(ctx, mailbox.LinkRequest{MessageID: "M1", Recipient: rcpt}, b.Build)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.QueueContent(ctx, l.QueueID)
	if err != nil {
		t.Fatal(err)
	}
	_, body := read(t, raw)
	all := string(raw) + body
	if !strings.Contains(all, "Eastshire Health") || !strings.Contains(all, "https://gw.example/pickup/l/"+l.ID) {
		t.Fatalf("notification lacks the agency or the link:\n%s", all)
	}
	forbidden := []string{p.Manifest.Child, strings.ReplaceAll(p.Manifest.Child, "-", ""), subject, "Jamie", "CAF review",
		p.Manifest.Episode, p.Manifest.Sender}
	for _, s := range pkg.AllSections() {
		forbidden = append(forbidden, string(s), s.Title())
	}
	for _, d := range p.Documents {
		forbidden = append(forbidden, d.Part, strings.TrimSuffix(d.Part, filepath.Ext(d.Part)))
	}
	for _, f := range forbidden {
		if f != "" && strings.Contains(strings.ToLower(all), strings.ToLower(f)) {
			t.Errorf("the notification contains %q", f)
		}
	}
}
