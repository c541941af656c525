// Package imapd is the IMAP front door to the hosted mailboxes: IMAPS (implicit TLS) and IMAP with
// STARTTLS, sign-in through the same door as SMTP submission (intake's Authenticate, so a lapsed or
// disabled practitioner cannot sign in), and the folders and messages of package mailbox behind
// go-imap v2's imapserver. Protocol code only: storage, sealing and the ledger live in mailbox.
package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"cafgate/directory"
	"cafgate/gateway/intake"
	"cafgate/gateway/ratelimit"
	"cafgate/mailbox"
)

// Authenticator signs practitioners in; *intake.Intake is one. Errors are *fault.Error.
type Authenticator interface {
	Authenticate(ctx context.Context, user, password string, c intake.Client) (*directory.Practitioner, error)
}

// Store gives a signed-in practitioner their hosted mailbox; *mailbox.Store is one.
type Store interface {
	HostedUser(ctx context.Context, mail string) (*mailbox.HostedUser, error)
}

// Recorder appends ledger events; *mailbox.Store is one.
type Recorder interface {
	RecordEvent(ctx context.Context, typ, messageID string, data any) error
}

// The names of the two doors, in logs, the ledger and intake.Client.Via.
const (
	ViaIMAP  = "imap"  // port 143, STARTTLS before sign-in
	ViaIMAPS = "imaps" // port 993, implicit TLS
)

// Server is the IMAP front door. It is safe for concurrent use.
type Server struct {
	auth  Authenticator
	store Store
	opt   Options
	imap  *imapserver.Server
	conns *connLimiter
	fails *ratelimit.Window
	ctx   context.Context
	stop  context.CancelFunc

	mu    sync.Mutex
	users map[string]int // signed-in sessions per practitioner
}

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionSASL        = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

// New returns a Server; Serve* refuse to run without opt.TLSConfig.
func New(auth Authenticator, store Store, opt Options) *Server {
	opt = opt.withDefaults()
	s := &Server{auth: auth, store: store, opt: opt, users: map[string]int{},
		conns: newConnLimiter(opt.MaxConnections, opt.MaxConnectionsPerIP),
		fails: ratelimit.NewWindow(opt.AuthFailureWindow, opt.AuthFailuresBeforeBlock, maxTrackedAddresses, opt.Now)}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.imap = imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps: imap.CapSet{
			imap.CapIMAP4rev1: {}, imap.CapNamespace: {}, imap.CapUIDPlus: {}, imap.CapMove: {},
			imap.CapSpecialUse: {}, imap.CapChildren: {}, imap.CapListStatus: {}, imap.CapListExtended: {},
		},
		Logger:       libLogger{log: opt.Log},
		TLSConfig:    opt.TLSConfig,
		InsecureAuth: opt.insecureAuth,
	})
	return s
}

// Notifier returns the notifier sessions watch; delivery notifies it after each commit.
func (s *Server) Notifier() *mailbox.Notifier { return s.opt.Notifier }

// ServeIMAPS accepts implicit-TLS connections (port 993) on l until Close.
func (s *Server) ServeIMAPS(l net.Listener) error {
	if s.opt.TLSConfig == nil {
		return errors.New("imapd: no TLS configuration")
	}
	return s.serve(&limitListener{Listener: l, srv: s, via: ViaIMAPS, tls: s.opt.TLSConfig})
}

// ServeIMAP accepts plain connections (port 143) on l until Close: STARTTLS is offered and sign-in is
// refused before it (LOGINDISABLED).
func (s *Server) ServeIMAP(l net.Listener) error {
	if s.opt.TLSConfig == nil {
		return errors.New("imapd: no TLS configuration")
	}
	return s.serve(&limitListener{Listener: l, srv: s, via: ViaIMAP})
}

func (s *Server) serve(l net.Listener) error {
	err := s.imap.Serve(l)
	if err != nil && strings.Contains(err.Error(), "server closed") {
		return net.ErrClosed
	}
	return err
}

// Close stops the listeners and ends every session at once (IMAP clients reconnect on their own).
func (s *Server) Close() error {
	s.stop()
	err := s.imap.Close()
	s.conns.closeAll()
	if err != nil && strings.Contains(err.Error(), "server closed") {
		return nil
	}
	return err
}

// Shutdown is Close; it has the signature of the other front doors' Shutdown.
func (s *Server) Shutdown(context.Context) error { return s.Close() }

// newSession is called by imapserver for each admitted connection.
func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	tc := trackedOf(c.NetConn())
	if tc == nil {
		return nil, nil, fmt.Errorf("imapd: connection not admitted through a limit listener")
	}
	return &session{srv: s, conn: c, tc: tc,
		client: intake.Client{RemoteAddr: tc.RemoteAddr().String(), Via: tc.via, TLS: tc.via == ViaIMAPS}}, nil, nil
}

// addUser counts one more session for mail; it reports false when mail has MaxConnectionsPerUser.
func (s *Server) addUser(mail string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[mail] >= s.opt.MaxConnectionsPerUser {
		return false
	}
	s.users[mail]++
	return true
}

func (s *Server) dropUser(mail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[mail]--; s.users[mail] <= 0 {
		delete(s.users, mail)
	}
}

// trackedOf finds the admitted connection under c (directly, or under TLS).
func trackedOf(c net.Conn) *trackedConn {
	for i := 0; i < 4 && c != nil; i++ {
		switch x := c.(type) {
		case *trackedConn:
			return x
		case *tls.Conn:
			c = x.NetConn()
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}
