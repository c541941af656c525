package pkg

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// check tests one JSON value at the pointer at. The combinators below mirror the keywords of
// docs/manifest.schema.json (type, required, additionalProperties, minLength/maxLength, pattern,
// enum, minItems/maxItems, uniqueItems), so the Go rules and the published schema read alike.
type check func(n *jnode, at string) *Error

// field is one property of an object check.
type field struct {
	name     string
	required bool
	check    check
}

// object checks that n is an object holding only the named fields, the required ones present. Unknown
// fields are reported first, then missing ones, then each field's own check in the order given.
func object(fields ...field) check {
	return func(n *jnode, at string) *Error {
		if n.kind != jObject {
			return wrongType(n, at, jObject)
		}
		for _, m := range n.members {
			if !hasField(fields, m.key) {
				return fieldErr(at+"/"+escapePointer(m.key), "this field is not part of the manifest format (version 1)")
			}
		}
		for _, f := range fields {
			if f.required && n.get(f.name) == nil {
				return fieldErr(at+"/"+f.name, "this field is required")
			}
		}
		for _, f := range fields {
			if v := n.get(f.name); v != nil {
				if err := f.check(v, at+"/"+f.name); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

func hasField(fields []field, name string) bool {
	for _, f := range fields {
		if f.name == name {
			return true
		}
	}
	return false
}

// text checks a string of minLen to maxLen characters (code points, as JSON Schema counts them) that
// valid accepts; what completes the sentence "must be ...".
func text(minLen, maxLen int, valid func(string) bool, what string) check {
	return func(n *jnode, at string) *Error {
		if n.kind != jString {
			return wrongType(n, at, jString)
		}
		l := utf8.RuneCountInString(n.str)
		if l < minLen || l > maxLen || (valid != nil && !valid(n.str)) {
			return fieldErr(at, "must be %s", what)
		}
		return nil
	}
}

// oneOfStrings checks a string from a fixed list (a schema enum).
func oneOfStrings(what string, values ...string) check {
	return func(n *jnode, at string) *Error {
		if n.kind != jString {
			return wrongType(n, at, jString)
		}
		for _, v := range values {
			if n.str == v {
				return nil
			}
		}
		return fieldErr(at, "must be %s", what)
	}
}

// arrayOf checks an array of minItems to maxItems items, each passing item; with unique, no two string
// items are equal.
func arrayOf(minItems, maxItems int, unique bool, item check) check {
	return func(n *jnode, at string) *Error {
		if n.kind != jArray {
			return wrongType(n, at, jArray)
		}
		if len(n.items) < minItems {
			return fieldErr(at, "must list at least %d %s", minItems, plural(minItems, "entry", "entries"))
		}
		if len(n.items) > maxItems {
			return fieldErr(at, "may list at most %d entries", maxItems)
		}
		for i, v := range n.items {
			p := at + "/" + strconv.Itoa(i)
			if err := item(v, p); err != nil {
				return err
			}
			if unique && v.kind == jString {
				for _, w := range n.items[:i] {
					if w.kind == jString && w.str == v.str {
						return fieldErr(p, "repeats an earlier entry; each may appear once")
					}
				}
			}
		}
		return nil
	}
}

// boolean checks a JSON boolean.
func boolean() check {
	return func(n *jnode, at string) *Error {
		if n.kind != jBool {
			return wrongType(n, at, jBool)
		}
		return nil
	}
}

// isTrue checks the JSON value true (a schema const true).
func isTrue() check {
	return func(n *jnode, at string) *Error {
		if n.kind != jBool || !n.boolean {
			return fieldErr(at, "must be true when present")
		}
		return nil
	}
}

func wrongType(n *jnode, at string, want jkind) *Error {
	return fieldErr(at, "must be %s, not %s", want, n.kind)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// The string rules, shared by the checks and written identically as patterns in the schema.

// isEpisodeRef: ^CAF-[0-9]{4}-[0-9]{6}$
func isEpisodeRef(s string) bool {
	if len(s) != 15 || !strings.HasPrefix(s, "CAF-") || s[8] != '-' {
		return false
	}
	return allDigits(s[4:8]) && allDigits(s[9:])
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// isChildID: ^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$
func isChildID(s string) bool {
	if s == "" || len(s) > 64 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isAlnum(s[i]) && !strings.ContainsRune("._:/-", rune(s[i])) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isMail: ^[^@\x00-\x20<>"\x7f]+@[^@\x00-\x20<>"\x7f]+$ (and at most 254 characters, checked apart).
func isMail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.Count(s, "@") != 1 {
		return false
	}
	for _, r := range s {
		if r <= 0x20 || r == 0x7f || r == '<' || r == '>' || r == '"' {
			return false
		}
	}
	return true
}

// isPartName: ^[^/\\\x00-\x1f\x7f]+$ and not "." or "..": a file name a recipient can save as it is.
func isPartName(s string) bool {
	if s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return false
		}
	}
	return true
}

// isPlainText: ^[^\x00-\x1f\x7f]+$ (a name on one line: an agency).
func isPlainText(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// hasVisible: some character that is neither a control character nor a space, [^\x00-\x20\x7f].
func hasVisible(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r > 0x20 && r != 0x7f }) >= 0
}

// isDateTime: RFC 3339 date-time, ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$
// with a real calendar date and time (the schema's format "date-time").
func isDateTime(s string) bool {
	if !dateTimeShape(s) {
		return false
	}
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

func dateTimeShape(s string) bool {
	if len(s) < 20 || !allDigits(s[0:4]) || s[4] != '-' || !allDigits(s[5:7]) || s[7] != '-' ||
		!allDigits(s[8:10]) || s[10] != 'T' || !allDigits(s[11:13]) || s[13] != ':' || !allDigits(s[14:16]) ||
		s[16] != ':' || !allDigits(s[17:19]) {
		return false
	}
	rest := s[19:]
	if rest[0] == '.' {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 1 {
			return false
		}
		rest = rest[i:]
	}
	if rest == "Z" {
		return true
	}
	return len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && allDigits(rest[1:3]) && rest[3] == ':' && allDigits(rest[4:6])
}
