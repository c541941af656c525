package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"cafgate/gateway/intake"
)

// FuzzSession runs arbitrary client bytes through a signed-in TLS session against the real server and
// checks that nothing panics, every reply is a well-formed line, echoed addresses hold no control
// bytes, and every message handed to the intake has a signed-in sender and 1..MaxRecipients clean
// recipients.
func FuzzSession(f *testing.F) {
	for _, seed := range []string{
		"MAIL FROM:<alice@a.example>\r\nRCPT TO:<bob@b.example>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"MAIL FROM:<alice@a.example>\r\nRCPT TO:<bob@b.example>\r\nDATA\r\nhi\n.\nMAIL FROM:<alice@a.example>\r\n.\r\n",
		"MAIL FROM:<alice@a.example>\r\nRCPT TO:<bob@b.example>\r\nBDAT 5\r\nhelloBDAT 0 LAST\r\n",
		"MAIL FROM:<alice@a.example>\r\nRCPT TO:<bob@b.example>\r\nBDAT 3\r\nabcRSET\r\nBDAT 2 LAST\r\nxy",
		"MAIL FROM:<alice@a.example> SIZE=100000\r\n",
		"MAIL FROM:<alice@a.example\r>\r\nRCPT TO:<\x00@b>\r\n",
		"EHLO a\rb\r\nAUTH LOGIN\r\n*\r\nSTARTTLS\r\nNOOP\r\n",
		"MAIL FROM:<alice@a.example>\r\nRCPT TO:<r1@b.example>\r\nRCPT TO:<r2@b.example>\r\nRCPT TO:<r3@b.example>\r\nRCPT TO:<r4@b.example>\r\nDATA\r\n.\r\n",
	} {
		f.Add([]byte(seed))
	}
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	fake := &fakeIntake{}
	h := start(f, fake, Options{MaxMessageBytes: 4096, MaxRecipients: 3, MaxLineLength: 512, Now: clock.now,
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	prefix := "EHLO fuzz.test\r\nAUTH PLAIN " + plainIR("", alice, alicePw) + "\r\n"
	f.Fuzz(func(t *testing.T, input []byte) {
		clock.add(time.Hour) // earlier failed sign-ins leave the window
		fake.mu.Lock()
		fake.accepted = nil
		fake.mu.Unlock()
		raw := dialFrom(t, h.submissions, "")
		tc := tls.Client(raw, h.clientTLS)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		go func() {
			_, _ = tc.Write(append([]byte(prefix), input...))
			_ = tc.CloseWrite()
		}()
		out, err := io.ReadAll(tc)
		if err != nil && !isTimeout(err) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("reading replies: %v", err)
		}
		if isTimeout(err) {
			t.Fatalf("server still talking after the client finished: %q", out)
		}
		checkReplies(t, out)
		fake.mu.Lock()
		defer fake.mu.Unlock()
		for _, s := range fake.accepted {
			checkSubmission(t, s)
		}
	})
}

func checkReplies(t *testing.T, out []byte) {
	for _, line := range bytes.SplitAfter(out, []byte("\r\n")) {
		if len(line) == 0 {
			continue
		}
		l := string(line)
		if !strings.HasSuffix(l, "\r\n") || len(l) < 5 {
			t.Fatalf("malformed reply line %q", l)
		}
		if strings.Contains(l, "Internal server error") {
			t.Fatalf("server panicked: %q", l)
		}
		body := strings.TrimSuffix(l, "\r\n")
		// Replies that echo a MAIL or RCPT address must not carry control bytes back.
		if strings.Contains(body, "accepting mail from") || strings.Contains(body, "gets this") || strings.Contains(body, "(ID ") {
			if strings.IndexFunc(body, isControl) >= 0 {
				t.Fatalf("control byte in reply %q", body)
			}
		}
	}
}

func checkSubmission(t *testing.T, s *intake.Submission) {
	if s.Sender != alicePractitioner || intake.NormalizeMail(s.From) != alice {
		t.Fatalf("message from %q accepted for %v", s.From, s.Sender)
	}
	if len(s.Recipients) == 0 || len(s.Recipients) > 3 {
		t.Fatalf("%d recipients", len(s.Recipients))
	}
	for _, r := range s.Recipients {
		if checkArg(r) != nil {
			t.Fatalf("recipient %q", r)
		}
	}
	if len(s.Content) > 4096 {
		t.Fatalf("%d bytes of content", len(s.Content))
	}
}

// FuzzSASL feeds arbitrary responses to the PLAIN and LOGIN mechanisms as the session builds them:
// no panic, every error is an *smtp.SMTPError (go-smtp would send any other error's text), and a
// sign-in succeeds only with alice's password.
func FuzzSASL(f *testing.F) {
	f.Add(true, []byte("\x00alice@a.example\x00correct horse"))
	f.Add(true, []byte("bob@b.example\x00alice@a.example\x00correct horse"))
	f.Add(true, []byte("alice@a.example\x00alice@a.example\x00correct horse\x00"))
	f.Add(false, []byte("alice@a.example\ncorrect horse"))
	f.Add(false, []byte("\nalice@a.example\ncorrect horse\nmore"))
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	srv := New(&fakeIntake{}, Options{Now: clock.now})
	srv.sleep = func(context.Context, time.Duration) {}
	f.Fuzz(func(t *testing.T, plain bool, input []byte) {
		clock.add(time.Hour)
		s := &session{srv: srv, client: intake.Client{TLS: true, Via: ViaSubmissions}, key: "fuzz"}
		mech := "LOGIN"
		if plain {
			mech = "PLAIN"
		}
		server, err := s.Auth(mech)
		if err != nil {
			t.Fatal(err)
		}
		responses := bytes.Split(input, []byte("\n"))
		var used [][]byte
		for _, r := range responses {
			used = append(used, r)
			_, done, err := server.Next(r)
			if err != nil {
				if _, ok := err.(*smtp.SMTPError); !ok {
					t.Fatalf("error of type %T: %v", err, err)
				}
				break
			}
			if done {
				break
			}
		}
		if s.user == nil {
			return
		}
		var pw string
		if plain {
			parts := bytes.Split(used[0], []byte{0})
			pw = string(parts[len(parts)-1])
		} else {
			pw = string(used[len(used)-1])
		}
		if pw != alicePw {
			t.Fatalf("signed in with password %q after %q", pw, used)
		}
	})
}

// refUnstuff is go-smtp v0.25.1's data reader (data.go, dataReader.Read) applied byte by byte: the
// reference the guard's DATA reader must match. It returns the message and the bytes of src it used.
func refUnstuff(src []byte) (out []byte, used int, ended bool) {
	const (
		beginLine = iota
		dot
		dotCR
		cr
		data
	)
	state := beginLine
	for i, c := range src {
		switch state {
		case beginLine:
			if c == '.' {
				state = dot
				continue
			}
			if c == '\r' {
				state = cr
				break
			}
			state = data
		case dot:
			if c == '\r' {
				state = dotCR
				continue
			}
			state = data
		case dotCR:
			if c == '\n' {
				return out, i + 1, true
			}
			state = data
		case cr:
			if c == '\n' {
				state = beginLine
				break
			}
			state = data
		case data:
			if c == '\r' {
				state = cr
			}
		}
		out = append(out, c)
	}
	return out, len(src), false
}

// FuzzUnstuff checks the guard's DATA reader against go-smtp's, over arbitrary input split into
// arbitrary source chunks and destination buffers: same message, same end, same bytes consumed.
func FuzzUnstuff(f *testing.F) {
	for _, seed := range []string{"a\r\n.\r\n", "..x\r\n.\rX\r\n.\r\nNOOP\r\n", "\r\r\n.\r\n", "x\n.\n\r\n.\r\n", ".\r\n", "abc"} {
		f.Add([]byte(seed), uint8(3), uint8(7))
	}
	f.Fuzz(func(t *testing.T, src []byte, srcChunk, dstSize uint8) {
		want, wantUsed, wantEnded := refUnstuff(src)
		g := &lineGuard{dataState: dsBeginLine}
		var got []byte
		used := 0
		for used < len(src) && g.dataState != dsEOF {
			end := min(len(src), used+1+int(srcChunk))
			dst := make([]byte, 1+int(dstSize))
			in, out := g.unstuff(dst, src[used:end])
			if in == 0 && out == 0 {
				t.Fatalf("no progress at %d", used)
			}
			got = append(got, dst[:out]...)
			used += in
		}
		if !bytes.Equal(got, want) || used != wantUsed || (g.dataState == dsEOF) != wantEnded {
			t.Fatalf("guard: %q used %d ended %v; go-smtp: %q used %d ended %v", got, used, g.dataState == dsEOF, want, wantUsed, wantEnded)
		}
		// Discarding (nil destination) consumes the same bytes.
		d := &lineGuard{dataState: dsBeginLine}
		n := 0
		for n < len(src) && d.dataState != dsEOF {
			in, _ := d.unstuff(nil, src[n:])
			n += in
		}
		if n != wantUsed {
			t.Fatalf("discarding used %d, want %d", n, wantUsed)
		}
	})
}
