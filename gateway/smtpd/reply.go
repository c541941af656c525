package smtpd

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/emersion/go-smtp"

	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
)

// reply is the client face of a fault as go-smtp's error. go-smtp sends an *smtp.SMTPError's code and
// message and, for any other error type, the error's own text; so every error this package hands to
// go-smtp is built here.
func reply(e *fault.Error) *smtp.SMTPError {
	f := e.Face()
	return &smtp.SMTPError{
		Code:         f.SMTP,
		EnhancedCode: smtp.EnhancedCode(f.Enhanced),
		Message:      oneLine(e.Sentence()) + " (ID " + oneLine(e.ID) + ")",
	}
}

// accepted is the 250 reply after the intake has committed a message. go-smtp sends an *SMTPError
// returned by Data as it is, whatever its code, which is the only way to put the ID in the reply.
func accepted(id string) *smtp.SMTPError {
	return &smtp.SMTPError{
		Code:         250,
		EnhancedCode: smtp.EnhancedCode{2, 0, 0},
		Message:      "Accepted as " + oneLine(id) + ": quote this ID if you need to ask about this message",
	}
}

// acceptedOpening is the 250 for a package that opened an episode: it names the new reference, which
// the sender quotes in the packages that follow.
func acceptedOpening(id, ref string) *smtp.SMTPError {
	a := accepted(id)
	a.Message += "; it opened episode " + oneLine(ref)
	return a
}

// fail answers an error from the intake. The intake logs the faults it makes; an error that is not a
// fault becomes an internal error, logged here with its cause so the ID can be traced.
func (s *Server) fail(err error, c intake.Client, stage string) *smtp.SMTPError {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return reply(fe)
	}
	return reply(s.logged(fault.From(err), c, stage))
}

// refuse makes, logs and answers a fault this package decides on itself.
func (s *Server) refuse(k fault.Kind, msg string, cause error, c intake.Client, stage string) *smtp.SMTPError {
	return reply(s.logged(fault.New(k, msg, cause), c, stage))
}

// refuseQuietly is refuse for faults the client caused (a dropped connection, a timeout), logged at
// info whatever their kind.
func (s *Server) refuseQuietly(k fault.Kind, msg string, cause error, c intake.Client, stage string) *smtp.SMTPError {
	e := fault.New(k, msg, cause)
	s.logAt(slog.LevelInfo, e, c, stage)
	return reply(e)
}

// logged writes a fault's log face once: ID, kind, stage, client and cause. Causes never hold
// passwords or message data.
func (s *Server) logged(e *fault.Error, c intake.Client, stage string) *fault.Error {
	lvl := slog.LevelInfo
	switch e.Kind {
	case fault.Internal, fault.StoreUnavailable, fault.StoreFull, fault.RateLimited:
		lvl = slog.LevelWarn
	}
	s.logAt(lvl, e, c, stage)
	return e
}

func (s *Server) logAt(lvl slog.Level, e *fault.Error, c intake.Client, stage string) {
	attrs := []any{"id", e.ID, "kind", e.Face().Type, "stage", stage, "via", c.Via, "remote", c.RemoteAddr}
	if e.Cause != nil {
		attrs = append(attrs, "cause", e.Cause.Error())
	}
	s.log.Log(context.Background(), lvl, "refused", attrs...)
}

// oneLine keeps a reply on one line of printable text: go-smtp splits replies at LF, and a CR or
// other control byte must never reach the client.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
