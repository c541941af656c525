package smtpd

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
	"cafgate/gateway/ratelimit"
)

const (
	// maxRejecting bounds the goroutines answering refused connections; beyond it a refused connection
	// is closed without an answer, so a flood costs no more than the accept.
	maxRejecting = 32
	// rejectTimeout bounds the TLS handshake and the write of a refusal.
	rejectTimeout = 10 * time.Second
)

// limitListener admits a connection only while the session limits allow it; otherwise it answers
// "421 4.7.0" in place of the greeting and closes it, without go-smtp ever seeing it.
type limitListener struct {
	net.Listener
	srv         *Server
	via         string
	implicitTLS bool // the refusal must be sent inside TLS
}

// Accept returns the next admitted connection.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, msg := l.srv.conns.admit(c, l.via)
		if tc != nil {
			if l.implicitTLS {
				t := tls.Server(tc, l.srv.opt.TLSConfig)
				return l.srv.newGuard(t, l.via, t, false), nil
			}
			return l.srv.newGuard(tc, l.via, nil, false), nil
		}
		l.srv.refuseConn(c, msg, l.via, l.implicitTLS)
	}
}

// refuseConn answers a connection over the limits with 421 4.7.0 and closes it, in the background.
func (s *Server) refuseConn(c net.Conn, msg, via string, implicitTLS bool) {
	cl := intake.Client{RemoteAddr: c.RemoteAddr().String(), Via: via, TLS: implicitTLS}
	rep := s.refuseQuietly(fault.RateLimited, msg, nil, cl, "connect")
	select {
	case s.reject <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-s.reject }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(rejectTimeout))
		if implicitTLS {
			tc := tls.Server(c, s.opt.TLSConfig)
			ctx, cancel := context.WithTimeout(s.ctx, rejectTimeout)
			defer cancel()
			if tc.HandshakeContext(ctx) != nil {
				return
			}
			c = tc
		}
		_, _ = fmt.Fprintf(c, "%d %d.%d.%d %s\r\n", rep.Code, rep.EnhancedCode[0], rep.EnhancedCode[1], rep.EnhancedCode[2], rep.Message)
	}()
}

// connLimiter counts live sessions, in total and per client address, and can close them all.
type connLimiter struct {
	mu     sync.Mutex
	max    int
	maxPer int
	per    map[string]int
	live   map[*trackedConn]struct{}
}

func newConnLimiter(maxTotal, maxPer int) *connLimiter {
	return &connLimiter{max: maxTotal, maxPer: maxPer, per: map[string]int{}, live: map[*trackedConn]struct{}{}}
}

// admit counts c in and returns it wrapped, or returns the sentence explaining the refusal.
func (l *connLimiter) admit(c net.Conn, via string) (*trackedConn, string) {
	key := ratelimit.Key(c.RemoteAddr())
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case len(l.live) >= l.max:
		return nil, "The gateway has too many connections just now; please try again in a few minutes."
	case l.per[key] >= l.maxPer:
		return nil, "Too many connections from your address; please close some and try again later."
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

// closeAll closes every live connection; their sessions end at their next read or write.
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

func (l *connLimiter) count() (total int, perKey map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	perKey = make(map[string]int, len(l.per))
	for k, v := range l.per {
		perKey[k] = v
	}
	return len(l.live), perKey
}

// trackedConn is an admitted connection; closing it gives its place back.
type trackedConn struct {
	net.Conn
	via string
	key string
	lim *connLimiter
}

// Close closes the connection and releases its place (once, however often it is called).
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.lim.release(c)
	return err
}
