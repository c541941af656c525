package smime

import (
	"bytes"
	"fmt"
	"mime"

	"github.com/emersion/go-message/textproto"
)

// splitSigned returns the two parts of a canonical multipart/signed body, byte for byte: the first
// is exactly what was signed (RFC 1847: the CRLF before a delimiter belongs to the delimiter). The
// body must hold exactly two parts and a close delimiter.
func splitSigned(body []byte, boundary string) (first, second []byte, err error) {
	if boundary == "" || len(boundary) > 70 {
		return nil, nil, fmt.Errorf("%w: multipart/signed boundary", ErrMalformed)
	}
	delim := []byte("--" + boundary)
	d1, ok := nextDelimiter(body, 0, delim)
	if !ok || d1.closing {
		return nil, nil, fmt.Errorf("%w: multipart/signed without parts", ErrMalformed)
	}
	d2, ok := nextDelimiter(body, d1.next, delim)
	if !ok || d2.closing {
		return nil, nil, fmt.Errorf("%w: multipart/signed without a signature part", ErrMalformed)
	}
	d3, ok := nextDelimiter(body, d2.next, delim)
	if !ok || !d3.closing {
		return nil, nil, fmt.Errorf("%w: multipart/signed with other than two parts", ErrMalformed)
	}
	return body[d1.next:d2.start], body[d2.next:d3.start], nil
}

// delimiter is a boundary delimiter line found in a body.
type delimiter struct {
	start   int  // where the delimiter begins, including the CRLF before it
	next    int  // just after the delimiter line (its CRLF), where the following part begins
	closing bool // the close delimiter "--boundary--"
}

// nextDelimiter finds the first delimiter line at or after off: delim at the start of the body or
// after a CRLF, followed by "--" (close), or by optional white space and CRLF or the end of the body.
func nextDelimiter(b []byte, off int, delim []byte) (delimiter, bool) {
	for off <= len(b) {
		var start, at int
		if off == 0 && bytes.HasPrefix(b, delim) {
			start, at = 0, 0
		} else {
			k := bytes.Index(b[off:], append([]byte("\r\n"), delim...))
			if k < 0 {
				return delimiter{}, false
			}
			start, at = off+k, off+k+2
		}
		p := at + len(delim)
		if bytes.HasPrefix(b[p:], []byte("--")) {
			return delimiter{start: start, next: lineEnd(b, p+2), closing: true}, true
		}
		q := p
		for q < len(b) && (b[q] == ' ' || b[q] == '\t') {
			q++
		}
		if q == len(b) {
			return delimiter{start: start, next: q}, true
		}
		if bytes.HasPrefix(b[q:], crlf) {
			return delimiter{start: start, next: q + 2}, true
		}
		off = at + 1 // "--boundaryX": not a delimiter; search on
	}
	return delimiter{}, false
}

// lineEnd returns the index just after the CRLF that ends the line containing i, or len(b).
func lineEnd(b []byte, i int) int {
	if k := bytes.Index(b[i:], crlf); k >= 0 {
		return i + k + 2
	}
	return len(b)
}

// parseDisposition parses the Content-Disposition field.
func parseDisposition(h textproto.Header) (string, map[string]string, error) {
	return mime.ParseMediaType(h.Get("Content-Disposition"))
}
