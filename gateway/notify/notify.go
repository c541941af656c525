// Package notify builds the notification a recipient without a valid S/MIME certificate receives
// instead of the package: from the gateway, saying that a package from an agency awaits them, with the
// one-time link, when it expires and how to report a mistake. It is built from a fixed text and the
// few facts in Notice, which holds nothing of the package: no child name or identifier, no subject
// line, no section or document names, no content. It is queued like any outbound message
// (mailbox.Store.Notify with Builder.Build).
package notify

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Notice is everything a notification says.
type Notice struct {
	From     string    // the gateway's address: header From (required)
	FromName string    // its display name; default "CAF secure gateway"
	To       string    // the recipient (required)
	Agency   string    // the sending agency's name (required)
	Link     string    // the one-time link, https only (required)
	Expires  time.Time // when the link stops working (required)
	Report   string    // where to report a notification received by mistake (a mail address; required)
	Hostname string    // right-hand side of the Message-ID; default the domain of From
	Date     time.Time // default time.Now
	Location *time.Location
}

// ErrInvalid wraps every refusal of a Notice.
var ErrInvalid = errors.New("notify: invalid notice")

// maxAgency bounds the agency name shown, in characters.
const maxAgency = 120

// Build returns the notification as an RFC 5322 message (CRLF line ends) with a fresh Message-ID.
func Build(n Notice) ([]byte, error) {
	if err := check(&n); err != nil {
		return nil, err
	}
	id, err := messageID(n.Hostname)
	if err != nil {
		return nil, err
	}
	body := bodyText(n)
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", (&mail.Address{Name: n.FromName, Address: n.From}).String())
	header("To", (&mail.Address{Address: n.To}).String())
	header("Subject", mime.QEncoding.Encode("utf-8", "A secure package from "+n.Agency+" awaits you"))
	header("Date", n.Date.Format(time.RFC1123Z))
	header("Message-ID", id)
	header("MIME-Version", "1.0")
	header("Auto-Submitted", "auto-generated")
	header("X-Auto-Response-Suppress", "All")
	header("Content-Type", "text/plain; charset=utf-8")
	if isASCII(body) {
		header("Content-Transfer-Encoding", "7bit")
		b.WriteString("\r\n" + body)
		return b.Bytes(), nil
	}
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(body))
	qp.Close()
	return b.Bytes(), nil
}

// check validates n and fills its defaults.
func check(n *Notice) error {
	n.Agency = oneLine(n.Agency, maxAgency)
	switch {
	case !plainAddress(n.From), !plainAddress(n.To), !plainAddress(n.Report):
		return fmt.Errorf("%w: From, To and Report must be plain mail addresses", ErrInvalid)
	case n.Agency == "":
		return fmt.Errorf("%w: no sending agency", ErrInvalid)
	case !strings.HasPrefix(n.Link, "https://") || strings.ContainsAny(n.Link, " \t\r\n<>\"") || len(n.Link) > 900:
		return fmt.Errorf("%w: the link must be one https URL", ErrInvalid)
	case n.Expires.IsZero():
		return fmt.Errorf("%w: no expiry", ErrInvalid)
	}
	if n.FromName == "" {
		n.FromName = "CAF secure gateway"
	}
	n.FromName = oneLine(n.FromName, 80)
	if n.Hostname == "" {
		n.Hostname = n.From[strings.LastIndexByte(n.From, '@')+1:]
	}
	if n.Hostname == "" || strings.Trim(strings.ToLower(n.Hostname), "abcdefghijklmnopqrstuvwxyz0123456789.-") != "" {
		return fmt.Errorf("%w: host name %q", ErrInvalid, n.Hostname)
	}
	if n.Date.IsZero() {
		n.Date = time.Now()
	}
	if n.Location == nil {
		n.Location = time.UTC
	}
	return nil
}

// bodyText is the notification's text: fixed sentences and the notice's facts, lines under 78
// characters except the link, which stays whole on a line of its own.
func bodyText(n Notice) string {
	exp := n.Expires.In(n.Location).Format("Monday 2 January 2006 at 15:04 MST")
	lines := []string{
		"A secure package from " + n.Agency + " is waiting for you on the CAF",
		"secure gateway. This message does not contain it: open the link below,",
		"sign in with your agency directory password and the code from your",
		"authenticator app, and the gateway will show you what was sent.",
		"",
		n.Link,
		"",
		"The link works only for you, and only until " + exp + ".",
		"Do not forward this message; the link is of no use to anyone else.",
		"",
		"If this reached you by mistake, or you were not expecting a package,",
		"do not open the link: please tell " + n.Report + " so the link",
		"can be withdrawn.",
		"",
		"First time? Your agency administrator gives you an enrolment code to",
		"set up the authenticator app; the sign-in page explains the steps.",
		"",
		"-- ",
		n.FromName + " (an automatic message; replies are not read)",
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}

// plainAddress reports whether a is a bare local@domain address with nothing a header could be
// bent with.
func plainAddress(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 || len(a) > 254 || !utf8.ValidString(a) {
		return false
	}
	return !strings.ContainsFunc(a, func(c rune) bool {
		return c <= ' ' || c == 0x7f || strings.ContainsRune(`<>()[],;:"\`, c)
	})
}

// oneLine makes s one line of printable text of at most max characters.
func oneLine(s string, max int) string {
	s = strings.Join(strings.FieldsFunc(s, func(c rune) bool { return unicode.IsSpace(c) || !unicode.IsPrint(c) }), " ")
	if r := []rune(s); len(r) > max {
		s = string(r[:max])
	}
	return s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// messageID returns a fresh Message-ID: 128 random bits at host.
func messageID(host string) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "<" + idEncoding.EncodeToString(b) + ".pickup@" + host + ">", nil
}
