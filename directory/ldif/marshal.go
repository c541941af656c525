package ldif

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// foldAt is the longest line Marshal writes; longer lines continue on lines starting with one space.
const foldAt = 76

// Marshal writes entries as LDIF content records after a "version: 1" line. Values of ";binary"
// attributes, and values that are not safe as plain text (non-ASCII, control characters, a leading
// space, colon or "<", a trailing space), are written base64 ("name:: "). Lines are folded at 76
// characters. An entry without attributes, or an
// attribute name Parse would not accept, is an error.
func Marshal(w io.Writer, entries []Entry) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("version: 1\n")
	for i, e := range entries {
		if len(e.Attrs) == 0 {
			return fmt.Errorf("ldif: entry %d (%s) has no attributes", i, quoteDN(e.DN))
		}
		bw.WriteString("\n")
		writeLine(bw, "dn", []byte(e.DN))
		for _, a := range e.Attrs {
			if err := checkAttrName(a.Name); err != nil {
				return fmt.Errorf("ldif: entry %s: %w", quoteDN(e.DN), err)
			}
			if msg := reservedName(a.Name); msg != "" {
				return errors.New("ldif: entry " + quoteDN(e.DN) + ": " + msg)
			}
			writeLine(bw, a.Name, a.Value)
		}
	}
	return bw.Flush()
}

// writeLine writes one attribute line, base64 when needed, folded.
func writeLine(bw *bufio.Writer, name string, v []byte) {
	s := name + ":"
	switch {
	case len(v) == 0:
	case isSafe(v) && !hasBinaryOption(name):
		s += " " + string(v)
	default:
		s += ": " + base64.StdEncoding.EncodeToString(v)
	}
	for n := foldAt; len(s) > n; n = foldAt - 1 {
		bw.WriteString(s[:n])
		bw.WriteString("\n ")
		s = s[n:]
	}
	bw.WriteString(s)
	bw.WriteString("\n")
}

// isSafe reports whether v may be written as a plain value: printable ASCII (a subset of RFC 2849
// SAFE-STRING) without a trailing space, which readers commonly strip.
func isSafe(v []byte) bool {
	switch v[0] {
	case ' ', ':', '<':
		return false
	}
	if v[len(v)-1] == ' ' {
		return false
	}
	for _, c := range v {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// hasBinaryOption reports whether the attribute description carries ";binary", whose values Marshal
// always writes base64.
func hasBinaryOption(name string) bool {
	for _, o := range strings.Split(strings.ToLower(name), ";")[1:] {
		if o == "binary" {
			return true
		}
	}
	return false
}
