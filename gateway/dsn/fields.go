// The machine-readable part (message/delivery-status fields, US-ASCII, folded) and the original's
// header block.

package dsn

import (
	"bytes"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxHeaders bounds the original header block a report carries; a longer one is cut at a line.
const MaxHeaders = 32 << 10

// statusFields renders the per-message fields, then one block per recipient (RFC 3464 section 2.1).
func statusFields(r *Report) []byte {
	var b bytes.Buffer
	field(&b, "Reporting-MTA", "dns; "+r.ReportingMTA)
	if r.EnvelopeID != "" {
		field(&b, "Original-Envelope-Id", xtext(r.EnvelopeID))
	}
	if !r.ArrivalDate.IsZero() {
		field(&b, "Arrival-Date", r.ArrivalDate.Format(time.RFC1123Z))
	}
	for _, rc := range r.Recipients {
		b.WriteString("\r\n")
		if rc.Original != "" {
			field(&b, "Original-Recipient", addressField(rc.Original))
		}
		field(&b, "Final-Recipient", addressField(rc.Final))
		field(&b, "Action", string(rc.Action))
		field(&b, "Status", rc.status())
		if rc.RemoteMTA != "" {
			field(&b, "Remote-MTA", "dns; "+rc.RemoteMTA)
		}
		if d := ascii(rc.Diagnostic); d != "" {
			kind := "smtp"
			if !looksLikeSMTPReply(d) {
				kind = "x-local" // a reason of the gateway's own, not an SMTP answer
			}
			field(&b, "Diagnostic-Code", kind+"; "+d)
		}
		if !rc.LastAttempt.IsZero() {
			field(&b, "Last-Attempt-Date", rc.LastAttempt.Format(time.RFC1123Z))
		}
		if rc.Action == Delayed && !rc.WillRetryUntil.IsZero() {
			field(&b, "Will-Retry-Until", rc.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	return b.Bytes()
}

// field writes "Name: value" folded at spaces so no line passes 78 characters where it can be helped.
func field(b *bytes.Buffer, name, value string) {
	line := name + ":"
	for _, word := range strings.Fields(value) {
		if len(line)+1+len(word) > 78 && len(line) > len(name)+1 {
			b.WriteString(line + "\r\n")
			line = "   "
		}
		line += " " + word
	}
	b.WriteString(line + "\r\n")
}

// addressField is "rfc822; addr" for an ASCII address and "utf-8; addr" with non-ASCII characters
// escaped as \x{HEX} for an internationalised one (RFC 6533 section 3, utf-8-addr-xtext).
func addressField(a string) string {
	if isASCII(a) {
		return "rfc822; " + a
	}
	var b strings.Builder
	for _, c := range a {
		if c < 0x80 && c != '\\' && c > ' ' && c != '+' && c != '=' {
			b.WriteRune(c)
		} else {
			fmt.Fprintf(&b, `\x{%X}`, c)
		}
	}
	return "utf-8; " + b.String()
}

// xtext encodes s as RFC 3461 xtext.
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ascii makes s one line of printable US-ASCII: controls become spaces, other bytes '?'.
func ascii(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c < ' ' || c == 0x7f:
			b.WriteByte(' ')
		case c >= 0x80:
			b.WriteByte('?')
		default:
			b.WriteRune(c)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func looksLikeSMTPReply(s string) bool {
	return len(s) >= 3 && s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' &&
		(len(s) == 3 || s[3] == ' ' || s[3] == '-')
}

// HeaderBlock returns the header section of msg (up to, not including, the blank line that ends it)
// with CRLF line endings and a final CRLF, cut after the last whole field that fits in max bytes.
func HeaderBlock(msg []byte, max int) []byte {
	var out bytes.Buffer
	var field []byte
	flush := func() bool {
		if len(field) == 0 {
			return true
		}
		if out.Len()+len(field) > max {
			return false
		}
		out.Write(field)
		field = field[:0]
		return true
	}
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			break
		}
		if line[0] != ' ' && line[0] != '\t' && !flush() {
			return out.Bytes()
		}
		field = append(append(field, line...), '\r', '\n')
	}
	flush()
	return out.Bytes()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isAddress accepts local@domain without spaces, controls or angle brackets (so it cannot break a
// header line or a field).
func isAddress(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 || len(a) > 320 || !utf8.ValidString(a) {
		return false
	}
	for _, c := range a {
		if c <= ' ' || c == 0x7f || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

// isHostName accepts letters, digits, '-', '.', and an address literal in brackets.
func isHostName(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-.[]:_", c)
		if !ok {
			return false
		}
	}
	return true
}
