package smime

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
)

const base64Line = 76 // RFC 2045 6.8

// lineWriter inserts CRLF after every base64Line octets written through it.
type lineWriter struct {
	w   io.Writer
	col int
}

func (l *lineWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(base64Line-l.col, len(p))
		if _, err := l.w.Write(p[:k]); err != nil {
			return n, err
		}
		n += k
		l.col += k
		p = p[k:]
		if l.col == base64Line {
			if _, err := l.w.Write(crlf); err != nil {
				return n, err
			}
			l.col = 0
		}
	}
	return n, nil
}

// base64Body is a writer that base64-encodes into w in lines of 76; Close flushes and ends the last
// line with CRLF.
type base64Body struct {
	lines *lineWriter
	enc   io.WriteCloser
}

func newBase64Body(w io.Writer) *base64Body {
	l := &lineWriter{w: w}
	return &base64Body{lines: l, enc: base64.NewEncoder(base64.StdEncoding, l)}
}

func (b *base64Body) Write(p []byte) (int, error) { return b.enc.Write(p) }

func (b *base64Body) Close() error {
	if err := b.enc.Close(); err != nil {
		return err
	}
	if b.lines.col > 0 {
		_, err := b.lines.w.Write(crlf)
		return err
	}
	return nil
}

// base64Len is the encoded length of n octets with CRLF line breaks.
func base64Len(n int) int {
	e := base64.StdEncoding.EncodedLen(n)
	return e + (e+base64Line-1)/base64Line*2
}

// decodeBase64 decodes a base64 body, ignoring line breaks and other white space. Anything else
// outside the alphabet is an error. The common case (only CRLF breaks) makes one copy.
func decodeBase64(b []byte) ([]byte, error) {
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := io.ReadFull(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(b)), out)
	if err == nil || err == io.ErrUnexpectedEOF || err == io.EOF {
		return out[:n], nil
	}
	return decodeBase64Lenient(b)
}

// decodeBase64Lenient also drops spaces and tabs, and accepts missing padding.
func decodeBase64Lenient(b []byte) ([]byte, error) {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		switch c {
		case '\r', '\n', ' ', '\t':
		default:
			clean = append(clean, c)
		}
	}
	enc := base64.StdEncoding
	if len(clean)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	out := make([]byte, enc.DecodedLen(len(clean)))
	n, err := enc.Decode(out, clean)
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %v", ErrMalformed, err)
	}
	return out[:n], nil
}
