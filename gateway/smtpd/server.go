// Package smtpd is the SMTP submission front door (port 587 with STARTTLS, port 465 with implicit TLS).
// It speaks SMTP only: it turns commands into calls on the intake and the intake's *fault.Error values
// into SMTP replies, and it enforces the protocol-level limits (sizes, timeouts, sessions per address,
// failed sign-ins per address). Protocol work is done by github.com/emersion/go-smtp.
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"cafgate/directory"
	"cafgate/gateway/intake"
	"cafgate/gateway/ratelimit"
)

// Intake is what the SMTP front door needs of the intake; *intake.Intake has it. Every error it returns
// should be a *fault.Error; anything else is answered as an internal error and logged here.
type Intake interface {
	Authenticate(ctx context.Context, user, password string, c intake.Client) (*directory.Practitioner, error)
	Sender(ctx context.Context, p *directory.Practitioner, from string, c intake.Client) error
	Recipient(ctx context.Context, p *directory.Practitioner, rcpt string, c intake.Client) error
	Accept(ctx context.Context, s *intake.Submission) (string, error)
}

var _ Intake = (*intake.Intake)(nil)

// ErrServerClosed is returned by the Serve methods after Close or Shutdown.
var ErrServerClosed = smtp.ErrServerClosed

// The Via values given to the intake.
const (
	ViaSubmission  = "submission"  // port 587, STARTTLS
	ViaSubmissions = "submissions" // port 465, implicit TLS
)

// Server is the SMTP front door. One Server serves any number of submission and submissions listeners;
// the session limits count them together.
type Server struct {
	in          Intake
	opt         Options
	log         *slog.Logger
	smtp        *smtp.Server // port 587 before STARTTLS: offers STARTTLS, which the lineGuard answers
	smtpTLS     *smtp.Server // port 465, and port 587 after STARTTLS: TLS is terminated by the lineGuard
	handoff     *handoffListener
	handoffOnce sync.Once
	conns       *ratelimit.Conns
	fails       *ratelimit.Window
	mem         *ratelimit.Budget
	ctx         context.Context // cancelled by Close: ends intake calls in flight
	cancel      context.CancelFunc
	sleep       func(ctx context.Context, d time.Duration)

	mu        sync.Mutex
	closed    bool
	listeners []net.Listener
}

// New returns a Server that hands commands to in. Zero settings in opt take their defaults.
func New(in Intake, opt Options) *Server {
	opt = opt.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		in:      in,
		opt:     opt,
		log:     opt.Log,
		conns:   ratelimit.NewConns(opt.MaxSessions, opt.MaxSessionsPerIP),
		fails:   ratelimit.NewWindow(opt.AuthFailureWindow, opt.AuthFailuresBeforeBlock, maxTrackedAddresses, opt.Now),
		mem:     ratelimit.NewBudget(opt.MaxBufferedBytes),
		ctx:     ctx,
		cancel:  cancel,
		sleep:   sleepCtx,
		handoff: newHandoffListener(),
	}
	s.smtp = s.newSMTP(s.opt.TLSConfig)
	// The TLS instance has no TLSConfig: the lineGuard under it has terminated TLS already, and it must
	// not offer STARTTLS again.
	s.smtpTLS = s.newSMTP(nil)
	return s
}

func (s *Server) newSMTP(tlsConfig *tls.Config) *smtp.Server {
	ss := smtp.NewServer(backend{s})
	ss.Domain = s.opt.Hostname
	// MaxMessageBytes stays 0 in go-smtp: its own refusal of a too-large "MAIL FROM:<...> SIZE=n" carries
	// no ID and writes no log line, so the session checks SIZE= (Mail) and the data length (readMessage)
	// itself. EHLO then advertises SIZE without a number, which RFC 1870 allows.
	// MaxRecipients stays 0 in go-smtp: the session enforces it, so the reply carries a fault ID.
	ss.MaxLineLength = s.opt.MaxLineLength
	ss.ReadTimeout = s.opt.ReadTimeout
	ss.WriteTimeout = s.opt.WriteTimeout
	ss.TLSConfig = tlsConfig
	// The session itself refuses AUTH before TLS, with 530 5.7.0, and advertises AUTH only under TLS;
	// go-smtp's own refusal would be 523 5.7.10.
	ss.AllowInsecureAuth = true
	ss.ErrorLog = errorLog{s.log}
	return ss
}

// ServeSubmission serves port 587 on l: plain TCP, STARTTLS offered, AUTH and mail only after it. It
// returns nil after Close or Shutdown.
func (s *Server) ServeSubmission(l net.Listener) error {
	return s.serve(l, ViaSubmission, false)
}

// ServeSubmissions serves port 465 on l: TLS from the first byte. It returns nil after Close or Shutdown.
func (s *Server) ServeSubmissions(l net.Listener) error {
	return s.serve(l, ViaSubmissions, true)
}

func (s *Server) serve(l net.Listener, via string, implicitTLS bool) error {
	if s.opt.TLSConfig == nil {
		l.Close()
		return errors.New("smtpd: Options.TLSConfig is required")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners = append(s.listeners, l)
	s.handoffOnce.Do(func() {
		go func() { _ = s.smtpTLS.Serve(s.handoff) }()
	})
	s.mu.Unlock()
	// go-smtp sees a lineGuard, never a *tls.Conn: the guard terminates TLS (see guard.go).
	srv := s.smtp
	if implicitTLS {
		srv = s.smtpTLS
	}
	err := srv.Serve(&limitListener{Listener: l, srv: s, via: via, implicitTLS: implicitTLS})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil // the listener was closed by Close or Shutdown
	}
	return err
}

// Close closes the listeners and every connection at once, and cancels intake calls in flight.
func (s *Server) Close() error {
	err := s.stopListening()
	s.cancel()
	s.handoff.Close()
	for _, ss := range []*smtp.Server{s.smtp, s.smtpTLS} {
		if e := ss.Close(); e != nil && !errors.Is(e, smtp.ErrServerClosed) && !errors.Is(e, net.ErrClosed) && err == nil {
			err = e
		}
	}
	s.conns.CloseAll()
	return err
}

// Shutdown closes the listeners and waits for the sessions to end; when ctx ends first, it closes them
// as Close does and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.stopListening()
	// Sessions before STARTTLS first: while they end, STARTTLS may still hand some to the TLS instance.
	for _, ss := range []*smtp.Server{s.smtp, s.smtpTLS} {
		if ss == s.smtpTLS {
			s.handoff.Close()
		}
		if e := ss.Shutdown(ctx); e != nil {
			if errors.Is(e, smtp.ErrServerClosed) || errors.Is(e, net.ErrClosed) {
				continue
			}
			s.cancel()
			s.handoff.Close()
			s.smtp.Close()
			s.smtpTLS.Close()
			s.conns.CloseAll()
			return e
		}
	}
	s.cancel()
	return err
}

func (s *Server) stopListening() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var err error
	for _, l := range s.listeners {
		if e := l.Close(); e != nil && !errors.Is(e, net.ErrClosed) && err == nil {
			err = e
		}
	}
	s.listeners = nil
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// errorLog carries go-smtp's own reports (accept errors, TLS handshake failures, recovered panics) to
// slog. They hold no message data and no credentials.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) { e.report(fmt.Sprintf(format, v...)) }
func (e errorLog) Println(v ...any)               { e.report(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (e errorLog) report(msg string) {
	lvl := slog.LevelInfo
	if strings.HasPrefix(msg, "panic") {
		lvl = slog.LevelError
	}
	e.log.Log(context.Background(), lvl, "smtp connection", "detail", msg)
}
