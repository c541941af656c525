package smtpd

import (
	"errors"
	"strings"
)

// Bare CR and bare LF in command lines.
//
// go-smtp reads commands with net/textproto, which ends a line at LF whether or not a CR precedes it.
// The lineGuard (guard.go) sits under go-smtp and above TLS, so it sees every command line in plain
// text on both ports and after STARTTLS, and refuses one holding a bare LF, a bare CR or a NUL with
// 500 5.5.2 before go-smtp parses it. checkArg stays as a second check on the arguments go-smtp
// passes on (EHLO name, MAIL FROM and RCPT TO addresses, decoded AUTH responses), for the other C0
// controls and DEL.
//
// In message data, bare CR, bare LF and NUL are refused by the intake (intake.CheckContent), and
// go-smtp's data reader ends DATA only at CRLF.CRLF. One quirk of that reader: after CRLF, "."
// followed by CR and then anything but LF loses the "." and the CR, so the message holds clean CRLF
// text in their place; it stays one message (TestDotCRIsNotEndOfData).

var errControl = errors.New("control character in argument")

// checkArg refuses a command argument holding a control character: CR, LF, NUL, any other C0 byte
// or DEL.
func checkArg(s string) error {
	if strings.IndexFunc(s, isControl) >= 0 {
		return errControl
	}
	return nil
}

// checkSecret refuses a password holding CR, LF or NUL (the bytes that end or split protocol lines
// and C strings); other characters are the directory's business.
func checkSecret(s string) error {
	if strings.ContainsAny(s, "\r\n\x00") {
		return errControl
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
