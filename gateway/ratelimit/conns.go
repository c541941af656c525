package ratelimit

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"
)

const (
	// maxRefusing bounds the goroutines answering refused connections; beyond it a refused connection
	// is closed without an answer, so a flood costs no more than the accept.
	maxRefusing = 32
	// refuseTimeout bounds the TLS handshake and the write of a refusal.
	refuseTimeout = 10 * time.Second
)

// Over says which connection limit a refused connection reached.
type Over int

// The limits.
const (
	OverTotal      Over = iota + 1 // the server's connections together
	OverPerAddress                 // the connections of one client address (Key)
)

// Sentence explains the refusal to a practitioner; what names the connections ("connections",
// "IMAP connections").
func (o Over) Sentence(what string) string {
	if o == OverPerAddress {
		return fmt.Sprintf("Too many %s from your address; please close some and try again later.", what)
	}
	return fmt.Sprintf("The gateway has too many %s just now; please try again in a few minutes.", what)
}

// Conns counts a server's live connections, in total and per client address, answers the ones over
// the limits in the background, and can close them all. It is safe for concurrent use.
type Conns struct {
	mu       sync.Mutex
	max      int
	maxPer   int
	per      map[string]int
	live     map[*Conn]struct{}
	refusing chan struct{}
}

// NewConns returns a limiter of maxTotal connections together and maxPer per client address.
func NewConns(maxTotal, maxPer int) *Conns {
	return &Conns{max: maxTotal, maxPer: maxPer, per: map[string]int{}, live: map[*Conn]struct{}{},
		refusing: make(chan struct{}, maxRefusing)}
}

// Admit counts c in and returns it wrapped, or returns nil and the limit it reached.
func (l *Conns) Admit(c net.Conn) (*Conn, Over) {
	key := Key(c.RemoteAddr())
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case len(l.live) >= l.max:
		return nil, OverTotal
	case l.per[key] >= l.maxPer:
		return nil, OverPerAddress
	}
	tc := &Conn{Conn: c, key: key, lim: l}
	l.per[key]++
	l.live[tc] = struct{}{}
	return tc, 0
}

func (l *Conns) release(tc *Conn) {
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

// CloseAll closes every live connection; their sessions end at their next read or write.
func (l *Conns) CloseAll() {
	l.mu.Lock()
	conns := make([]*Conn, 0, len(l.live))
	for tc := range l.live {
		conns = append(conns, tc)
	}
	l.mu.Unlock()
	for _, tc := range conns {
		tc.Close()
	}
}

// Count returns the live connections, in total and per client address.
func (l *Conns) Count() (total int, perKey map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	perKey = make(map[string]int, len(l.per))
	for k, v := range l.per {
		perKey[k] = v
	}
	return len(l.live), perKey
}

// Refuse writes line (CRLF added) to a connection that was not admitted and closes it, in the
// background: inside TLS when tlsConf is set (implicit-TLS ports), within refuseTimeout, and at most
// maxRefusing at once; beyond that the connection is closed without an answer. ctx ends the
// handshake early (server shutdown).
func (l *Conns) Refuse(ctx context.Context, c net.Conn, tlsConf *tls.Config, line string) {
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-l.refusing }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(refuseTimeout))
		if tlsConf != nil {
			tc := tls.Server(c, tlsConf)
			hctx, cancel := context.WithTimeout(ctx, refuseTimeout)
			defer cancel()
			if tc.HandshakeContext(hctx) != nil {
				return
			}
			c = tc
		}
		_, _ = c.Write([]byte(line + "\r\n"))
	}()
}

// Conn is an admitted connection; closing it gives its place back.
type Conn struct {
	net.Conn
	key  string
	lim  *Conns
	once sync.Once
}

// Key is the client address as the limits count it (see Key).
func (c *Conn) Key() string { return c.key }

// Close closes the connection and releases its place (once, however often it is called).
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.lim.release(c) })
	return err
}
