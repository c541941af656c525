package imapd

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
	"cafgate/mailbox/ledger"
)

// AuthenticateMechanisms offers PLAIN and LOGIN; imapserver advertises them only under TLS and says
// LOGINDISABLED before it.
func (s *session) AuthenticateMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

// Authenticate starts a SASL exchange. Every failure, including a malformed exchange, answers NO
// [AUTHENTICATIONFAILED] (or [UNAVAILABLE]) and never go-sasl's own text.
func (s *session) Authenticate(mech string) (sasl.Server, error) {
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return &saslGuard{s: s, inner: sasl.NewPlainServer(s.plain)}, nil
	case sasl.Login:
		return &saslGuard{s: s, inner: &loginServer{authenticate: s.Login}}, nil
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
		Text: "Unsupported sign-in mechanism; use PLAIN or LOGIN."}
}

// plain checks a PLAIN response: an authorization identity, when given, must be the user name.
func (s *session) plain(identity, user, password string) error {
	if identity != "" && intake.NormalizeMail(identity) != intake.NormalizeMail(user) {
		return s.refuseSignIn(errors.New("PLAIN authorization identity differs from the user name"), "")
	}
	return s.Login(user, password)
}

// Login signs the practitioner in through the intake and opens their hosted mailbox (creating the
// default folders on the first sign-in). imapserver has already refused it before TLS.
func (s *session) Login(user, password string) error {
	if s.user != nil {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Already signed in."}
	}
	if err := s.blocked(); err != nil {
		return err
	}
	if hasControl(user) || hasControl(password) || len(user) > 320 || len(password) > 1024 {
		return s.refuseSignIn(errors.New("control character or overlong user name or password"), user)
	}
	before := s.srv.fails.Count(s.tc.key)
	ctx, cancel := s.ctx()
	defer cancel()
	cl := s.client
	cl.TLS = s.tlsNow()
	p, err := s.srv.auth.Authenticate(ctx, user, password, cl)
	if err == nil && p == nil {
		err = fault.New(fault.Internal, "", errors.New("authenticator signed in a nil practitioner"))
	}
	if err != nil {
		fe := fault.From(err)
		if fe.Kind == fault.BadCredentials {
			s.srv.fails.Add(s.tc.key)
		}
		s.srv.delayAuth(before)
		s.record(ledger.SignInFailed, user, faultReason(fe))
		return signInAnswer(fe)
	}
	if s.srv.opt.Hosted != nil && !s.srv.opt.Hosted(p.Mail) {
		s.srv.opt.Log.Info("imap sign-in refused: mail not hosted here", "remote", s.client.RemoteAddr, "dn", p.DN)
		s.record(ledger.SignInFailed, p.Mail, "not-hosted")
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthorizationFailed,
			Text: "Your mail is not hosted on this gateway: read it in your agency's own mail service."}
	}
	return s.open(p.Mail, p)
}

// refuseSignIn refuses a sign-in this package found wrong before asking the intake; it counts and is
// delayed like a wrong password.
func (s *session) refuseSignIn(cause error, user string) error {
	before := s.srv.fails.Count(s.tc.key)
	s.srv.fails.Add(s.tc.key)
	fe := fault.New(fault.BadCredentials, "", cause)
	s.srv.opt.Log.Info("imap sign-in refused", "id", fe.ID, "remote", s.client.RemoteAddr, "err", cause)
	s.srv.delayAuth(before)
	s.record(ledger.SignInFailed, user, "bad-credentials")
	return signInAnswer(fe)
}

// blocked refuses sign-in from an address with AuthFailuresBeforeBlock failures in the window, without
// asking the directory.
func (s *session) blocked() error {
	if s.srv.fails.Count(s.tc.key) < s.srv.opt.AuthFailuresBeforeBlock {
		return nil
	}
	wait := s.srv.fails.RetryAfter(s.tc.key, s.srv.opt.AuthFailuresBeforeBlock)
	mins := max(int((wait+time.Minute-1)/time.Minute), 1)
	fe := fault.New(fault.RateLimited, fmt.Sprintf("Too many failed sign-ins from your address; please wait %d minutes and try again.", mins), nil)
	s.srv.opt.Log.Warn("imap sign-in blocked", "id", fe.ID, "remote", s.client.RemoteAddr, "retry_after", wait.Round(time.Second))
	return signInAnswer(fe)
}

// signInAnswer is the NO for a refused sign-in: AUTHENTICATIONFAILED for credentials (whatever the
// reason: a stranger must not learn that an account exists or has lapsed), UNAVAILABLE for the rest.
func signInAnswer(fe *fault.Error) error {
	code := imap.ResponseCodeUnavailable
	if fe.Kind == fault.BadCredentials {
		code = imap.ResponseCodeAuthenticationFailed
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: fmt.Sprintf("%s (ID %s)", fe.Sentence(), fe.ID)}
}

func faultReason(fe *fault.Error) string {
	switch fe.Kind {
	case fault.BadCredentials:
		return "bad-credentials"
	case fault.AuthDirectoryUnavailable, fault.DirectoryUnavailable:
		return "directory-unavailable"
	case fault.RateLimited:
		return "rate-limited"
	}
	return "internal"
}

// delayAuth holds a sign-in answer when the address had already failed AuthFailuresBeforeDelay times.
func (s *Server) delayAuth(failures int) {
	o := s.opt
	if failures < o.AuthFailuresBeforeDelay {
		return
	}
	d := o.AuthDelay
	for i := o.AuthFailuresBeforeDelay; i < failures && d < o.AuthMaxDelay; i++ {
		d *= 2
	}
	t := time.NewTimer(min(d, o.AuthMaxDelay))
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.ctx.Done():
	}
}

// record appends a sign-in event to the ledger when a Recorder is set. The user is kept only when it
// is a well-formed address (a password typed into the user field must not reach the ledger).
func (s *session) record(typ, user, reason string) {
	if s.srv.opt.Events == nil {
		return
	}
	ctx, cancel := s.ctx()
	defer cancel()
	d := ledger.SignInData{User: intake.NormalizeMail(user), Via: s.client.Via, Remote: s.client.RemoteAddr, Reason: reason}
	if err := s.srv.opt.Events.RecordEvent(ctx, typ, "", d); err != nil {
		s.srv.opt.Log.Error("recording an imap sign-in in the ledger", "err", err)
	}
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// saslGuard makes every error of a SASL mechanism an *imap.Error: go-sasl's own errors ("sasl:
// invalid response") would otherwise become "Internal server error" and a log line.
type saslGuard struct {
	s     *session
	inner sasl.Server
}

func (g *saslGuard) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := g.inner.Next(response)
	if err == nil {
		return challenge, done, nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		return nil, false, ie
	}
	return nil, false, g.s.refuseSignIn(err, "")
}

// loginServer is the server side of the LOGIN mechanism, which go-sasl only implements as a client:
// "Username:", then "Password:", then the check.
type loginServer struct {
	authenticate func(user, password string) error
	state        int
	user         string
}

var errLoginSequence = errors.New("sasl login: response after the exchange ended")

func (a *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch a.state {
	case 0:
		if response == nil {
			a.state = 1
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		a.user = string(response)
		a.state = 2
		return []byte("Password:"), false, nil
	case 2:
		a.state = 3
		return nil, true, a.authenticate(a.user, string(response))
	}
	return nil, true, errLoginSequence
}
