package smtpd

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"cafgate/directory"
	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
)

// AuthMechanisms advertises PLAIN and LOGIN, and only under TLS: before STARTTLS, EHLO offers no AUTH.
func (s *session) AuthMechanisms() []string {
	if !s.client.TLS {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts a sign-in: refused before TLS (530 5.7.0) and, after too many failures from the client's
// address, refused with 421 4.7.0 and the connection closed.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.client.TLS {
		return nil, s.srv.refuse(fault.TLSRequired, "", nil, s.client, "auth")
	}
	if err := s.blocked(); err != nil {
		return nil, err
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return &saslGuard{s: s, inner: sasl.NewPlainServer(s.plain)}, nil
	case sasl.Login:
		return &saslGuard{s: s, inner: &loginServer{authenticate: s.login}}, nil
	}
	return nil, s.srv.refuse(fault.BadCommand, "Unsupported sign-in mechanism; use PLAIN or LOGIN.", nil, s.client, "auth")
}

// plain checks a PLAIN response. An authorization identity, when given, must be the user name: a
// practitioner may only act as themselves.
func (s *session) plain(identity, user, password string) error {
	if identity != "" && intake.NormalizeMail(identity) != intake.NormalizeMail(user) {
		return s.signInFailed(errors.New("PLAIN authorization identity differs from the user name"))
	}
	return s.authenticate(user, password)
}

func (s *session) login(user, password string) error { return s.authenticate(user, password) }

// authenticate signs the practitioner in through the intake, counts failures against the client's
// address and delays the answer once that address has failed too often.
func (s *session) authenticate(user, password string) error {
	if err := s.blocked(); err != nil {
		return err
	}
	if checkArg(user) != nil || checkSecret(password) != nil {
		return s.signInFailed(errors.New("control character in user name or password"))
	}
	before := s.srv.fails.Count(s.key)
	p, err := s.srv.in.Authenticate(s.srv.ctx, user, password, s.client)
	var rep *smtp.SMTPError
	if err != nil {
		if fault.From(err).Kind == fault.BadCredentials {
			s.srv.fails.Add(s.key)
		}
		rep = s.srv.fail(err, s.client, "auth")
	} else if p == nil {
		rep = s.srv.refuse(fault.Internal, "", errors.New("intake signed in a nil practitioner"), s.client, "auth")
	}
	s.srv.delayAuth(before)
	if rep != nil {
		return rep
	}
	s.setUser(p)
	return nil
}

func (s *session) setUser(p *directory.Practitioner) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user = p
}

// signInFailed refuses a sign-in this package found wrong before asking the intake; it counts as a
// failure like a wrong password, and is delayed like one.
func (s *session) signInFailed(cause error) error {
	before := s.srv.fails.Count(s.key)
	s.srv.fails.Add(s.key)
	rep := s.srv.refuse(fault.BadCredentials, "", cause, s.client, "auth")
	s.srv.delayAuth(before)
	return rep
}

// delayAuth holds an AUTH answer when its address had already failed AuthFailuresBeforeDelay times:
// AuthDelay, doubled for each further failure, at most AuthMaxDelay.
func (s *Server) delayAuth(failures int) {
	if d := authDelay(failures, s.opt.AuthFailuresBeforeDelay, s.opt.AuthDelay, s.opt.AuthMaxDelay); d > 0 {
		s.sleep(s.ctx, d)
	}
}

func authDelay(failures, threshold int, base, limit time.Duration) time.Duration {
	if failures < threshold {
		return 0
	}
	d := base
	for i := threshold; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// blocked refuses AUTH from an address with AuthFailuresBeforeBlock failures in the window: it writes
// 421 4.7.0 itself and closes the connection, since go-smtp would keep the session open after the reply.
func (s *session) blocked() error {
	n := s.srv.fails.Count(s.key)
	if n < s.srv.opt.AuthFailuresBeforeBlock {
		return nil
	}
	wait := s.srv.fails.RetryAfter(s.key, s.srv.opt.AuthFailuresBeforeBlock)
	mins := int((wait + time.Minute - 1) / time.Minute)
	msg := fmt.Sprintf("Too many failed sign-ins from your address; please wait %d minutes and try again.", max(mins, 1))
	rep := s.srv.refuse(fault.RateLimited, msg, fmt.Errorf("%d failed sign-ins within %s; blocked for %s", n, s.srv.opt.AuthFailureWindow, wait.Round(time.Second)), s.client, "auth")
	_ = s.nc.SetWriteDeadline(time.Now().Add(s.srv.opt.WriteTimeout))
	_, _ = fmt.Fprintf(s.nc, "%d %d.%d.%d %s\r\n", rep.Code, rep.EnhancedCode[0], rep.EnhancedCode[1], rep.EnhancedCode[2], rep.Message)
	_ = s.conn.Close()
	return rep
}

// saslGuard makes every error of a SASL mechanism an *smtp.SMTPError: go-sasl's own errors ("sasl:
// invalid response") would otherwise reach the client as text. A malformed exchange is a failed
// sign-in.
type saslGuard struct {
	s     *session
	inner sasl.Server
}

func (g *saslGuard) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := g.inner.Next(response)
	if err == nil {
		return challenge, done, nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return nil, false, se
	}
	return nil, false, g.s.signInFailed(err)
}
