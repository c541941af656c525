package ldap

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
)

// conn is one LDAP connection and the socket under it, whose deadline bounds the steps the library
// itself does not time (the TLS handshake, the StartTLS answer).
type conn struct {
	*goldap.Conn
	raw    net.Conn
	reused bool // taken from the pool rather than dialled for this request
}

// dial connects, secures and (when bindDN is set) binds, all within the connect timeout and ctx.
// A failure closes everything it opened.
func dial(ctx context.Context, ep endpoint, connectTimeout time.Duration, bindDN, password string) (*conn, error) {
	deadline := time.Now().Add(connectTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", ep.addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", ep.addr, err)
	}
	raw.SetDeadline(deadline)
	c, err := secure(ctx, raw, ep, time.Until(deadline))
	if err != nil {
		raw.Close()
		return nil, err
	}
	if bindDN != "" {
		c.SetTimeout(time.Until(deadline))
		if err := c.Bind(bindDN, password); err != nil {
			c.Close()
			return nil, fmt.Errorf("bind as %s: %w", bindDN, err)
		}
	}
	raw.SetDeadline(time.Time{})
	return c, nil
}

// secure runs TLS (ldaps://) or StartTLS (ldap://) unless the endpoint is plain, and starts the
// library's connection.
func secure(ctx context.Context, raw net.Conn, ep endpoint, left time.Duration) (*conn, error) {
	if ep.implicit {
		tc := tls.Client(raw, ep.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS with %s: %w", ep.addr, err)
		}
		c := goldap.NewConn(tc, true)
		c.Start()
		return &conn{Conn: c, raw: raw}, nil
	}
	c := goldap.NewConn(raw, false)
	c.Start()
	if ep.plain {
		return &conn{Conn: c, raw: raw}, nil
	}
	c.SetTimeout(left)
	if err := c.StartTLS(ep.tls); err != nil {
		c.Close()
		return nil, fmt.Errorf("StartTLS with %s: %w", ep.addr, err)
	}
	if st, ok := c.TLSConnectionState(); !ok || !st.HandshakeComplete {
		c.Close()
		return nil, fmt.Errorf("StartTLS with %s: no TLS session", ep.addr)
	}
	return &conn{Conn: c, raw: raw}, nil
}

// within sets the library's request timeout so that the next request ends by the earlier of timeout
// from now and ctx's deadline, and returns that limit.
func (c *conn) within(ctx context.Context, timeout time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	if timeout < time.Millisecond {
		timeout = time.Millisecond
	}
	c.SetTimeout(timeout)
	return timeout
}
