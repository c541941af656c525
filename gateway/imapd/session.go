package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"cafgate/directory"
	"cafgate/gateway/intake"
	"cafgate/mailbox"
)

// session is one IMAP connection. imapserver calls its methods one at a time (IDLE runs in its own
// goroutine while the connection only waits for DONE), so its fields need no lock.
type session struct {
	srv    *Server
	conn   *imapserver.Conn
	tc     *trackedConn
	client intake.Client

	user      *directory.Practitioner // nil until signed in
	box       *mailbox.HostedUser
	notify    <-chan struct{} // the notifier's channel for this user
	unwatch   func()
	counted   bool // counted in srv.users
	checked   time.Time
	sel       *view // the selected folder; nil when none
	sessionID string
}

// Close releases what the session holds; imapserver calls it once the connection has ended.
func (s *session) Close() error {
	if s.unwatch != nil {
		s.unwatch()
	}
	if s.counted {
		s.srv.dropUser(s.user.Mail)
	}
	if s.user != nil {
		s.srv.opt.Log.Info("imap session ended", "session", s.sessionID, "via", s.client.Via, "remote", s.client.RemoteAddr)
	}
	return nil
}

// ctx returns a context for one store operation: it ends with the server or after OpTimeout.
func (s *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.srv.ctx, s.srv.opt.OpTimeout)
}

// tlsNow reports whether the connection runs TLS at this moment (after STARTTLS, or from the start).
func (s *session) tlsNow() bool {
	_, ok := s.conn.NetConn().(*tls.Conn)
	return ok
}

// Namespace has one personal namespace with '/' between levels.
func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: mailbox.FolderSeparator}}}, nil
}

// AppendLimit is the APPEND size limit: nothing before sign-in (so an unauthenticated client cannot make
// the server read a literal), MaxMessageBytes after.
func (s *session) AppendLimit() uint32 {
	if s.box == nil {
		return 0
	}
	return uint32(s.srv.opt.MaxMessageBytes)
}

// Unselect leaves the selected folder.
func (s *session) Unselect() error {
	s.sel = nil
	return nil
}

// Poll reports what changed in the selected folder since the client last heard, after every command;
// it also ends the session when the practitioner may no longer use the gateway.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if err := s.recheck(); err != nil {
		return err
	}
	if s.sel == nil {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	return s.sel.sync(ctx, s.box, w, allowExpunge)
}

// Idle waits for changes to the user's folders (a notification, or every IdlePoll) and reports the
// selected folder's until stop is closed.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	t := time.NewTicker(s.srv.opt.IdlePoll)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-s.srv.ctx.Done():
			return nil
		case <-s.notify:
		case <-t.C:
		}
		if err := s.Poll(w, true); err != nil {
			return err
		}
	}
}

// recheck asks the directory again, every StandingInterval, whether the signed-in practitioner may
// still use the gateway; if not, it says BYE and closes the connection.
func (s *session) recheck() error {
	if s.user == nil || s.srv.opt.Standing == nil {
		return nil
	}
	now := s.srv.opt.Now()
	if now.Sub(s.checked) < s.srv.opt.StandingInterval {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	err := s.srv.opt.Standing(ctx, s.user.Mail)
	switch {
	case err == nil:
		s.checked = now
		return nil
	case errors.Is(err, directory.ErrUnavailable):
		return nil // try again at the next command; the directory being down is no reason to cut clients off
	}
	s.srv.opt.Log.Warn("imap session ended: practitioner no longer in good standing", "session", s.sessionID,
		"dn", s.user.DN, "err", err)
	_ = s.conn.Bye("You may no longer use the gateway; please contact your agency administrator.")
	return errSessionEnded
}

var errSessionEnded = errors.New("imapd: session ended")
