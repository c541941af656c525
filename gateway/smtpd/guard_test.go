package smtpd

import (
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// startTLSClient runs EHLO and STARTTLS on a plain connection and returns the client under TLS.
func (h *harness) startTLSClient(t *testing.T) *client {
	t.Helper()
	c := h.plain(t)
	c.ehlo()
	c.cmd("STARTTLS", "220 2.0.0 Ready to start TLS")
	return newClient(t, tlsClient(t, c.conn, h))
}

// wantRefusedAndClosed expects the guard's 500 5.5.2 reply with an ID, then the end of the connection.
func wantRefusedAndClosed(t *testing.T, c *client, what string) {
	t.Helper()
	got := c.expect("500 5.5.2 A command line held " + what)
	if !idRe.MatchString(got) {
		t.Errorf("refusal %q has no fault ID", got)
	}
	if !c.closed() {
		t.Fatal("connection still open after the refusal")
	}
}

func TestBareLFInCommands(t *testing.T) {
	const bareLF = "a bare LF"
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, h *harness) *client
		send string
		what string
	}{
		{"EHLO before STARTTLS", func(t *testing.T, h *harness) *client { return h.plain(t) }, "EHLO client.test\n", bareLF},
		{"STARTTLS after bare LF", func(t *testing.T, h *harness) *client { return h.plain(t) }, "NOOP\nSTARTTLS\r\n", bareLF},
		{"bare CR before STARTTLS", func(t *testing.T, h *harness) *client { return h.plain(t) }, "EHLO a\rb\r\n", "a bare CR"},
		{"MAIL after STARTTLS", func(t *testing.T, h *harness) *client {
			c := h.startTLSClient(t)
			c.ehlo()
			c.cmd("AUTH PLAIN "+plainIR("", alice, alicePw), "235 ")
			return c
		}, "MAIL FROM:<alice@a.example>\nRCPT TO:<bob@b.example>\r\n", bareLF},
		{"AUTH after STARTTLS", func(t *testing.T, h *harness) *client {
			c := h.startTLSClient(t)
			c.ehlo()
			return c
		}, "AUTH PLAIN " + plainIR("", alice, alicePw) + "\n", bareLF},
		{"AUTH response line", func(t *testing.T, h *harness) *client {
			c := h.tls(t)
			c.ehlo()
			c.cmd("AUTH LOGIN", "334 ")
			return c
		}, b64(alice) + "\n", bareLF},
		{"implicit TLS", func(t *testing.T, h *harness) *client { return h.signedIn(t) }, "MAIL FROM:<alice@a.example>\n", bareLF},
		{"after a message", func(t *testing.T, h *harness) *client {
			c := h.signedIn(t)
			c.cmd("MAIL FROM:<alice@a.example>", "250 ")
			c.cmd("RCPT TO:<bob@b.example>", "250 ")
			c.cmd("DATA", "354 ")
			// The end of data and a pipelined command with a bare LF, in one write.
			c.send("Subject: x\r\n\r\nSTARTTLS\r\nBDAT 5\r\nhi\r\n.\r\nMAIL FROM:<alice@a.example>\n")
			c.expect("250 2.0.0 Accepted as MSG001")
			return c
		}, "", bareLF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeIntake{}
			h := start(t, f, Options{})
			c := tc.run(t, h)
			_, senders0, _ := f.counts()
			c.send(tc.send)
			wantRefusedAndClosed(t, c, tc.what)
			if _, senders, _ := f.counts(); senders != senders0 {
				t.Fatalf("a MAIL command ran after the bare line")
			}
		})
	}
}

// TestCRLFCommandsStillWork runs a whole submission with STARTTLS and one with implicit TLS, BDAT and
// AUTH LOGIN, through the guard.
func TestCRLFCommandsStillWork(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{})
	c := h.startTLSClient(t)
	got := c.ehlo()
	if strings.Contains(got, "STARTTLS") || !strings.Contains(got, "AUTH PLAIN") {
		t.Fatalf("EHLO under TLS: %q", got)
	}
	c.cmd("STARTTLS", "502 5.5.1 TLS is already running")
	c.cmd("AUTH LOGIN", "334 ")
	c.cmd(b64(alice), "334 ")
	c.cmd(b64(alicePw), "235 ")
	// Pipelined, as PIPELINING allows.
	c.send("MAIL FROM:<alice@a.example>\r\nRCPT TO:<bob@b.example>\r\nDATA\r\n")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354 ")
	c.send("Subject: x\r\n\r\n..STARTTLS\r\n.\r\n")
	c.expect("250 2.0.0 Accepted as MSG001")
	if got := string(h.in.last().Content); got != "Subject: x\r\n\r\n.STARTTLS\r\n" {
		t.Fatalf("content %q", got)
	}

	c2 := h.signedIn(t)
	c2.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c2.cmd("RCPT TO:<bob@b.example>", "250 ")
	c2.send("BDAT 14\r\nSubject: b\r\nEH")
	c2.expect("250 2.0.0 Continue")
	c2.send("BDAT 10 LAST\r\nLO x\r\n\r\nhi")
	c2.expect("250 2.0.0 Accepted as MSG002")
	c2.cmd("QUIT", "221 ")
}

// TestDrainIsBounded: after a 552 for size, at most MaxDrainBytes more are read before the refusal is
// sent and the connection closed; a little over the limit still gets the reply in step.
func TestDrainIsBounded(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{MaxMessageBytes: 1000, MaxDrainBytes: 64 << 10})
	open := func(c *client) {
		c.cmd("MAIL FROM:<alice@a.example>", "250 ")
		c.cmd("RCPT TO:<bob@b.example>", "250 ")
		c.cmd("DATA", "354 ")
	}
	c := h.signedIn(t)
	open(c)
	c.send(strings.Repeat("x", 70) + "\r\n" + strings.Repeat(strings.Repeat("y", 70)+"\r\n", 100) + ".\r\n")
	c.expect("552 5.3.4 The message is larger")
	c.cmd("NOOP", "250 ") // still in step

	c = h.signedIn(t)
	open(c)
	// 100 MiB would take long to drain; the refusal must come after about 64 KiB.
	werr := make(chan error, 1)
	go func() {
		line := []byte(strings.Repeat("z", 998) + "\r\n")
		var err error
		for i := 0; i < 100<<10 && err == nil; i++ {
			_, err = c.conn.Write(line)
		}
		werr <- err
	}()
	start := time.Now()
	got := c.expect("552 5.3.4 The message is larger than the gateway accepts (1000 bytes at most)")
	if !idRe.MatchString(got) {
		t.Errorf("refusal %q has no fault ID", got)
	}
	if _, err := c.r.ReadByte(); err == nil {
		t.Fatal("connection still open after the drain limit")
	}
	select {
	case err := <-werr:
		if err == nil {
			t.Fatal("the whole 100 MiB was written: the server read it all")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writer not stopped by the closed connection")
	}
	t.Logf("refused after %s", time.Since(start))

	// A BDAT chunk that cannot fit is refused before any of it is read.
	c = h.signedIn(t)
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<bob@b.example>", "250 ")
	c.send("BDAT 4000000000 LAST\r\n")
	c.expect("552 5.3.4 ")
	if !c.closed() {
		t.Fatal("connection still open after the BDAT refusal")
	}
}

// TestGuardParsesLikeGoSMTP checks the command names the guard acts on against go-smtp's rules.
func TestGuardParsesLikeGoSMTP(t *testing.T) {
	for _, tc := range []struct{ line, cmd, arg string }{
		{"STARTTLS\r\n", "STARTTLS", ""},
		{"starttls now\r\n", "STARTTLS", ""},
		{"BDAT 10 LAST\r\n", "BDAT", "10 LAST"},
		{"bdat\r\n", "BDAT", ""},
		{"BDATX 1\r\n", "", ""},
		{"NOOP\r\n", "NOOP", ""},
	} {
		if cmd, arg := parseLine([]byte(tc.line)); cmd != tc.cmd || arg != tc.arg {
			t.Errorf("parseLine(%q) = %q, %q; want %q, %q", tc.line, cmd, arg, tc.cmd, tc.arg)
		}
	}
	for _, tc := range []struct {
		arg string
		n   int64
		ok  bool
	}{{"10", 10, true}, {"10 last", 10, true}, {"10 NOW", 0, false}, {"", 0, false}, {"-1", 0, false}, {"1 2 3", 0, false}, {"4294967296", 0, false}} {
		if n, ok := bdatSize(tc.arg); n != tc.n || ok != tc.ok {
			t.Errorf("bdatSize(%q) = %d, %v", tc.arg, n, ok)
		}
	}
}

// TestHandshakeFailure: a client that speaks plain text to the implicit-TLS port gets no greeting and
// is dropped, and the server goes on serving.
func TestHandshakeFailure(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{})
	raw := dialFrom(t, h.submissions, "")
	fmt.Fprintf(raw, "EHLO plain.text\r\n") // not a TLS ClientHello
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(raw)
	if isTimeout(err) || strings.Contains(string(b), "220 ") {
		t.Fatalf("got %q, %v; want the connection closed without a greeting", b, err)
	}
	// The server still serves.
	tc := tls.Client(dialFrom(t, h.submissions, ""), h.clientTLS)
	c := newClient(t, tc)
	c.expect("220 ")
}

// TestDataContentIntact sends messages of many shapes (dot-stuffed lines, lines across the guard's
// buffer, long and empty lines) in writes of random sizes and checks the content arrives unchanged.
func TestDataContentIntact(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{})
	c := h.signedIn(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 30 {
		var body strings.Builder
		body.WriteString("Subject: intact\r\n\r\n")
		for range rng.IntN(3000) {
			switch rng.IntN(6) {
			case 0:
				body.WriteString(".")
			case 1:
				body.WriteString("..x")
			}
			body.WriteString(strings.Repeat(string(rune('a'+rng.IntN(26))), rng.IntN(990)))
			body.WriteString("\r\n")
		}
		want := body.String()
		wire := []byte(dotStuffed(want) + ".\r\n")
		c.cmd("MAIL FROM:<alice@a.example>", "250 ")
		c.cmd("RCPT TO:<bob@b.example>", "250 ")
		c.cmd("DATA", "354 ")
		for len(wire) > 0 {
			n := min(len(wire), 1+rng.IntN(40000))
			c.send(string(wire[:n]))
			wire = wire[n:]
		}
		c.expect("250 2.0.0 Accepted")
		if got := string(h.in.last().Content); got != want {
			t.Fatalf("message %d: content differs (got %d bytes, want %d)", i, len(got), len(want))
		}
	}
}

func dotStuffed(s string) string {
	lines := strings.SplitAfter(s, "\r\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") {
			lines[i] = "." + l
		}
	}
	return strings.Join(lines, "")
}

// TestCutOffDataIsNotAccepted: a connection that ends inside DATA never yields a message, on either
// port, however much of it arrived.
func TestCutOffDataIsNotAccepted(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{})
	for _, c := range []*client{h.signedIn(t), func() *client {
		c := h.startTLSClient(t)
		c.ehlo()
		c.cmd("AUTH PLAIN "+plainIR("", alice, alicePw), "235 ")
		return c
	}()} {
		c.cmd("MAIL FROM:<alice@a.example>", "250 ")
		c.cmd("RCPT TO:<bob@b.example>", "250 ")
		c.cmd("DATA", "354 ")
		c.send("Subject: half\r\n\r\n" + strings.Repeat("line\r\n", 5000))
		if tc, ok := c.conn.(*tls.Conn); ok {
			_ = tc.CloseWrite() // close_notify: a clean end of the stream, the case that must not count
		}
		c.conn.Close()
	}
	time.Sleep(300 * time.Millisecond)
	if _, _, n := h.in.counts(); n != 0 {
		t.Fatalf("%d cut-off messages reached the intake", n)
	}
}

// TestCutOffBDATIsNotAccepted: a connection that ends inside the last BDAT chunk yields no message
// (go-smtp alone would pass the truncated chunk on as complete).
func TestCutOffBDATIsNotAccepted(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{})
	c := h.signedIn(t)
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<bob@b.example>", "250 ")
	c.send("BDAT 1000 LAST\r\nSubject: half\r\n\r\nhello\r\n")
	_ = c.conn.(*tls.Conn).CloseWrite()
	c.closed()
	time.Sleep(200 * time.Millisecond)
	if _, _, n := h.in.counts(); n != 0 {
		t.Fatalf("%d cut-off messages reached the intake", n)
	}
}
