// The human-readable part: what happened, to whom, what the receiving server said, and what the
// sender can do, in plain words and without anything of the message's content.

package dsn

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

func humanText(r *Report) []byte {
	var b bytes.Buffer
	para := func(format string, args ...any) {
		b.WriteString(wrap(fmt.Sprintf(format, args...), 72))
		b.WriteString("\r\n")
	}
	para("This is the mail gateway at %s.", r.ReportingMTA)
	switch worstAction(r) {
	case Failed:
		para("Your message could not be delivered to one or more recipients. The gateway has given up; " +
			"it will not try again. Details follow for each recipient.")
	case Delayed:
		para("Your message has not been delivered yet to one or more recipients. This is only a warning: " +
			"the gateway is still trying and you do not need to send it again. You will hear once more " +
			"only if it finally fails.")
	default:
		para("This is a report on your message.")
	}
	if r.OriginalMessageID != "" {
		para("Your message: Message-ID %s", r.OriginalMessageID)
	}
	if r.Explanation != "" {
		para("%s", r.Explanation)
	}
	for _, rc := range r.Recipients {
		para("%s", recipientText(rc))
	}
	para("The message's headers are attached below; its content is not.")
	return b.Bytes()
}

func recipientText(rc Recipient) string {
	var parts []string
	switch rc.Action {
	case Failed:
		parts = append(parts, fmt.Sprintf("<%s>: delivery failed (status %s).", rc.Final, rc.status()))
	case Delayed:
		parts = append(parts, fmt.Sprintf("<%s>: delivery delayed (status %s).", rc.Final, rc.status()))
	default:
		parts = append(parts, fmt.Sprintf("<%s>: %s (status %s).", rc.Final, rc.Action, rc.status()))
	}
	if d := ascii(rc.Diagnostic); d != "" {
		if rc.RemoteMTA != "" {
			parts = append(parts, fmt.Sprintf("The receiving server %s said: %s", rc.RemoteMTA, d))
		} else {
			parts = append(parts, "Reason: "+d)
		}
	}
	if rc.Action == Delayed && !rc.WillRetryUntil.IsZero() {
		parts = append(parts, "The gateway will keep trying until "+rc.WillRetryUntil.UTC().Format(time.RFC1123)+".")
	}
	return strings.Join(parts, " ")
}

// wrap breaks text into CRLF-terminated lines of at most width characters at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			b.WriteString(line + "\r\n")
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		b.WriteString(line + "\r\n")
	}
	return b.String()
}
