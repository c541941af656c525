package integration

import (
	"fmt"
	"strings"
	"testing"
)

// The package format end to end: malformed packages, sent by a signed-in practitioner over SMTP
// submission, are refused at the end of DATA with 550 5.6.0, a sentence that names the field or MIME
// part at fault (and the limit, for a limit), and an ID; nothing is stored. See docs/package-format.md.

// packageMessage is a manifest package from sender with the given manifest and extra MIME parts.
func packageMessage(sender, rcpt, manifest string, parts ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: CAF package\r\nMessage-ID: <%s@it.cafgate.test>\r\n", sender, rcpt, randomToken(12))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=PKG\r\n\r\n")
	b.WriteString("--PKG\r\nContent-Type: application/vnd.cafgate.manifest+json\r\n\r\n" + manifest + "\r\n")
	for _, p := range parts {
		b.WriteString("--PKG\r\n" + p + "\r\n")
	}
	b.WriteString("--PKG--\r\n")
	return []byte(b.String())
}

func manifestFor(sender, sections string) string {
	return `{"version": 1, "episode": "CAF-2026-000123", "child": "NFS-2026-0042", "sender": "` + sender +
		`", "documents": [{"part": "caf-form.pdf", "sections": [` + sections + `]}]}`
}

const formPart = "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=caf-form.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjcK"

func TestPackageRefusals(t *testing.T) {
	t.Parallel()
	g := startGateway(t)
	info := g.Info()
	sender := info.accountWith(t, "active")
	rcpt := info.accountWith(t, "active", sender.Mail)
	conf := tlsConfig(t, info)
	send := func(body []byte) result {
		return submitOnce(info, "submission", conf, sender, []string{rcpt.Mail}, body)
	}
	before := len(g.messages())

	manyParts := strings.Repeat("Content-Type: text/plain\r\n\r\nx\r\n--PKG\r\n", 120) + formPart
	deep := "Content-Type: application/pdf\r\n\r\nx"
	for i := 0; i < 12; i++ {
		deep = fmt.Sprintf("Content-Type: multipart/mixed; boundary=D%d\r\n\r\n--D%d\r\n%s\r\n--D%d--", i, i, deep, i)
	}
	truncated := packageMessage(sender.Mail, rcpt.Mail, manifestFor(sender.Mail, `"consent"`), formPart)
	truncated = append(truncated[:len(truncated)-len("--PKG--\r\n")], "--PKG\r\nContent-Type: application/pdf\r\n\r\nJVBE\r\n"...)
	cases := []struct {
		name string
		body []byte
		says []string
	}{
		{"unknown version", packageMessage(sender.Mail, rcpt.Mail, `{"version": 2, "episode": "CAF-2026-000123"}`), []string{"/version"}},
		{"unknown section", packageMessage(sender.Mail, rcpt.Mail, manifestFor(sender.Mail, `"childs-details", "health"`), formPart),
			[]string{"/documents/0/sections/1", "six CAF sections"}},
		{"unknown field", packageMessage(sender.Mail, rcpt.Mail, strings.Replace(manifestFor(sender.Mail, `"consent"`), `"version": 1,`, `"version": 1, "notes": "x",`, 1), formPart),
			[]string{"/notes"}},
		{"document not in the manifest", packageMessage(sender.Mail, rcpt.Mail, manifestFor(sender.Mail, `"consent"`), formPart,
			strings.Replace(formPart, "caf-form.pdf", "extra.pdf", 1)), []string{"part 3"}},
		{"too many parts", packageMessage(sender.Mail, rcpt.Mail, manifestFor(sender.Mail, `"consent"`), manyParts), []string{"max_parts"}},
		{"nested too deep", packageMessage(sender.Mail, rcpt.Mail, manifestFor(sender.Mail, `"consent"`), formPart, deep), []string{"max_depth"}},
		{"truncated", truncated, []string{"closing boundary"}},
		{"plain mail without an episode reference", []byte(strings.Replace(string(newMessage(sender.Mail, rcpt.Mail, "notes", "Hello")), "Subject: "+devEpisode+" ", "Subject: ", 1)), []string{"header Subject", "CAF-2026-000123"}},
	}
	for _, c := range cases {
		r := send(c.body)
		if r.Stage != "data" || r.Reply.Code != 550 || r.Reply.Enhanced() != "5.6.0" || r.Reply.RefusalID() == "" {
			t.Errorf("%s: %v, want 550 5.6.0 with an ID at the end of DATA", c.name, r)
			continue
		}
		text := strings.Join(r.Reply.Lines, " ")
		t.Logf("%s: %s", c.name, r.Reply)
		for _, s := range c.says {
			if !strings.Contains(text, s) {
				t.Errorf("%s: the refusal does not say %q: %s", c.name, s, text)
			}
		}
	}
	if after := len(g.messages()); after != before {
		t.Errorf("%d refused packages were stored", after-before)
	}
}
