package smtpd

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"cafgate/gateway/intake"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type sleepLog struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleepLog) sleep(_ context.Context, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
}

func (s *sleepLog) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.d
	s.d = nil
	return d
}

func TestAuthDelay(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{{0, 0}, {2, 0}, {3, 250 * time.Millisecond}, {4, 500 * time.Millisecond}, {5, time.Second},
		{6, 2 * time.Second}, {7, 4 * time.Second}, {9, 4 * time.Second}, {1000, 4 * time.Second}} {
		if got := authDelay(tc.failures, 3, 250*time.Millisecond, 4*time.Second); got != tc.want {
			t.Errorf("authDelay(%d) = %v, want %v", tc.failures, got, tc.want)
		}
	}
}

// TestAuthRateLimit: failed sign-ins from one address are delayed after the third and refused with
// 421 (connection closed) after the tenth, until the window has passed; other addresses are not
// affected.
func TestAuthRateLimit(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}
	sleeps := &sleepLog{}
	h := startWith(t, &fakeIntake{}, Options{Now: clock.now}, func(s *Server) { s.sleep = sleeps.sleep })
	c := h.tls(t)
	c.ehlo()
	for i := 0; i < 10; i++ {
		if i%2 == 0 {
			c.cmd("AUTH PLAIN "+plainIR("", alice, "guess"), "535 5.7.8 ")
		} else {
			c.cmd("AUTH LOGIN "+b64(alice), "334 ")
			c.cmd(b64("guess"), "535 5.7.8 ")
		}
		clock.add(time.Second)
	}
	ms := time.Millisecond
	want := []time.Duration{250 * ms, 500 * ms, 1000 * ms, 2000 * ms, 4000 * ms, 4000 * ms, 4000 * ms}
	if got := sleeps.take(); !equalDurations(got, want) {
		t.Fatalf("delays %v, want %v", got, want)
	}
	// The eleventh attempt is refused and the connection closed, even with the right password.
	c.cmd("AUTH PLAIN "+plainIR("", alice, alicePw), "421 4.7.0 Too many failed sign-ins from your address; please wait 15 minutes")
	if !c.closed() {
		t.Fatal("connection left open after 421")
	}
	c = h.tls(t)
	c.ehlo()
	c.cmd("AUTH LOGIN", "421 4.7.0 ")
	if !c.closed() {
		t.Fatal("connection left open after 421")
	}
	// Another address signs in at once, undelayed.
	c = h.tlsFrom(t, "127.0.0.2")
	c.ehlo()
	c.cmd("AUTH PLAIN "+plainIR("", alice, alicePw), "235 ")
	if got := sleeps.take(); len(got) != 0 {
		t.Fatalf("other address delayed %v", got)
	}
	// Once the first failure leaves the window, one more attempt is allowed (delayed).
	clock.add(15*time.Minute - 9*time.Second)
	c = h.tls(t)
	c.ehlo()
	c.cmd("AUTH PLAIN "+plainIR("", alice, alicePw), "235 ")
	if got := sleeps.take(); !equalDurations(got, []time.Duration{4 * time.Second}) {
		t.Fatalf("delays %v", got)
	}
	// After the whole window, no delay.
	clock.add(15 * time.Minute)
	c = h.tls(t)
	c.ehlo()
	c.cmd("AUTH PLAIN "+plainIR("", alice, alicePw), "235 ")
	if got := sleeps.take(); len(got) != 0 {
		t.Fatalf("delays %v", got)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestAuthDelayIsReal checks the default sleep really holds the answer.
func TestAuthDelayIsReal(t *testing.T) {
	h := startWith(t, &fakeIntake{}, Options{AuthFailuresBeforeDelay: 1, AuthDelay: 300 * time.Millisecond},
		func(s *Server) { s.sleep = sleepCtx })
	c := h.tls(t)
	c.ehlo()
	start := time.Now()
	c.cmd("AUTH PLAIN "+plainIR("", alice, "x"), "535 ")
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Fatalf("first failure delayed %v", d)
	}
	start = time.Now()
	c.cmd("AUTH PLAIN "+plainIR("", alice, "x"), "535 ")
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("second failure answered after %v", d)
	}
}

func TestSessionLimits(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{MaxSessions: 3, MaxSessionsPerIP: 2})
	c1 := h.plain(t)
	h.plain(t)
	c := newClient(t, dialFrom(t, h.submission, "127.0.0.1"))
	c.expect("421 4.7.0 Too many connections from your address")
	if !c.closed() {
		t.Fatal("refused connection left open")
	}
	h.tlsFrom(t, "127.0.0.2") // a third session from another address
	c = newClient(t, dialFrom(t, h.submission, "127.0.0.3"))
	got := c.expect("421 4.7.0 The gateway has too many connections")
	if !idRe.MatchString(got) {
		t.Fatalf("no ID in %q", got)
	}
	// On the implicit-TLS port the refusal comes inside TLS.
	raw := dialFrom(t, h.submissions, "127.0.0.3")
	tc := tlsClient(t, raw, h)
	newClient(t, tc).expect("421 4.7.0 ")
	// Closing a session frees its place.
	c1.cmd("QUIT", "221 ")
	waitFor(t, "the session to end", func() bool { n, _ := h.srv.conns.Count(); return n == 2 })
	h.plain(t)
	n, per := h.srv.conns.Count()
	if n != 3 || per["127.0.0.1"] != 2 || per["127.0.0.2"] != 1 {
		t.Fatalf("counts %d %v", n, per)
	}
}

// TestLogsHoldNoSecrets runs sign-ins and a message through the real intake and checks that no
// password, credentials, subject or content reach the log.
func TestLogsHoldNoSecrets(t *testing.T) {
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug - 8}))
	in := intake.New(fakeDirectory{}, &fakeStore{}, allowAll{}, log, nil)
	h := start(t, in, Options{Log: log})
	c := h.tls(t)
	c.ehlo()
	c.cmd("AUTH PLAIN "+plainIR("", alice, "Wrong-Secret-1"), "535 ")
	c.cmd("AUTH LOGIN", "334 ")
	c.cmd(b64(alice), "334 ")
	c.cmd(b64("Wrong-Secret-2"), "535 ")
	c.cmd("AUTH PLAIN "+plainIR("", alice, alicePw), "235 ")
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<bob@b.example>", "250 ")
	c.cmd("DATA", "354 ")
	c.send("From: alice@a.example\r\nSubject: [CAF-2026-000001] Secret-Subject\r\n\r\nSecret-Body\r\n.\r\n")
	c.expect("250 ")
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<bob@b.example>", "250 ")
	c.cmd("DATA", "354 ")
	c.send("Subject: Secret-Subject\r\n\r\nSecret-Body\n.\n\r\n.\r\n")
	c.expect("550 ")
	c.cmd("QUIT", "221 ")
	out := logs.String()
	if !strings.Contains(out, "refused") || !strings.Contains(out, "accepted") {
		t.Fatalf("log is missing the expected lines:\n%s", out)
	}
	for _, secret := range []string{"Wrong-Secret", alicePw, b64(alicePw), plainIR("", alice, alicePw), "Secret-Subject", "Secret-Body"} {
		if strings.Contains(out, secret) {
			t.Fatalf("log holds %q:\n%s", secret, out)
		}
	}
}
