// Failures of a delivery attempt: permanent (a 5xx answer, an unroutable domain) or temporary
// (everything else), with the enhanced status code and the one-line answer the ledger and the DSN show.

package relay

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/emersion/go-smtp"

	"cafgate/mailbox"
)

// failure is why an attempt did not deliver.
type failure struct {
	permanent bool
	cause     string // for a permanent failure: a mailbox.Cause*
	host      string // the host that answered or could not be reached; empty before any
	status    string // RFC 3463 enhanced status code, e.g. 4.4.1
	answer    string // the SMTP reply ("550 5.1.1 ...") or the gateway's own reason
	session   bool   // no session could be had with the destination: the rest of the batch fares alike
}

func (f *failure) Error() string { return f.answer }

func tempf(host, status, answer string) *failure {
	return &failure{host: host, status: status, answer: answer}
}

func permf(cause, host, status, answer string) *failure {
	return &failure{permanent: true, cause: cause, host: host, status: status, answer: answer}
}

// smtpFailure classifies err from step (e.g. "RCPT TO") of a session with host.
func smtpFailure(host, step string, err error) *failure {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		f := tempf(host, enhanced(se), reply(se))
		if se.Code >= 500 && se.Code < 600 {
			f.permanent, f.cause = true, mailbox.CauseRejected
		}
		return f
	}
	var cve *tls.CertificateVerificationError
	switch {
	case errors.As(err, &cve):
		return tempf(host, "4.7.5", "the TLS certificate of "+host+" did not verify: "+cve.Err.Error())
	case errors.Is(err, os.ErrDeadlineExceeded):
		return tempf(host, "4.4.2", "no answer from "+host+" in time during "+step)
	case isNetErr(err):
		return tempf(host, "4.4.2", "the connection to "+host+" broke during "+step+": "+netText(err))
	}
	return tempf(host, "4.4.0", step+" with "+host+" failed: "+err.Error())
}

// connectFailure classifies a failure to open a session with host.
func connectFailure(host string, err error) *failure {
	var f *failure
	if errors.As(err, &f) {
		return f
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return tempf(host, "4.4.1", "could not connect to "+host+": "+netText(err))
	}
	f = smtpFailure(host, "the greeting", err)
	if f.permanent { // a 5xx greeting or EHLO: another MX host or a later attempt may do better
		f.permanent, f.cause, f.status = false, "", "4"+f.status[1:]
	}
	return f
}

// reply renders an SMTP error as the server sent it: code, enhanced code, text on one line.
func reply(se *smtp.SMTPError) string {
	msg := strings.Join(strings.Fields(se.Message), " ")
	if se.EnhancedCode != smtp.EnhancedCodeNotSet && se.EnhancedCode != smtp.NoEnhancedCode {
		c := se.EnhancedCode
		return fmt.Sprintf("%d %d.%d.%d %s", se.Code, c[0], c[1], c[2], msg)
	}
	return fmt.Sprintf("%d %s", se.Code, msg)
}

// enhanced is the reply's enhanced status code, or the basic class with .0.0.
func enhanced(se *smtp.SMTPError) string {
	c := se.EnhancedCode
	if c != smtp.EnhancedCodeNotSet && c != smtp.NoEnhancedCode && c[0] == se.Code/100 {
		return fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
	}
	if class := se.Code / 100; class == 4 || class == 5 {
		return fmt.Sprintf("%d.0.0", class)
	}
	return "4.0.0"
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "EOF") ||
		strings.Contains(err.Error(), "connection reset")
}

// netText is a network error without the Go operation prefix noise.
func netText(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}
