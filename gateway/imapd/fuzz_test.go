package imapd

import (
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// pipeListener hands net.Pipe connections to the server, so the command loop can be driven without
// sockets or TLS (the fuzz harness signs in with insecureAuth).
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// pipeEnv is a server reachable over pipes, with one delivered message in bob's INBOX.
func pipeEnv(t testing.TB) (*env, *pipeListener) {
	e := startEnv(t, func(o *Options) { o.insecureAuth, o.MaxMessageBytes, o.AuthFailuresBeforeBlock = true, 64<<10, 1<<20 })
	e.deliver(t, "bob@council.example", message(1, "fuzz"))
	l := &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
	go e.srv.ServeIMAP(l)
	t.Cleanup(func() { l.Close() })
	return e, l
}

// converse sends input on a fresh connection and returns everything the server wrote until it closed
// the connection or the deadline passed.
func converse(t testing.TB, l *pipeListener, input string, limit time.Duration) string {
	client, server := net.Pipe()
	select {
	case l.ch <- server:
	case <-time.After(limit):
		buf := make([]byte, 1<<20)
		t.Fatalf("the server stopped accepting connections; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
	}
	_ = client.SetDeadline(time.Now().Add(limit))
	out := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(client)
		out <- b
	}()
	_, _ = io.WriteString(client, input)
	b := <-out
	client.Close()
	return string(b)
}

const signIn = "a LOGIN bob@council.example bob-pw\r\nb SELECT INBOX\r\n"

func TestBadInputAnswered(t *testing.T) {
	_, l := pipeEnv(t)
	for _, c := range []struct{ in, want string }{
		{"x FOO\r\n", "* BYE Unknown command"}, // before sign-in: one unknown command ends the connection
		{signIn + "c FOO bar\r\nz LOGOUT\r\n", "c BAD Unknown command"},
		{signIn + "c APPEND Sent {999999999}\r\nz LOGOUT\r\n", "c NO [TOOBIG]"},
		{"c APPEND Sent {100}\r\nz LOGOUT\r\n", "c NO [TOOBIG]"}, // nothing is read before sign-in
		{signIn + "c LOGIN {5000}\r\nz LOGOUT\r\n", "b OK"},      // answered (the literal is refused), no crash
		{signIn + "c UID FETCH 0:4294967295 (UID ENVELOPE)\r\nz LOGOUT\r\n", "c NO"},
		{signIn + "c FETCH 1:* (FLAGS BODY.PEEK[1.2.3.MIME] BODY[]<5.10>)\r\nz LOGOUT\r\n", "c OK"},
		{signIn + "c UID FETCH 1:4294967295 (UID ENVELOPE)\r\nz LOGOUT\r\n", "* 1 FETCH (UID 1 ENVELOPE"},
		{signIn + "c STORE 1 +FLAGS (\\Bogus)\r\nz LOGOUT\r\n", "c NO [CANNOT]"},
		{signIn + "c STORE 1 +FLAGS (\\Seen)\r\nd EXPUNGE\r\nz LOGOUT\r\n", "* 1 FETCH (UID 1 FLAGS (\\Seen))"},
		{signIn + "c RENAME INBOX Old\r\nz LOGOUT\r\n", "c NO [CANNOT]"},
		{signIn + "c CREATE \"a*b\"\r\nz LOGOUT\r\n", "c NO [CANNOT]"},
		{signIn + "c SEARCH OR OR OR NOT FLAGGED SUBJECT x TEXT y BODY z LARGER 1\r\nz LOGOUT\r\n", "c OK"},
		{signIn + "c " + strings.Repeat("A", 60000) + "\r\nz LOGOUT\r\n", ""},
	} {
		got := converse(t, l, c.in, 2*time.Second)
		if !strings.Contains(got, c.want) {
			t.Errorf("%.60q:\n%s\nwant %q", c.in, got, c.want)
		}
	}
}

// FuzzCommandLoop feeds arbitrary bytes to a signed-in session with a folder selected. The
// connection may end any way it likes; a recovered panic (logged by the library) fails.
func FuzzCommandLoop(f *testing.F) {
	for _, s := range []string{
		"c FETCH 1 (BODY[] BODYSTRUCTURE ENVELOPE)\r\n",
		"c UID FETCH *:1 (FLAGS)\r\n",
		"c FETCH 4294967295:* BODY[HEADER.FIELDS (SUBJECT FROM)]\r\n",
		"c STORE 1:* FLAGS.SILENT (\\Deleted $x)\r\nd EXPUNGE\r\n",
		"c COPY 1 Archive\r\nd MOVE 1 Trash\r\ne UID EXPUNGE 1:*\r\n",
		"c APPEND Sent (\\Seen) {11}\r\nSubject: x\r\n\r\n",
		"c APPEND Drafts {3+}\r\nabc\r\n",
		"c IDLE\r\nDONE\r\n",
		"c LIST \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n",
		"c STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN SIZE DELETED)\r\n",
		"c SEARCH CHARSET UTF-8 OR (UID 1:3 SEEN) NOT (SENTBEFORE 1-Jan-2020)\r\n",
		"c EXAMINE INBOX\r\nd STORE 1 +FLAGS (\\Seen)\r\ne FETCH 1 BODY[]\r\n",
		"c CREATE a/b/c\r\nd RENAME a x/y\r\ne DELETE x/y/b/c\r\nf LSUB \"\" *\r\n",
		"c AUTHENTICATE PLAIN\r\n*\r\n",
		"c FETCH 1 BINARY[1]<0.1>\r\n",
		"c UNSELECT\r\nd FETCH 1 FLAGS\r\n",
		"c ENABLE IMAP4rev2 UTF8=ACCEPT\r\nd SELECT \"&AOk-t&AOk-\"\r\n",
	} {
		f.Add(s)
	}
	e, l := pipeEnv(f)
	f.Fuzz(func(t *testing.T, in string) {
		converse(t, l, signIn+in+"\r\nz LOGOUT\r\n", time.Second)
		if logs := e.logs.String(); strings.Contains(logs, "panic") {
			t.Fatalf("panic for %q:\n%s", in, logs[max(0, len(logs)-2000):])
		}
	})
}
