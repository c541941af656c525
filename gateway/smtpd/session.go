package smtpd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/emersion/go-smtp"

	"cafgate/directory"
	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
	"cafgate/gateway/ratelimit"
)

// backend makes a session for each client greeting (and again after STARTTLS).
type backend struct{ s *Server }

var _ smtp.Backend = backend{}

// NewSession is called by go-smtp at the first EHLO/HELO and again after STARTTLS, so a session's TLS
// state never changes.
func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	nc := c.Conn()
	_, isTLS := c.TLSConnectionState()
	if g, ok := nc.(*lineGuard); ok {
		isTLS = g.tc != nil
	}
	cl := intake.Client{RemoteAddr: nc.RemoteAddr().String(), Via: viaOf(nc), TLS: isTLS}
	if err := checkArg(c.Hostname()); err != nil {
		return nil, b.s.refuse(fault.BadCommand, "The EHLO name contains a control character.", err, cl, "ehlo")
	}
	return &session{srv: b.s, conn: c, nc: nc, client: cl, key: ratelimit.Key(nc.RemoteAddr())}, nil
}

// viaOf names the port a connection came in on, from the lineGuard go-smtp is given.
func viaOf(nc net.Conn) string {
	if g, ok := nc.(*lineGuard); ok {
		return g.via
	}
	return ViaSubmission
}

// session is one SMTP session between greetings. Its state is guarded by mu because go-smtp runs Data
// for BDAT in a goroutine of its own while the connection's goroutine may call Reset.
type session struct {
	srv    *Server
	conn   *smtp.Conn
	nc     net.Conn // the connection as it is for this session's whole life (TLS or not)
	client intake.Client
	key    string // the client address as the limits count it

	mu    sync.Mutex
	user  *directory.Practitioner // signed in; nil before AUTH
	from  string                  // MAIL FROM of the open transaction
	open  bool                    // a MAIL command was accepted
	rcpts []string                // accepted recipients of the open transaction
}

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

// Reset ends the open transaction; the sign-in stays.
func (s *session) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.from, s.open, s.rcpts = "", false, nil
}

// Logout frees nothing: the session holds no resources outside the Go heap.
func (s *session) Logout() error { return nil }

// Mail opens a transaction: TLS, then sign-in, then the sender must be the signed-in practitioner.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.mu.Lock()
	user, open := s.user, s.open
	s.mu.Unlock()
	switch {
	case !s.client.TLS:
		return s.srv.refuse(fault.TLSRequired, "", nil, s.client, "mail")
	case user == nil:
		return s.srv.refuse(fault.AuthRequired, "", nil, s.client, "mail")
	case open:
		return s.srv.refuse(fault.BadCommand, "A message is already open; send RSET first.", nil, s.client, "mail")
	}
	if err := checkArg(from); err != nil {
		return s.srv.refuse(fault.BadCommand, "The sender address contains a control character.", err, s.client, "mail")
	}
	if opts != nil && opts.Size > s.srv.opt.MaxMessageBytes {
		return s.srv.refuse(fault.TooBig, fmt.Sprintf("The message is larger than the gateway accepts (%d bytes at most).", s.srv.opt.MaxMessageBytes),
			fmt.Errorf("declared SIZE=%d over %d", opts.Size, s.srv.opt.MaxMessageBytes), s.client, "mail")
	}
	if err := s.srv.in.Sender(s.srv.ctx, user, from, s.client); err != nil {
		return s.srv.fail(err, s.client, "mail")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.from, s.open, s.rcpts = from, true, nil
	return nil
}

// Rcpt adds a recipient the intake knows and allows, up to MaxRecipients.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mu.Lock()
	user, open, n := s.user, s.open, len(s.rcpts)
	s.mu.Unlock()
	switch {
	case user == nil || !open:
		return s.srv.refuse(fault.AuthRequired, "", nil, s.client, "rcpt")
	case n >= s.srv.opt.MaxRecipients:
		return s.srv.refuse(fault.TooManyRecipients, "", nil, s.client, "rcpt")
	}
	if err := checkArg(to); err != nil {
		return s.srv.refuse(fault.BadCommand, "The recipient address contains a control character.", err, s.client, "rcpt")
	}
	if err := s.srv.in.Recipient(s.srv.ctx, user, to, s.client); err != nil {
		return s.srv.fail(err, s.client, "rcpt")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open { // reset meanwhile
		return s.srv.refuse(fault.AuthRequired, "", nil, s.client, "rcpt")
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

// Data reads the message through the size limit and hands it to the intake, which commits it durably
// before this returns. Success is returned as a 250 *smtp.SMTPError so the reply carries the message ID.
func (s *session) Data(r io.Reader) (err error) {
	if g, ok := s.nc.(*lineGuard); ok {
		if body := g.body(); body != nil {
			r = body // DATA: the guard reads it a line at a time, go-smtp's reader a byte at a time
		}
		defer func() {
			var se *smtp.SMTPError
			if errors.As(err, &se) && se.Code >= 400 {
				g.drainAfter(se) // sent at once if the client goes on past MaxDrainBytes
			}
		}()
	}
	s.mu.Lock()
	sub := &intake.Submission{Sender: s.user, From: s.from, Recipients: append([]string(nil), s.rcpts...), Client: s.client}
	open := s.open
	s.mu.Unlock()
	if sub.Sender == nil || !open || len(sub.Recipients) == 0 {
		return s.srv.refuse(fault.AuthRequired, "", nil, s.client, "data")
	}
	content, release, err := s.readMessage(r)
	defer release()
	if err != nil {
		return err
	}
	sub.Content = content
	id, aerr := s.srv.in.Accept(s.srv.ctx, sub)
	if aerr != nil {
		return s.srv.fail(aerr, s.client, "data")
	}
	if sub.Opened != "" {
		return acceptedOpening(id, sub.Opened)
	}
	return accepted(id)
}
