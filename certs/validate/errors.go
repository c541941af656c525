package validate

import (
	"errors"
	"fmt"
)

// Reason is why a certificate failed, as the ledger and the sender's report record it.
type Reason string

// The reasons.
const (
	Expired           Reason = "expired"            // outside its validity period (or a CA certificate in its chain is)
	Revoked           Reason = "revoked"            // on a CRL or revoked by OCSP (it or a CA in its chain)
	WrongUsage        Reason = "wrong-usage"        // key usage or extended key usage do not allow the use
	Untrusted         Reason = "untrusted"          // no chain to a trust anchor configured for the agency
	MailMismatch      Reason = "mail-mismatch"      // the certificate is not for the directory's mail address
	RevocationUnknown Reason = "revocation-unknown" // neither a CRL nor OCSP gave a status
)

// Error is a failed validation: a reason code and a plain sentence (which names no secret and may be
// shown to the sender and logged), and the cause for the log.
type Error struct {
	Reason   Reason
	Sentence string
	Err      error
}

func (e *Error) Error() string {
	s := "certificate " + string(e.Reason) + ": " + e.Sentence
	if e.Err != nil {
		s += " (" + e.Err.Error() + ")"
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the reason of an *Error in err's chain, or "" when there is none.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func failure(r Reason, cause error, format string, args ...any) *Error {
	return &Error{Reason: r, Sentence: fmt.Sprintf(format, args...), Err: cause}
}
