package smtpd

import (
	"crypto/tls"
	"fmt"
	"net"

	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
	"cafgate/gateway/ratelimit"
)

// limitListener admits a connection only while the session limits allow it; otherwise it answers
// "421 4.7.0" in place of the greeting and closes it, without go-smtp ever seeing it. An admitted
// connection is handed to go-smtp inside a lineGuard (guard.go), which terminates TLS when implicitTLS.
type limitListener struct {
	net.Listener
	srv         *Server
	via         string
	implicitTLS bool // TLS from the first byte; the refusal too must be sent inside TLS
}

// Accept returns the next admitted connection.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, over := l.srv.conns.Admit(c)
		if tc != nil {
			if l.implicitTLS {
				t := tls.Server(tc, l.srv.opt.TLSConfig)
				return l.srv.newGuard(t, l.via, t, false), nil
			}
			return l.srv.newGuard(tc, l.via, nil, false), nil
		}
		l.srv.refuseConn(c, over, l.via, l.implicitTLS)
	}
}

// refuseConn answers a connection over the limits with 421 4.7.0 and closes it, in the background.
func (s *Server) refuseConn(c net.Conn, over ratelimit.Over, via string, implicitTLS bool) {
	cl := intake.Client{RemoteAddr: c.RemoteAddr().String(), Via: via, TLS: implicitTLS}
	rep := s.refuseQuietly(fault.RateLimited, over.Sentence("connections"), nil, cl, "connect")
	var conf *tls.Config
	if implicitTLS {
		conf = s.opt.TLSConfig
	}
	s.conns.Refuse(s.ctx, c, conf, fmt.Sprintf("%d %d.%d.%d %s", rep.Code, rep.EnhancedCode[0], rep.EnhancedCode[1], rep.EnhancedCode[2], rep.Message))
}
