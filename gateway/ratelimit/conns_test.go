package ratelimit

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// addrConn is one end of a net.Pipe that reports a given client address.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

func pipeFrom(t *testing.T, ip string) (server net.Conn, client net.Conn) {
	t.Helper()
	s, c := net.Pipe()
	t.Cleanup(func() { s.Close(); c.Close() })
	return addrConn{Conn: s, remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}}, c
}

func TestConnsLimits(t *testing.T) {
	l := NewConns(3, 2)
	a1, _ := pipeFrom(t, "192.0.2.1")
	a2, _ := pipeFrom(t, "192.0.2.1")
	a3, _ := pipeFrom(t, "192.0.2.1")
	c1, over := l.Admit(a1)
	if c1 == nil || over != 0 || c1.Key() != "192.0.2.1" {
		t.Fatalf("first: %v %v", c1, over)
	}
	if c, _ := l.Admit(a2); c == nil {
		t.Fatal("second refused")
	}
	if c, over := l.Admit(a3); c != nil || over != OverPerAddress {
		t.Fatalf("third from one address: %v %v", c, over)
	}
	// IPv6: one /64 counts as one address.
	b1, _ := pipeFrom(t, "2001:db8::1")
	b2, _ := pipeFrom(t, "2001:db8::2")
	if c, _ := l.Admit(b1); c == nil {
		t.Fatal("IPv6 refused")
	}
	if c, over := l.Admit(b2); c != nil || over != OverTotal {
		t.Fatalf("over the total: %v %v", c, over)
	}
	n, per := l.Count()
	if n != 3 || per["192.0.2.1"] != 2 || per["2001:db8::/64"] != 1 {
		t.Fatalf("counts %d %v", n, per)
	}
	// Closing gives the place back, once however often.
	c1.Close()
	c1.Close()
	if n, per := l.Count(); n != 2 || per["192.0.2.1"] != 1 {
		t.Fatalf("after close: %d %v", n, per)
	}
	if c, _ := l.Admit(a3); c == nil {
		t.Fatal("place not given back")
	}
	l.CloseAll()
	if n, per := l.Count(); n != 0 || len(per) != 0 {
		t.Fatalf("after CloseAll: %d %v", n, per)
	}
	if _, err := a2.Write([]byte("x")); err == nil {
		t.Fatal("CloseAll left a connection open")
	}
}

func TestOverSentence(t *testing.T) {
	if got := OverPerAddress.Sentence("IMAP connections"); got != "Too many IMAP connections from your address; please close some and try again later." {
		t.Fatal(got)
	}
	if got := OverTotal.Sentence("connections"); got != "The gateway has too many connections just now; please try again in a few minutes." {
		t.Fatal(got)
	}
}

func TestRefuse(t *testing.T) {
	l := NewConns(1, 1)
	s, c := pipeFrom(t, "192.0.2.9")
	l.Refuse(context.Background(), s, nil, "421 4.7.0 go away")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "421 4.7.0 go away\r\n" {
		t.Fatalf("%q %v", line, err)
	}
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("not closed after the refusal: %v", err)
	}
	// Beyond maxRefusing answers under way, a refused connection is closed at once, unanswered.
	for range maxRefusing {
		s, _ := pipeFrom(t, "192.0.2.9") // nobody reads: the answer waits
		l.Refuse(context.Background(), s, nil, "421 busy")
	}
	s, c = pipeFrom(t, "192.0.2.9")
	l.Refuse(context.Background(), s, nil, "421 busy")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 16)); n != 0 || err != io.EOF {
		t.Fatalf("flood refusal got %d bytes, %v; want closed unanswered", n, err)
	}
}
