package pkg

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
)

// maxJSONDepth bounds nesting while the manifest is read; the schema itself never nests deeper than 5.
const maxJSONDepth = 32

// jnode is one JSON value with its object members kept in document order, so that the first problem
// found is always the same one and a duplicate key can be named.
type jnode struct {
	kind    jkind
	members []jmember // object
	items   []*jnode  // array
	str     string    // string
	num     json.Number
	boolean bool
}

type jkind int

const (
	jNull jkind = iota
	jBool
	jNumber
	jString
	jArray
	jObject
)

func (k jkind) String() string {
	return [...]string{"null", "a boolean", "a number", "a string", "an array", "an object"}[k]
}

type jmember struct {
	key   string
	value *jnode
}

// get returns the member named key, or nil.
func (n *jnode) get(key string) *jnode {
	for _, m := range n.members {
		if m.key == key {
			return m.value
		}
	}
	return nil
}

// readJSON reads exactly one JSON value from data, refusing duplicate keys, nesting deeper than
// maxJSONDepth and anything after the value.
func readJSON(data []byte) (*jnode, *Error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := readValue(dec, "", 0)
	if err != nil {
		return nil, err
	}
	if _, e := dec.Token(); !errors.Is(e, io.EOF) {
		return nil, fieldErr("", "the manifest has more after its closing brace; it must be one JSON object")
	}
	return n, nil
}

func readValue(dec *json.Decoder, at string, depth int) (*jnode, *Error) {
	if depth > maxJSONDepth {
		return nil, fieldErr(at, "the manifest nests deeper than the format allows")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, &Error{Field: at, Reason: "the manifest is not valid JSON", Err: jsonSyntax(err)}
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return readObject(dec, at, depth)
		}
		if t == '[' {
			return readArray(dec, at, depth)
		}
		return nil, fieldErr(at, "the manifest is not valid JSON")
	case string:
		return &jnode{kind: jString, str: t}, nil
	case json.Number:
		return &jnode{kind: jNumber, num: t}, nil
	case bool:
		return &jnode{kind: jBool, boolean: t}, nil
	case nil:
		return &jnode{kind: jNull}, nil
	}
	return nil, fieldErr(at, "the manifest is not valid JSON")
}

func readObject(dec *json.Decoder, at string, depth int) (*jnode, *Error) {
	n := &jnode{kind: jObject}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, &Error{Field: at, Reason: "the manifest is not valid JSON", Err: jsonSyntax(err)}
		}
		key, _ := tok.(string)
		child := at + "/" + escapePointer(key)
		if n.get(key) != nil {
			return nil, fieldErr(child, "this field appears twice; each field may appear once")
		}
		v, e := readValue(dec, child, depth+1)
		if e != nil {
			return nil, e
		}
		n.members = append(n.members, jmember{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, &Error{Field: at, Reason: "the manifest is not valid JSON", Err: jsonSyntax(err)}
	}
	return n, nil
}

func readArray(dec *json.Decoder, at string, depth int) (*jnode, *Error) {
	n := &jnode{kind: jArray}
	for dec.More() {
		v, e := readValue(dec, at+"/"+strconv.Itoa(len(n.items)), depth+1)
		if e != nil {
			return nil, e
		}
		n.items = append(n.items, v)
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return nil, &Error{Field: at, Reason: "the manifest is not valid JSON", Err: jsonSyntax(err)}
	}
	return n, nil
}

// jsonSyntax keeps only the position of a syntax error: encoding/json's text can quote the input.
func jsonSyntax(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return errors.New("JSON syntax error at byte " + strconv.FormatInt(se.Offset, 10))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("JSON ends early")
	}
	return errors.New("JSON syntax error")
}

// escapePointer escapes one JSON pointer reference token (RFC 6901).
func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
