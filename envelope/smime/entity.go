package smime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"sync"

	"github.com/emersion/go-message/textproto"
)

var crlf = []byte("\r\n")

// maxHeaderBytes bounds one header block (go-message's ReadHeader has no limit of its own).
const maxHeaderBytes = 1 << 20

// ErrMalformed is a MIME structure the package cannot read: no header end, a header over the limit,
// a multipart/signed without its two parts, an undecodable body.
var ErrMalformed = errors.New("smime: malformed MIME")

// isCanonical reports whether every line of b ends in CRLF (no bare CR, no bare LF). It scans with
// bytes.IndexByte, which is vectorised: this runs over every message.
func isCanonical(b []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		if i+j == 0 || b[i+j-1] != '\r' {
			return false
		}
		i += j + 1
	}
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\r')
		if j < 0 {
			return true
		}
		if i+j+1 >= len(b) || b[i+j+1] != '\n' {
			return false
		}
		i += j + 1
	}
}

// Canonical returns b with every line ending made CRLF (bare LF and bare CR become CRLF), the form
// S/MIME signs (RFC 8551 3.1.1). b itself is returned, without copying, when already canonical.
func Canonical(b []byte) []byte {
	if isCanonical(b) {
		return b
	}
	return appendCanonical(make([]byte, 0, len(b)+len(b)/32), b)
}

func appendCanonical(dst, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\r' && i+1 < len(b) && b[i+1] == '\n':
			dst = append(dst, '\r', '\n')
			i++
		case c == '\r' || c == '\n':
			dst = append(dst, '\r', '\n')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// splitEntity splits a canonical entity into its header block (each field with its CRLF, without
// the blank line) and its body. An entity without a blank line is all header.
func splitEntity(b []byte) (header, body []byte, err error) {
	if bytes.HasPrefix(b, crlf) {
		return nil, b[2:], nil
	}
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		i = len(b) - 2
		if !bytes.HasSuffix(b, crlf) {
			return nil, nil, fmt.Errorf("%w: header without end", ErrMalformed)
		}
	}
	if i+2 > maxHeaderBytes {
		return nil, nil, fmt.Errorf("%w: header over %d octets", ErrMalformed, maxHeaderBytes)
	}
	return b[:i+2], b[min(i+4, len(b)):], nil
}

// headerReaders holds readHeader's buffered readers (a fresh 4 KiB one per copy sealed, before);
// go-message copies every line it keeps out of the reader's buffer, so a reader can be used again.
var headerReaders = sync.Pool{New: func() any { return bufio.NewReader(nil) }}

// readHeader parses a header block with go-message.
func readHeader(block []byte) (textproto.Header, error) {
	r := headerReaders.Get().(*bufio.Reader)
	r.Reset(bytes.NewReader(append(block[:len(block):len(block)], crlf...)))
	h, err := textproto.ReadHeader(r)
	r.Reset(nil)
	headerReaders.Put(r)
	if err != nil {
		return h, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return h, nil
}

// mediaType returns the entity's lower-case media type and parameters, text/plain when absent.
func mediaType(h textproto.Header) (string, map[string]string) {
	v := h.Get("Content-Type")
	if v == "" {
		return "text/plain", map[string]string{}
	}
	t, params, err := mime.ParseMediaType(v)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(strings.SplitN(v, ";", 2)[0])), map[string]string{}
	}
	return t, params
}

// isContentField reports whether a header field belongs to the MIME entity rather than the message
// (RFC 2045 Content-* fields).
func isContentField(key string) bool {
	return strings.HasPrefix(strings.ToLower(key), "content-")
}

// writeHeaderFields appends the raw form of every field of h that keep accepts.
func writeHeaderFields(dst io.Writer, h textproto.Header, keep func(key string) bool) error {
	fields := h.Fields()
	for fields.Next() {
		if !keep(fields.Key()) {
			continue
		}
		raw, err := fields.Raw()
		if err != nil {
			return err
		}
		if _, err := dst.Write(raw); err != nil {
			return err
		}
	}
	return nil
}
