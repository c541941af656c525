package imapd

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"cafgate/gateway/fault"
	"cafgate/gateway/ratelimit"
)

const (
	// maxRefusing bounds the goroutines answering refused connections; beyond it a refused connection
	// is closed without an answer.
	maxRefusing = 32
	// refuseTimeout bounds the TLS handshake and the write of a refusal.
	refuseTimeout = 10 * time.Second
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
		tc, msg := l.srv.conns.admit(c, l.via)
		if tc == nil {
			l.srv.refuseConn(c, msg, l.via, l.tls)
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
	select {
	case s.conns.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-s.conns.refusing }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(refuseTimeout))
		if tlsConf != nil {
			tc := tls.Server(c, tlsConf)
			if tc.Handshake() != nil {
				return
			}
			c = tc
		}
		_, _ = fmt.Fprintf(c, "* BYE [UNAVAILABLE] %s (ID %s)\r\n", msg, id)
	}()
}

// connLimiter counts live connections, in total and per client address, and can close them all.
type connLimiter struct {
	mu       sync.Mutex
	max      int
	maxPer   int
	per      map[string]int
	live     map[*trackedConn]struct{}
	refusing chan struct{}
}

func newConnLimiter(maxTotal, maxPer int) *connLimiter {
	return &connLimiter{max: maxTotal, maxPer: maxPer, per: map[string]int{}, live: map[*trackedConn]struct{}{},
		refusing: make(chan struct{}, maxRefusing)}
}

// admit counts c in and returns it wrapped, or returns the sentence explaining the refusal.
func (l *connLimiter) admit(c net.Conn, via string) (*trackedConn, string) {
	key := ratelimit.Key(c.RemoteAddr())
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case len(l.live) >= l.max:
		return nil, "The gateway has too many IMAP connections just now; please try again in a few minutes."
	case l.per[key] >= l.maxPer:
		return nil, "Too many IMAP connections from your address; please close some and try again later."
	}
	tc := &trackedConn{Conn: c, via: via, key: key, lim: l}
	l.per[key]++
	l.live[tc] = struct{}{}
	return tc, ""
}

func (l *connLimiter) release(tc *trackedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.live[tc]; !ok {
		return
	}
	delete(l.live, tc)
	if l.per[tc.key]--; l.per[tc.key] <= 0 {
		delete(l.per, tc.key)
	}
}

// closeAll closes every live connection.
func (l *connLimiter) closeAll() {
	l.mu.Lock()
	conns := make([]*trackedConn, 0, len(l.live))
	for tc := range l.live {
		conns = append(conns, tc)
	}
	l.mu.Unlock()
	for _, tc := range conns {
		tc.Close()
	}
}

// count returns the live connections, for tests.
func (l *connLimiter) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.live)
}

// trackedConn is an admitted connection; closing it gives its place back.
type trackedConn struct {
	net.Conn
	via  string
	key  string // the rate-limit key of the client address
	lim  *connLimiter
	once sync.Once
}

// Close closes the connection and releases its place (once, however often it is called).
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.lim.release(c) })
	return err
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
