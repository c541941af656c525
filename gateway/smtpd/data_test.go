package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"cafgate/directory"
	"cafgate/gateway/intake"
	"cafgate/mailbox"
)

// TestSmuggling sends the SMTP smuggling end-of-data variants (CVE-2023-51764 class) and a NUL inside
// DATA, each followed by a second, forged transaction. None may end the data early: the server must
// answer once, after the real CRLF.CRLF, with 550 5.6.0, and must never see the forged MAIL.
func TestSmuggling(t *testing.T) {
	forged := "MAIL FROM:<alice@a.example>\r\nRCPT TO:<carol@b.example>\r\nDATA\r\nSubject: forged\r\n\r\nforged\r\n"
	for _, tc := range []struct{ name, sep string }{
		{"LF.LF", "\n.\n"},
		{"LF.CRLF", "\n.\r\n"},
		{"CRLF.LF", "\r\n.\n"},
		{"CR.CRLF", "\r.\r\n"},
		{"CR.CR", "\r.\r"},
		{"LF.CR", "\n.\r"},
		{"NUL", "\r\n\x00.\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, &fakeIntake{}, Options{})
			c := h.signedIn(t)
			c.cmd("MAIL FROM:<alice@a.example>", "250 ")
			c.cmd("RCPT TO:<bob@b.example>", "250 ")
			c.cmd("DATA", "354 ")
			c.send("Subject: real\r\n\r\nreal" + tc.sep + forged + ".\r\n")
			c.expect("550 5.6.0 The message contains a")
			if !c.quiet() {
				t.Fatal("more replies follow: a second transaction was started")
			}
			_, senders, accepted := h.in.counts()
			if senders != 1 || accepted != 1 {
				t.Fatalf("MAIL seen %d times, Accept %d times; want 1 and 1", senders, accepted)
			}
			if got := h.in.last().Content; !bytes.Contains(got, []byte("forged")) {
				t.Fatalf("the forged part is not inside the one message: %q", got)
			}
			// The session is still in step.
			c.cmd("NOOP", "250 ")
		})
	}
}

// TestDotCRIsNotEndOfData: go-smtp's data reader drops "." + CR after CRLF when no LF follows (its
// dot-unstuffing state machine). The message then holds clean CRLF text and stays one message; this
// test pins that nothing after the sequence becomes a second transaction.
func TestDotCRIsNotEndOfData(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{})
	c := h.signedIn(t)
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<bob@b.example>", "250 ")
	c.cmd("DATA", "354 ")
	c.send("Subject: real\r\n\r\nreal\r\n.\rMAIL FROM:<alice@a.example>\r\n.\r\n")
	c.expect("250 2.0.0 Accepted")
	if _, senders, accepted := h.in.counts(); senders != 1 || accepted != 1 {
		t.Fatalf("MAIL seen %d times, Accept %d times", senders, accepted)
	}
	if got := string(h.in.last().Content); got != "Subject: real\r\n\r\nreal\r\nMAIL FROM:<alice@a.example>\r\n" {
		t.Fatalf("content %q", got)
	}
}

func TestSizeLimit(t *testing.T) {
	const limit = 10_000
	h := start(t, &fakeIntake{}, Options{MaxMessageBytes: limit})
	c := h.signedIn(t)
	for _, size := range []int{limit + 1, 3 * limit, 200_000} {
		c.cmd("MAIL FROM:<alice@a.example>", "250 ")
		c.cmd("RCPT TO:<bob@b.example>", "250 ")
		c.cmd("DATA", "354 ")
		// Lines that look like commands must be read as data and discarded after the refusal.
		body := strings.Repeat("RSET\r\nMAIL FROM:<x@y>\r\n", size/23+1)
		c.send(body + ".\r\n")
		c.expect("552 5.3.4 The message is larger than the gateway accepts (10000 bytes at most)")
		if !c.quiet() {
			t.Fatal("data lines were run as commands")
		}
	}
	c.cmd("MAIL FROM:<alice@a.example> SIZE=20000", "552 5.3.4")
	// In step: a message under the limit goes through.
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<bob@b.example>", "250 ")
	c.cmd("DATA", "354 ")
	small := "Subject: s\r\n\r\n" + strings.Repeat(strings.Repeat("y", 98)+"\r\n", limit/100-1)
	c.send(small + ".\r\n")
	c.expect("250 2.0.0 Accepted as MSG001")
	if got := string(h.in.last().Content); got != small {
		t.Fatalf("content of %d bytes, want %d", len(got), len(small))
	}
	if n := h.srv.mem.InUse(); n != 0 {
		t.Fatalf("%d buffered bytes not given back", n)
	}
}

func TestMemoryBudget(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{MaxMessageBytes: 100_000, MaxBufferedBytes: 100_001})
	if !h.srv.mem.Take(50_000) { // another session holds half
		t.Fatal("budget refused")
	}
	c := h.signedIn(t)
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<bob@b.example>", "250 ")
	c.cmd("DATA", "354 ")
	c.send(strings.Repeat(strings.Repeat("z", 998)+"\r\n", 90) + ".\r\n")
	c.expect("451 4.3.0 The gateway is too busy")
	h.srv.mem.Give(50_000)
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<bob@b.example>", "250 ")
	c.cmd("DATA", "354 ")
	c.send(strings.Repeat(strings.Repeat("z", 998)+"\r\n", 90) + ".\r\n")
	c.expect("250 2.0.0 Accepted")
}

func TestBDAT(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{MaxMessageBytes: 1000})
	c := h.signedIn(t)
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<bob@b.example>", "250 ")
	c.send("BDAT 12\r\nSubject: b\r\n")
	c.expect("250 2.0.0 Continue")
	c.send("BDAT 9 LAST\r\n\r\nhello\r\n")
	c.expect("250 2.0.0 Accepted as MSG001")
	if got := string(h.in.last().Content); got != "Subject: b\r\n\r\nhello\r\n" {
		t.Fatalf("content %q", got)
	}
	// Bare LF is refused in chunks too.
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<bob@b.example>", "250 ")
	chunk := "Subject: b\n\nhello\n.\n"
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk), chunk))
	c.expect("550 5.6.0 ")
	// Over the limit.
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<bob@b.example>", "250 ")
	c.send("BDAT 1001 LAST\r\n" + strings.Repeat("x", 1001))
	c.expect("552 5.3.4")
	c.cmd("NOOP", "250 ")
}

// TestGoSMTPClient submits through go-smtp's client on both ports.
func TestGoSMTPClient(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{})
	for _, dial := range []func() (*smtp.Client, error){
		func() (*smtp.Client, error) { return smtp.DialStartTLS(h.submission, h.clientTLS) },
		func() (*smtp.Client, error) { return smtp.DialTLS(h.submissions, h.clientTLS) },
	} {
		sc, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		if err := sc.Auth(sasl.NewPlainClient("", alice, alicePw)); err != nil {
			t.Fatal(err)
		}
		if err := sc.Mail(alice, nil); err != nil {
			t.Fatal(err)
		}
		if err := sc.Rcpt(bob, nil); err != nil {
			t.Fatal(err)
		}
		if err := sc.Rcpt("nobody@b.example", nil); err == nil {
			t.Fatal("unknown recipient accepted")
		} else if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
			t.Fatalf("unknown recipient: %v", err)
		}
		w, err := sc.Data()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "Subject: hi\r\n\r\nhello\r\n")
		resp, err := w.CloseWithResponse()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(resp.StatusText, "2.0.0 Accepted as MSG") {
			t.Fatalf("status %q", resp.StatusText)
		}
		sc.Quit()
	}
	subs := h.in.accepted
	if len(subs) != 2 || subs[0].Client.Via != ViaSubmission || subs[1].Client.Via != ViaSubmissions ||
		!subs[0].Client.TLS || !subs[1].Client.TLS || subs[0].Sender != alicePractitioner || subs[0].From != alice {
		t.Fatalf("submissions %+v %+v", subs[0], subs[1])
	}
}

// TestRealIntake runs the server on the real intake with a fake directory and store, to show the
// content check sits behind it and a refused message never reaches the store.
func TestRealIntake(t *testing.T) {
	dir := fakeDirectory{}
	st := &fakeStore{}
	in := intake.New(dir, st, allowAll{}, slog.New(slog.DiscardHandler), nil)
	h := start(t, in, Options{})
	c := h.signedIn(t)
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<bob@b.example>", "250 ")
	c.cmd("RCPT TO:<nobody@b.example>", "550 5.1.1")
	c.cmd("DATA", "354 ")
	c.send("Subject: x\r\n\r\nsmuggle\n.\nMAIL FROM:<bob@b.example>\r\n.\r\n")
	c.expect("550 5.6.0 The message contains a bare line feed")
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<bob@b.example>", "250 ")
	c.cmd("DATA", "354 ")
	c.send("From: alice@a.example\r\nSubject: [CAF-2026-000001] x\r\n\r\nclean\r\n.\r\n")
	got := c.expect("250 2.0.0 Accepted as ")
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.got) != 1 || !strings.Contains(got, st.got[0].ID) || st.got[0].Via != ViaSubmissions {
		t.Fatalf("store holds %+v; reply %q", st.got, got)
	}
}

type fakeDirectory struct{}

func (fakeDirectory) Authenticate(_ context.Context, mail, password string) (*directory.Practitioner, error) {
	if mail == alice && password == alicePw {
		return alicePractitioner, nil
	}
	return nil, directory.ErrBadCredentials
}

func (fakeDirectory) Lookup(_ context.Context, mail string) (*directory.Practitioner, error) {
	switch mail {
	case alice:
		return alicePractitioner, nil
	case bob:
		return &directory.Practitioner{Mail: bob, VettingValidUntil: time.Now().Add(time.Hour)}, nil
	}
	return nil, directory.ErrNotFound
}

type fakeStore struct {
	mu  sync.Mutex
	got []*mailbox.Incoming
}

func (s *fakeStore) Accept(_ context.Context, m *mailbox.Incoming) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, m)
	return nil
}

// TestSTARTTLSPipelining is CVE-2011-0411: commands sent in the same packet as STARTTLS, before the
// handshake, must be thrown away, not run inside the TLS session.
func TestSTARTTLSPipelining(t *testing.T) {
	f := &fakeIntake{}
	h := start(t, f, Options{})
	c := h.plain(t)
	c.ehlo()
	c.send("STARTTLS\r\nAUTH PLAIN " + plainIR("", alice, alicePw) + "\r\nMAIL FROM:<alice@a.example>\r\nNOOP\r\n")
	c.expect("220 2.0.0 Ready to start TLS")
	if c.r.Buffered() != 0 {
		t.Fatalf("%d bytes after the 220", c.r.Buffered())
	}
	tc := tls.Client(c.conn, h.clientTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c = newClient(t, tc)
	// Had the injected commands run, their replies would come first.
	got := c.cmd("EHLO c.test", "250 ")
	if !strings.HasPrefix(got, "250-") || !strings.Contains(got, "AUTH PLAIN") {
		t.Fatalf("first reply under TLS is %q", got)
	}
	c.cmd("MAIL FROM:<alice@a.example>", "530 5.7.0 Please sign in")
	if !c.quiet() {
		t.Fatal("stray replies")
	}
	if auths, senders, _ := f.counts(); auths != 0 || senders != 0 {
		t.Fatalf("injected commands ran: %d AUTH, %d MAIL", auths, senders)
	}
}

func TestCloseEndsServe(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{})
	c := h.signedIn(t)
	if err := h.srv.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		select {
		case err := <-h.served:
			if err != nil {
				t.Fatalf("Serve returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return")
		}
	}
	if !c.closed() {
		t.Fatal("session still open")
	}
	if err := h.srv.ServeSubmission(listen(t)); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
}

func TestShutdownWaitsThenForces(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{})
	c := h.signedIn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := h.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with an idle session open: %v", err)
	}
	if !c.closed() {
		t.Fatal("session still open after Shutdown gave up")
	}
	h2 := start(t, &fakeIntake{}, Options{})
	c2 := h2.signedIn(t)
	c2.cmd("QUIT", "221 ")
	if err := h2.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSizeLimitBoundary pins where the limit falls: a message of exactly MaxMessageBytes is accepted
// by DATA and by BDAT, one byte more is refused with the gateway's own 552 5.3.4 and an ID, and a
// too-large SIZE= declared at MAIL is refused there, also with an ID.
func TestSizeLimitBoundary(t *testing.T) {
	const limit = 1000
	h := start(t, &fakeIntake{}, Options{MaxMessageBytes: limit})
	c := h.signedIn(t)
	for _, tc := range []struct {
		size int
		want string
	}{{limit, "250 "}, {limit + 1, "552 5.3.4"}} {
		c.cmd("MAIL FROM:<alice@a.example>", "250 ")
		c.cmd("RCPT TO:<bob@b.example>", "250 ")
		c.cmd("DATA", "354 ")
		c.send(strings.Repeat("a", tc.size-2) + "\r\n.\r\n")
		c.expect(tc.want)
	}
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<bob@b.example>", "250 ")
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s\r\n", limit, strings.Repeat("b", limit-2)))
	c.expect("250 ")
	if got := c.cmd(fmt.Sprintf("MAIL FROM:<alice@a.example> SIZE=%d", limit+1), "552 5.3.4"); !strings.Contains(got, "(ID ") {
		t.Fatalf("declared SIZE refusal without an ID: %q", got)
	}
	c.cmd(fmt.Sprintf("MAIL FROM:<alice@a.example> SIZE=%d", limit), "250 ")
}
