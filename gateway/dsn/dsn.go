// Package dsn builds delivery status notifications (RFC 3464, in a multipart/report of RFC 6522): a
// human-readable explanation, the machine-readable message/delivery-status part, and the original
// message's header block as text/rfc822-headers. It never includes the original message's body: the
// sender learns what happened to their message without the report carrying its content.
package dsn

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"regexp"
	"strings"
	"time"
)

// Action is a recipient's Action field (RFC 3464 section 2.3.3).
type Action string

// Actions.
const (
	Failed    Action = "failed"
	Delayed   Action = "delayed"
	Delivered Action = "delivered"
	Relayed   Action = "relayed"
	Expanded  Action = "expanded"
)

// Recipient is the per-recipient part of a report.
type Recipient struct {
	Final          string    // Final-Recipient address (required)
	Original       string    // Original-Recipient address, when it differs or is known
	Action         Action    // required
	Status         string    // e.g. "5.1.1"; empty takes 5.0.0, 4.0.0 or 2.0.0 by Action
	RemoteMTA      string    // host name of the MTA that gave Diagnostic, if any
	Diagnostic     string    // its SMTP reply, e.g. "550 5.1.1 no such user", or a local reason
	LastAttempt    time.Time // zero leaves the field out
	WillRetryUntil time.Time // for Delayed: when the gateway gives up
}

// Report is one DSN to one sender.
type Report struct {
	ReportingMTA      string    // the gateway's host name (required)
	From              string    // author address of the report; default MAILER-DAEMON@ReportingMTA
	To                string    // the original sender (required)
	Date              time.Time // required
	MessageID         string    // the report's own Message-ID, "<...>" (required)
	ArrivalDate       time.Time // when the gateway accepted the original; zero leaves it out
	EnvelopeID        string    // Original-Envelope-Id, if the sender gave one
	OriginalMessageID string    // the original's Message-ID, quoted in the explanation and References
	Explanation       string    // an extra paragraph for the human-readable part (e.g. why it was dropped)
	Recipients        []Recipient
	Headers           []byte // the original's header block; see HeaderBlock
}

var (
	statusRE = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)
	msgIDRE  = regexp.MustCompile(`^<[!-;=?-~]+@[!-;=?-~]+>$`)
)

// Build returns the report as a complete RFC 5322 message with CRLF line endings.
func Build(r *Report) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	human := humanText(r)
	status := statusFields(r)
	headers := HeaderBlock(r.Headers, MaxHeaders)
	boundary := pickBoundary(r, human, status, headers)
	var b bytes.Buffer
	writeTopHeaders(&b, r, boundary)
	mw := multipart.NewWriter(&b)
	if err := mw.SetBoundary(boundary); err != nil {
		return nil, err
	}
	parts := []struct {
		ctype string
		body  []byte
	}{
		{"text/plain; charset=utf-8", human},
		{"message/delivery-status", status},
		{"text/rfc822-headers", headers},
	}
	for _, p := range parts {
		h := textproto.MIMEHeader{"Content-Type": {p.ctype}, "Content-Transfer-Encoding": {transferEncoding(p.body)}}
		w, err := mw.CreatePart(h)
		if err != nil {
			return nil, err
		}
		w.Write(p.body)
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// check refuses a report that would be malformed or could inject header lines.
func (r *Report) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("dsn: "+format, args...)) }
	if !isHostName(r.ReportingMTA) {
		bad("reporting MTA %q is not a host name", r.ReportingMTA)
	}
	if !isAddress(r.To) {
		bad("recipient of the report is not an address")
	}
	if r.From != "" && !isAddress(r.From) {
		bad("author of the report is not an address")
	}
	if r.Date.IsZero() {
		bad("no date")
	}
	if !msgIDRE.MatchString(r.MessageID) {
		bad("report Message-ID %q is not <local@domain>", r.MessageID)
	}
	if r.OriginalMessageID != "" && !msgIDRE.MatchString(r.OriginalMessageID) {
		bad("original Message-ID is not <local@domain>")
	}
	if len(r.Recipients) == 0 {
		bad("no recipient to report on")
	}
	for i, rc := range r.Recipients {
		if err := rc.check(); err != nil {
			bad("recipient %d: %v", i, err)
		}
	}
	return errors.Join(errs...)
}

func (rc *Recipient) check() error {
	if !isAddress(rc.Final) || (rc.Original != "" && !isAddress(rc.Original)) {
		return errors.New("not an address")
	}
	class := map[Action]byte{Failed: '5', Delayed: '4', Delivered: '2', Relayed: '2', Expanded: '2'}[rc.Action]
	if class == 0 {
		return fmt.Errorf("action %q", rc.Action)
	}
	if rc.Status != "" && (!statusRE.MatchString(rc.Status) || rc.Status[0] != class) {
		return fmt.Errorf("status %q does not fit action %s", rc.Status, rc.Action)
	}
	if rc.RemoteMTA != "" && !isHostName(rc.RemoteMTA) {
		return fmt.Errorf("remote MTA %q is not a host name", rc.RemoteMTA)
	}
	return nil
}

// status returns the recipient's status code, defaulted by action.
func (rc *Recipient) status() string {
	if rc.Status != "" {
		return rc.Status
	}
	switch rc.Action {
	case Failed:
		return "5.0.0"
	case Delayed:
		return "4.0.0"
	}
	return "2.0.0"
}

func writeTopHeaders(b *bytes.Buffer, r *Report, boundary string) {
	from := r.From
	if from == "" {
		from = "MAILER-DAEMON@" + r.ReportingMTA
	}
	subject := "Delivery Status Notification"
	switch worstAction(r) {
	case Failed:
		subject = "Undelivered Mail Returned to Sender"
	case Delayed:
		subject = "Delayed Mail (still being retried)"
	}
	h := []string{
		"From: Mail Delivery System <" + from + ">",
		"To: <" + r.To + ">",
		"Subject: " + subject,
		"Date: " + r.Date.Format(time.RFC1123Z),
		"Message-ID: " + r.MessageID,
	}
	if r.OriginalMessageID != "" {
		h = append(h, "In-Reply-To: "+r.OriginalMessageID, "References: "+r.OriginalMessageID)
	}
	h = append(h, "Auto-Submitted: auto-replied", "MIME-Version: 1.0",
		`Content-Type: multipart/report; report-type=delivery-status; boundary="`+boundary+`"`, "", "")
	b.WriteString(strings.Join(h, "\r\n"))
	b.WriteString("This is a MIME-encapsulated message.\r\n\r\n")
}

// worstAction is failed if any recipient failed, else delayed if any is delayed, else delivered.
func worstAction(r *Report) Action {
	worst := Delivered
	for _, rc := range r.Recipients {
		if rc.Action == Failed {
			return Failed
		}
		if rc.Action == Delayed {
			worst = Delayed
		}
	}
	return worst
}

// pickBoundary derives a boundary from the report's identity and makes sure no part contains it.
func pickBoundary(r *Report, parts ...[]byte) string {
	sum := sha256.Sum256([]byte(r.MessageID + r.Date.String()))
	base := "=_cafgate-dsn-" + hex.EncodeToString(sum[:12])
	for i := 0; ; i++ {
		b := base
		if i > 0 {
			b = fmt.Sprintf("%s-%d", base, i)
		}
		clash := false
		for _, p := range parts {
			clash = clash || bytes.Contains(p, []byte(b))
		}
		if !clash {
			return b
		}
	}
}

func transferEncoding(b []byte) string {
	for _, c := range b {
		if c >= 0x80 {
			return "8bit"
		}
	}
	return "7bit"
}
