// Strict JSON request bodies: one object, UTF-8, no duplicate names, no unknown fields, bounded depth
// and size. Every refusal names the field at fault as a JSON pointer (RFC 6901).

package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"cafgate/gateway/fault"
)

// maxJSONDepth bounds nesting; the API's bodies are at most four levels deep.
const maxJSONDepth = 16

// jsonObject is a decoded object with the pointer it was found at; fields taken are marked, so the
// rest can be refused as unknown.
type jsonObject struct {
	ptr   string
	vals  map[string]any
	order []string
	taken map[string]bool
}

// readJSON reads the request body as one JSON object. An empty body is an empty object when
// emptyOK (endpoints whose every field is optional).
func (h *Handler) readJSON(rq *request, emptyOK bool) (*jsonObject, *Problem) {
	r := rq.r
	if r.ContentLength > h.opt.Limits.MaxJSONBytes {
		return nil, tooBig(h.opt.Limits.MaxJSONBytes, nil)
	}
	data, err := io.ReadAll(http.MaxBytesReader(rq.w, r.Body, h.opt.Limits.MaxJSONBytes))
	if p := bodyReadProblem(err, h.opt.Limits.MaxJSONBytes); p != nil {
		return nil, p
	}
	if len(bytes.TrimSpace(data)) == 0 && emptyOK {
		return &jsonObject{ptr: "", vals: map[string]any{}, taken: map[string]bool{}}, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" || len(data) > 0 {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, newProblem(slugUnsupportedMedia, "Send the body as application/json.", "header Content-Type", nil)
		}
	}
	obj, perr := decodeObject(data)
	if perr != nil {
		return nil, perr
	}
	return obj, nil
}

// decodeObject parses data as one JSON object.
func decodeObject(data []byte) (*jsonObject, *Problem) {
	if !utf8.Valid(data) {
		return nil, badJSON("", "The body is not UTF-8 text.", nil)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, perr := decodeValue(dec, "", 0)
	if perr != nil {
		return nil, perr
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badJSON("", "The body holds more than one JSON value.", err)
	}
	obj, ok := v.(*jsonObject)
	if !ok {
		return nil, badJSON("", "The body must be a JSON object.", nil)
	}
	return obj, nil
}

// decodeValue reads one value from dec; objects become *jsonObject, arrays []any.
func decodeValue(dec *json.Decoder, ptr string, depth int) (any, *Problem) {
	if depth > maxJSONDepth {
		return nil, badJSON(ptr, "The body is nested too deeply.", nil)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, badJSON(ptr, "The body is not valid JSON.", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return decodeMembers(dec, ptr, depth)
		case '[':
			return decodeElements(dec, ptr, depth)
		}
		return nil, badJSON(ptr, "The body is not valid JSON.", nil)
	default:
		return t, nil // string, json.Number, bool or nil
	}
}

func decodeMembers(dec *json.Decoder, ptr string, depth int) (any, *Problem) {
	obj := &jsonObject{ptr: ptr, vals: map[string]any{}, taken: map[string]bool{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, badJSON(ptr, "The body is not valid JSON.", err)
		}
		name, _ := tok.(string)
		at := ptr + "/" + escapePointer(name)
		if _, dup := obj.vals[name]; dup {
			return nil, badJSON(at, "This field appears twice.", nil)
		}
		v, p := decodeValue(dec, at, depth+1)
		if p != nil {
			return nil, p
		}
		obj.vals[name] = v
		obj.order = append(obj.order, name)
	}
	if _, err := dec.Token(); err != nil {
		return nil, badJSON(ptr, "The body is not valid JSON.", err)
	}
	return obj, nil
}

func decodeElements(dec *json.Decoder, ptr string, depth int) (any, *Problem) {
	var out []any
	for dec.More() {
		v, p := decodeValue(dec, ptr+"/"+strconv.Itoa(len(out)), depth+1)
		if p != nil {
			return nil, p
		}
		out = append(out, v)
	}
	if _, err := dec.Token(); err != nil {
		return nil, badJSON(ptr, "The body is not valid JSON.", err)
	}
	if out == nil {
		out = []any{}
	}
	return out, nil
}

// escapePointer escapes a member name for a JSON pointer.
func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

func badJSON(ptr, sentence string, cause error) *Problem {
	return faultProblem(fault.BadCommand, sentence, ptr, cause)
}

// invalid is a well-formed request that asks for something not allowed (422).
func invalid(ptr, sentence string, cause error) *Problem {
	return newProblem(slugInvalid, sentence, ptr, cause)
}

func (o *jsonObject) at(name string) string { return o.ptr + "/" + escapePointer(name) }

// get marks name taken and returns its value (nil, false when absent or null).
func (o *jsonObject) get(name string) (any, bool) {
	o.taken[name] = true
	v, ok := o.vals[name]
	return v, ok && v != nil
}

// str returns a string field; required fields must be present and not blank.
func (o *jsonObject) str(name string, required bool) (string, *Problem) {
	v, ok := o.get(name)
	if !ok {
		if required {
			return "", badJSON(o.at(name), "This field is required.", nil)
		}
		return "", nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", badJSON(o.at(name), "This field must be a string.", nil)
	}
	if required && strings.TrimSpace(s) == "" {
		return "", badJSON(o.at(name), "This field must not be empty.", nil)
	}
	return s, nil
}

// strs returns an array of strings.
func (o *jsonObject) strs(name string) ([]string, *Problem) {
	v, ok := o.get(name)
	if !ok {
		return nil, nil
	}
	arr, isArr := v.([]any)
	if !isArr {
		return nil, badJSON(o.at(name), "This field must be an array of strings.", nil)
	}
	out := make([]string, len(arr))
	for i, x := range arr {
		s, isStr := x.(string)
		if !isStr {
			return nil, badJSON(fmt.Sprintf("%s/%d", o.at(name), i), "This item must be a string.", nil)
		}
		out[i] = s
	}
	return out, nil
}

// boolean returns a boolean field (false when absent).
func (o *jsonObject) boolean(name string) (bool, *Problem) {
	v, ok := o.get(name)
	if !ok {
		return false, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, badJSON(o.at(name), "This field must be true or false.", nil)
	}
	return b, nil
}

// objects returns an array of objects.
func (o *jsonObject) objects(name string) ([]*jsonObject, *Problem) {
	v, ok := o.get(name)
	if !ok {
		return nil, nil
	}
	arr, isArr := v.([]any)
	if !isArr {
		return nil, badJSON(o.at(name), "This field must be an array of objects.", nil)
	}
	out := make([]*jsonObject, len(arr))
	for i, x := range arr {
		obj, isObj := x.(*jsonObject)
		if !isObj {
			return nil, badJSON(fmt.Sprintf("%s/%d", o.at(name), i), "This item must be an object.", nil)
		}
		out[i] = obj
	}
	return out, nil
}

// done refuses the first field nobody took.
func (o *jsonObject) done() *Problem {
	for _, name := range o.order {
		if !o.taken[name] {
			return badJSON(o.at(name), "This field is not part of the request.", nil)
		}
	}
	return nil
}

// bodyReadProblem maps an error reading a body: over the limit is 413, a deadline 408, anything else
// a request that did not arrive whole.
func bodyReadProblem(err error, limit int64) *Problem {
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mbe):
		return tooBig(limit, err)
	case isTimeout(err):
		return newProblem(slugTimeout, "The request did not arrive in time; nothing was accepted.", "", err)
	}
	return faultProblem(fault.BadCommand, "The request body was not received completely; nothing was accepted.", "", err)
}

func tooBig(limit int64, cause error) *Problem {
	return faultProblem(fault.TooBig, fmt.Sprintf("The request body is larger than the gateway accepts here (%d bytes at most).", limit), "", cause)
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
