package smtpd

import (
	"errors"
	"strings"
)

// Bare CR and bare LF in command lines: what this package can and cannot see.
//
// go-smtp reads commands with net/textproto, which ends a line at LF whether or not a CR precedes it.
// A bare LF inside a command therefore splits it into two commands before any code here runs, and the
// session cannot tell "MAIL FROM:<a>\nRCPT TO:<b>\r\n" from two well-formed lines. A bare CR or a NUL
// stays inside the line and reaches the arguments go-smtp passes on (EHLO name, MAIL FROM and RCPT TO
// addresses, decoded AUTH responses); checkArg refuses those.
//
// Ways to see bare LF in command lines that were tried and rejected as not clean:
//   - a net.Conn wrapper under go-smtp sees only ciphertext once STARTTLS has run, which is when
//     commands that matter (AUTH, MAIL, RCPT) may be sent; before TLS only EHLO, STARTTLS, NOOP, RSET
//     and QUIT do anything.
//   - on port 465 the wrapper could sit above a TLS layer terminated here, but go-smtp then no longer
//     sees a *tls.Conn (it would offer STARTTLS and report no TLS state), and the wrapper cannot tell
//     command lines from DATA or BDAT bytes, where bare LF is refused later with its own reply.
//   - go-smtp's Debug tee is one writer per smtp.Server, shared by all connections, and it receives
//     both what is read and what is written with nothing to tell them apart, so pipelined input
//     interleaved with replies would be misread.
//
// What remains is harmless here: a bare LF can only make one command line into two complete commands
// that this server then checks one by one. In message data, bare CR, bare LF and NUL are refused by
// the intake (intake.CheckContent), and go-smtp's data reader ends DATA only at CRLF.CRLF. One quirk of
// that reader: after CRLF, "." followed by CR and then anything but LF loses the "." and the CR, so
// the message holds clean CRLF text in their place; it stays one message (TestDotCRIsNotEndOfData).

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
