package pkg

import "bytes"

// splitHeader finds the end of the header block at the start of data: the first empty line (CRLF or a
// bare LF). It returns the header (with its ending blank line, when there is one) and the body. A
// header of more than max bytes (before its blank line) is refused without reading further; ok is false then.
func splitHeader(data []byte, max int) (header, body []byte, ok bool) {
	i := 0
	for i < len(data) {
		if i > max {
			return nil, nil, false
		}
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			j = len(data) - i // the last line, without an end
		} else {
			j++ // include the LF
		}
		line := data[i : i+j]
		if isBlankLine(line) {
			return data[:i+j], data[i+j:], true
		}
		i += j
	}
	if len(data) > max {
		return nil, nil, false
	}
	return data, nil, true // a header and no body
}

func isBlankLine(line []byte) bool {
	return len(line) == 1 && line[0] == '\n' || len(line) == 2 && line[0] == '\r' && line[1] == '\n'
}

// splitResult says why splitMultipart stopped.
type splitResult int

const (
	splitOK      splitResult = iota
	splitNoEnd               // no closing delimiter: the multipart body is truncated or not multipart
	splitTooMany             // more than max parts
	splitNoParts             // a closing delimiter and no part before it
)

// splitMultipart cuts a multipart body into its parts' raw bytes (RFC 2046 5.1.1): a delimiter is a line
// that starts with "--" and the boundary, followed only by optional white space, the close delimiter
// adds "--" after the boundary; the line break before a delimiter belongs to it. The preamble and the
// epilogue are dropped. Lines may end in CRLF or a bare LF. It stops after max parts.
func splitMultipart(body []byte, boundary string, max int) ([][]byte, splitResult) {
	delim := []byte("--" + boundary)
	var parts [][]byte
	start := -1 // start of the current part; -1 while in the preamble
	pos := 0
	for {
		at, lineEnd, closing, found := nextDelimiter(body, pos, delim)
		if !found {
			return parts, splitNoEnd
		}
		if start >= 0 {
			if len(parts) == max {
				return parts, splitTooMany
			}
			parts = append(parts, body[start:partEnd(body, start, at)])
		}
		if closing {
			if len(parts) == 0 {
				return nil, splitNoParts
			}
			return parts, splitOK
		}
		start, pos = lineEnd, lineEnd
	}
}

// nextDelimiter finds the next delimiter line at or after pos. It returns where the line starts, where
// the next line starts, and whether it is the close delimiter.
func nextDelimiter(body []byte, pos int, delim []byte) (at, next int, closing, found bool) {
	for pos <= len(body) {
		i := bytes.Index(body[pos:], delim)
		if i < 0 {
			return 0, 0, false, false
		}
		at = pos + i
		pos = at + 1
		if at > 0 && body[at-1] != '\n' {
			continue // not at the start of a line
		}
		rest := body[at+len(delim):]
		eol := bytes.IndexByte(rest, '\n')
		next = at + len(delim) + eol + 1
		if eol < 0 {
			eol, next = len(rest), len(body)
		}
		tail := rest[:eol]
		closing = bytes.HasPrefix(tail, []byte("--"))
		if closing {
			tail = tail[2:]
		}
		if len(bytes.Trim(tail, " \t\r")) != 0 {
			continue // the boundary is only the start of a longer word
		}
		return at, next, closing, true
	}
	return 0, 0, false, false
}

// partEnd is where a part that starts at start ends, given the delimiter line at at: before the line
// break that precedes the delimiter.
func partEnd(body []byte, start, at int) int {
	end := at
	if end > start && body[end-1] == '\n' {
		end--
		if end > start && body[end-1] == '\r' {
			end--
		}
	}
	return end
}

// validBoundary checks RFC 2046's boundary syntax: 1 to 70 characters from bchars, not ending in a space.
func validBoundary(b string) bool {
	if len(b) == 0 || len(b) > 70 || b[len(b)-1] == ' ' {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(isAlnum(c) || bytes.IndexByte([]byte("'()+_,-./:=? "), c) >= 0) {
			return false
		}
	}
	return true
}
