// Package ldif is the file-backed practitioner directory: an LDIF file in the cafgate schema
// (configs/cafgate.schema.ldif), loaded once, answering directory.Directory. It also holds the LDIF
// reader and writer (the RFC 2849 subset for content records) and the {SSHA} password scheme that
// OpenLDAP verifies natively, so the same file can be loaded into slapd.
package ldif

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
)

// Entry is one LDIF content record: a DN and its attribute values in file order.
type Entry struct {
	DN    string
	Attrs []Attr
}

// Attr is one attribute value. Name is the attribute description as written, options included
// ("userCertificate;binary").
type Attr struct {
	Name  string
	Value []byte
}

// ParseError is a syntax error at a line of the input (1-based, the first line of a folded line).
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("ldif: line %d: %s", e.Line, e.Msg) }

// Get returns the values of the attribute name, compared case-insensitively and ignoring a ";binary"
// option on either side, so Get("userCertificate") finds "userCertificate;binary". Other options must
// match. The values alias the entry's own.
func (e Entry) Get(name string) [][]byte {
	key := attrKey(name)
	var out [][]byte
	for _, a := range e.Attrs {
		if attrKey(a.Name) == key {
			out = append(out, a.Value)
		}
	}
	return out
}

// attrKey is the attribute description in lower case without a ";binary" option.
func attrKey(name string) string {
	parts := strings.Split(strings.ToLower(name), ";")
	kept := parts[:1]
	for _, o := range parts[1:] {
		if o != "binary" {
			kept = append(kept, o)
		}
	}
	return strings.Join(kept, ";")
}

// line is one logical (unfolded) line and the number of its first physical line.
type line struct {
	no   int
	text []byte
}

// Parse reads LDIF content records (RFC 2849): an optional "version: 1" line, records separated by blank
// lines, "dn:" first, "attr: value", "attr:: base64", folded lines (continuations start with one space)
// and "#" comments. Change records and "attr:< URL" values are refused with the line number.
func Parse(r io.Reader) ([]Entry, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	records, err := splitRecords(data)
	if err != nil {
		return nil, err
	}
	if len(records) > 0 {
		if records[0], err = skipVersion(records[0]); err != nil {
			return nil, err
		}
	}
	var entries []Entry
	for _, rec := range records {
		if len(rec) == 0 {
			continue
		}
		e, err := parseRecord(rec)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// splitRecords unfolds the physical lines into logical lines, drops comments and groups the lines
// into records at blank lines.
func splitRecords(data []byte) ([][]line, error) {
	var (
		records [][]line
		rec     []line
		cur     *line // the logical line being built
	)
	finish := func() {
		if cur != nil && !bytes.HasPrefix(cur.text, []byte("#")) {
			rec = append(rec, *cur)
		}
		cur = nil
	}
	for i, raw := range bytes.Split(data, []byte("\n")) {
		no := i + 1
		raw = bytes.TrimSuffix(raw, []byte("\r"))
		switch {
		case len(raw) == 0:
			finish()
			if len(rec) > 0 {
				records = append(records, rec)
			}
			rec = nil
		case raw[0] == ' ':
			if cur != nil {
				cur.text = append(cur.text, raw[1:]...)
				continue
			}
			if len(rec) == 0 && len(bytes.Trim(raw, " ")) == 0 {
				continue // a line of spaces between records counts as blank
			}
			return nil, &ParseError{no, "continuation line (starting with a space) with no line to continue"}
		default:
			finish()
			cur = &line{no: no, text: append([]byte(nil), raw...)}
		}
	}
	finish()
	if len(rec) > 0 {
		records = append(records, rec)
	}
	return records, nil
}

// skipVersion removes a leading "version: 1" line from the first record.
func skipVersion(rec []line) ([]line, error) {
	if len(rec) == 0 {
		return rec, nil
	}
	name, _, ok := bytes.Cut(rec[0].text, []byte(":"))
	if !ok || !strings.EqualFold(string(name), "version") {
		return rec, nil
	}
	_, v, err := parseLine(rec[0])
	if err != nil {
		return nil, err
	}
	if string(v) != "1" {
		return nil, &ParseError{rec[0].no, fmt.Sprintf("unsupported LDIF version %q (only 1)", v)}
	}
	return rec[1:], nil
}

// parseRecord turns the logical lines of one record into an Entry.
func parseRecord(rec []line) (Entry, error) {
	name, dn, err := parseLine(rec[0])
	if err != nil {
		return Entry{}, err
	}
	if !strings.EqualFold(name, "dn") {
		return Entry{}, &ParseError{rec[0].no, fmt.Sprintf("a record must start with dn:, not %s:", name)}
	}
	e := Entry{DN: string(dn)}
	for _, l := range rec[1:] {
		name, v, err := parseLine(l)
		if err != nil {
			return Entry{}, err
		}
		if msg := reservedName(name); msg != "" {
			return Entry{}, &ParseError{l.no, msg}
		}
		e.Attrs = append(e.Attrs, Attr{Name: name, Value: v})
	}
	if len(e.Attrs) == 0 {
		return Entry{}, &ParseError{rec[0].no, "entry " + quoteDN(e.DN) + " has no attributes"}
	}
	return e, nil
}

// reservedName explains why name cannot be an attribute of a content record, or returns "".
func reservedName(name string) string {
	switch strings.ToLower(name) {
	case "changetype", "control":
		return name + ": starts a change record; only content records (entries) are supported"
	case "dn":
		return "dn: inside a record (is a blank line missing before it?)"
	case "version":
		return "version: is allowed only as the first line of the file"
	}
	return ""
}

// parseLine splits "name: value", "name:: base64" into the attribute description and the value.
func parseLine(l line) (string, []byte, error) {
	if len(l.text) > 0 && l.text[0] == '-' {
		return "", nil, &ParseError{l.no, `"-" separates modifications in a change record; only content records are supported`}
	}
	name, rest, ok := bytes.Cut(l.text, []byte(":"))
	if !ok {
		return "", nil, &ParseError{l.no, "expected attribute: value"}
	}
	if err := checkAttrName(string(name)); err != nil {
		return "", nil, &ParseError{l.no, err.Error()}
	}
	switch {
	case len(rest) > 0 && rest[0] == ':':
		enc := bytes.Trim(rest[1:], " ")
		v := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
		n, err := base64.StdEncoding.Decode(v, enc)
		if err != nil {
			return "", nil, &ParseError{l.no, fmt.Sprintf("%s:: value is not valid base64", name)}
		}
		return string(name), v[:n], nil
	case len(rest) > 0 && rest[0] == '<':
		return "", nil, &ParseError{l.no, fmt.Sprintf("%s:< URL values are not supported; put the value inline (base64 with ::)", name)}
	}
	return string(name), append([]byte{}, bytes.TrimLeft(rest, " ")...), nil
}

// checkAttrName accepts an attribute description: a name (letter, then letters, digits, hyphens) or a
// numeric OID, followed by ";option"s.
func checkAttrName(desc string) error {
	parts := strings.Split(desc, ";")
	if !isKeyString(parts[0]) && !isNumericOID(parts[0]) {
		return fmt.Errorf("%q is not an attribute name", desc)
	}
	for _, o := range parts[1:] {
		if o == "" || strings.Trim(o, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			return fmt.Errorf("%q has a malformed option", desc)
		}
	}
	return nil
}

func isKeyString(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isLetter(s[i]) && !isDigit(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

func isNumericOID(s string) bool {
	for _, arc := range strings.Split(s, ".") {
		if arc == "" || strings.Trim(arc, "0123456789") != "" || len(arc) > 1 && arc[0] == '0' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

func quoteDN(dn string) string { return fmt.Sprintf("%q", dn) }
