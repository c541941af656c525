package imapd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"cafgate/gateway/fault"
	"cafgate/gateway/ratelimit"
)

// limitListener admits a connection only while the connection limits allow it; otherwise it answers
// "* BYE" in place of the greeting and closes it, without imapserver ever seeing it. With tls set it
// wraps admitted connections in TLS (implicit TLS, port 993).
type limitListener struct {
	net.Listener
	srv *Server
	via string
	tls *tls.Config
}

// Accept returns the next admitted connection.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, over := l.srv.conns.admit(c, l.via)
		if tc == nil {
			l.srv.refuseConn(c, over.Sentence("IMAP connections"), l.via, l.tls)
			continue
		}
		if l.tls != nil {
			return tls.Server(tc, l.tls), nil
		}
		return tc, nil
	}
}

// refuseConn answers a connection over the limits with BYE and closes it, in the background.
func (s *Server) refuseConn(c net.Conn, msg, via string, tlsConf *tls.Config) {
	id := fault.NewID()
	s.opt.Log.Warn("imap connection refused", "id", id, "via", via, "remote", c.RemoteAddr().String(), "reason", msg)
	s.conns.Refuse(context.Background(), c, tlsConf, fmt.Sprintf("* BYE [UNAVAILABLE] %s (ID %s)", msg, id))
}

// connLimiter is the shared connection limiter (ratelimit.Conns) with the connection type this
// package's sessions look for under TLS.
type connLimiter struct{ *ratelimit.Conns }

func newConnLimiter(maxTotal, maxPer int) *connLimiter {
	return &connLimiter{ratelimit.NewConns(maxTotal, maxPer)}
}

// admit counts c in and returns it wrapped, or returns nil and the limit it reached.
func (l *connLimiter) admit(c net.Conn, via string) (*trackedConn, ratelimit.Over) {
	rc, over := l.Admit(c)
	if rc == nil {
		return nil, over
	}
	return &trackedConn{Conn: rc, via: via, key: rc.Key()}, 0
}

// closeAll closes every live connection.
func (l *connLimiter) closeAll() { l.CloseAll() }

// count returns the live connections, for tests.
func (l *connLimiter) count() int {
	n, _ := l.Count()
	return n
}

// trackedConn is an admitted connection (a *ratelimit.Conn: closing it gives its place back) with the
// port it came in on.
type trackedConn struct {
	net.Conn
	via string
	key string // the rate-limit key of the client address
}

// libLogger takes imapserver's own messages: panics at error level, the rest (read errors of
// clients that went away, syntax errors) at debug level, truncated. imapserver never puts message
// data in them; command arguments could only appear through an error text, so they are cut short.
type libLogger struct{ log *slog.Logger }

func (l libLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.HasPrefix(msg, "panic") {
		first, _, _ := strings.Cut(msg, "\n")
		l.log.Error("imap library panic", "err", truncate(first, 300))
		return
	}
	l.log.Debug("imap library", "msg", truncate(msg, 200))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
