package main

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func TestMessageExactSizeAndWellFormed(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, size := range []int{1024, 1025, 4000, 10 << 10, 1 << 20, 1<<20 + 77} {
		g := newGenerator("alice@a.example", []string{"bob@b.example", "carol@c.example"}, size, "run1", "CAF-2026-000007")
		for _, seq := range []int{0, 9, 12345} {
			h, b := g.message(3, seq, now)
			msg := append(append([]byte{}, h...), b...)
			if len(msg) != size {
				t.Fatalf("size %d seq %d: got %d bytes", size, seq, len(msg))
			}
			checkLines(t, msg)
			m, err := mail.ReadMessage(bytes.NewReader(msg))
			if err != nil {
				t.Fatalf("size %d: not RFC 5322: %v", size, err)
			}
			if got := m.Header.Get("From"); got != "<alice@a.example>" {
				t.Errorf("From = %q", got)
			}
			if got := m.Header.Get("Subject"); !strings.HasPrefix(got, "[CAF-2026-000007] ") {
				t.Errorf("Subject = %q", got)
			}
			if _, err := m.Header.Date(); err != nil {
				t.Errorf("Date: %v", err)
			}
			if _, err := m.Header.AddressList("To"); err != nil {
				t.Errorf("To: %v", err)
			}
		}
	}
}

// checkLines fails on any bare CR or LF, a line over 998 octets, a body line starting with a dot, or
// a missing final CRLF.
func checkLines(t *testing.T, msg []byte) {
	t.Helper()
	if !bytes.HasSuffix(msg, []byte("\r\n")) {
		t.Fatal("message does not end in CRLF")
	}
	for i, line := range bytes.Split(msg[:len(msg)-2], []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i, line)
		}
		if len(line) > 998 {
			t.Fatalf("line %d is %d octets", i, len(line))
		}
		if bytes.HasPrefix(line, []byte(".")) {
			t.Fatalf("line %d starts with a dot", i)
		}
	}
}

func TestMessageIDsUnique(t *testing.T) {
	g := newGenerator("a@x", []string{"b@x"}, 2048, "r", "")
	seen := map[string]bool{}
	for w := range 12 {
		for seq := range 120 {
			h, _ := g.message(w, seq, time.Now())
			m, err := mail.ReadMessage(bytes.NewReader(h))
			if err != nil {
				t.Fatal(err)
			}
			id := m.Header.Get("Message-ID")
			if id == "" || seen[id] {
				t.Fatalf("Message-ID %q empty or repeated (worker %d seq %d)", id, w, seq)
			}
			seen[id] = true
		}
	}
}

func TestMessageIDDiffersByRun(t *testing.T) {
	now := time.Now()
	h1, _ := newGenerator("a@x", []string{"b@x"}, 2048, "one", "").message(0, 0, now)
	h2, _ := newGenerator("a@x", []string{"b@x"}, 2048, "two", "").message(0, 0, now)
	if bytes.Equal(h1, h2) {
		t.Fatal("two runs produced the same header")
	}
}
