package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

const (
	// minMessageSize leaves room for the header block with long addresses.
	minMessageSize = 1024
	// bodyLine is the length of every body line including its CRLF.
	bodyLine = 78
	padName  = "X-Load-Pad: "
)

// generator makes RFC 5322 messages of an exact size: a small header block that differs per message
// (unique Message-ID) and a body of fixed 7-bit text lines built once, so the client spends little CPU
// per message. All line ends are CRLF; no line starts with a dot.
type generator struct {
	from    string
	to      []string
	size    int
	runID   string
	subject string // prefix of every Subject, e.g. "[CAF-2026-000001] "
	body    []byte // at least size bytes of whole CRLF lines
}

// newGenerator prepares messages of size bytes; runID makes Message-IDs unique across runs; a non-empty
// episode reference goes into every Subject as "[REF]".
func newGenerator(from string, to []string, size int, runID, episode string) *generator {
	g := &generator{from: from, to: to, size: size, runID: runID, body: bodyText(size, 1)}
	if episode != "" {
		g.subject = "[" + episode + "] "
	}
	return g
}

// bodyText returns whole lines of pseudo-random printable text, at least n bytes.
func bodyText(n int, seed uint64) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789     ,;"
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	lines := (n + bodyLine - 1) / bodyLine
	b := make([]byte, 0, lines*bodyLine)
	for range lines {
		b = append(b, 'L') // never '.', never a space at line start
		for range bodyLine - 3 {
			b = append(b, alphabet[r.IntN(len(alphabet))])
		}
		b = append(b, '\r', '\n')
	}
	return b
}

// message returns the header block (ending in the blank line) and the body of message seq from worker
// w; together they are exactly g.size bytes, unless the header alone is already longer.
func (g *generator) message(w, seq int, now time.Time) (header, body []byte) {
	var h bytes.Buffer
	fmt.Fprintf(&h, "From: <%s>\r\n", g.from)
	fmt.Fprintf(&h, "To: %s\r\n", angleList(g.to))
	fmt.Fprintf(&h, "Subject: %sload test %d-%d\r\n", g.subject, w, seq)
	fmt.Fprintf(&h, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&h, "Message-ID: <%s.%d.%d@load.invalid>\r\n", g.runID, w, seq)
	h.WriteString("MIME-Version: 1.0\r\n")
	h.WriteString("Content-Type: text/plain; charset=us-ascii\r\n")
	h.WriteString("Content-Transfer-Encoding: 7bit\r\n")
	fixed := h.Len() + len(padName) + 2 + 2 // pad line CRLF, blank line
	bodyLen := max(0, (g.size-fixed)/bodyLine*bodyLine)
	pad := g.size - fixed - bodyLen
	if pad < 0 {
		pad = 0 // the header alone is larger than size: the message is a little too big
	}
	h.WriteString(padName)
	h.WriteString(strings.Repeat("p", pad))
	h.WriteString("\r\n\r\n")
	return h.Bytes(), g.body[:bodyLen]
}

func angleList(addrs []string) string {
	parts := make([]string, len(addrs))
	for i, a := range addrs {
		parts[i] = "<" + a + ">"
	}
	return strings.Join(parts, ", ")
}
