// Package ledger is the tamper-evident record of every event and access: a fixed, versioned event
// envelope with one canonical encoding, a Merkle tree over the events in the style of RFC 9162 (leaf
// hash SHA-256(0x00||event), node hash SHA-256(0x01||left||right)) stored beside them in SQLite, signed
// checkpoints in the C2SP tlog-checkpoint signed-note format, inclusion proofs, and a verifier that
// recomputes everything and names the first event that was altered, inserted, removed or reordered.
//
// The package knows the ledger tables (mailbox/migrations/0002_ledger.sql) but not the store around
// them: package mailbox appends inside its own transactions, and the CLI reads a copy of the file.
package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// Version is the event schema version written in every event's "v" field.
const Version = 1

// Event is one ledger entry: a fixed envelope around a type-specific data object. V, N and At are set
// by the appender (At from the caller's clock when given). Data never holds package content, a subject
// line or a child's name; a child appears only as ChildHash.
type Event struct {
	V       int             `json:"v"`
	N       uint64          `json:"n"`                 // event number: the leaf index in the Merkle tree, from 0
	At      string          `json:"at"`                // UTC, fixed width: 2006-01-02T15:04:05.000000000Z
	Type    string          `json:"type"`              // one of Types()
	Package string          `json:"package,omitempty"` // the message (package) ID the event is about
	Data    json.RawMessage `json:"data"`              // a JSON object; its fields depend on Type (docs/ledger.md)
}

// TimeLayout is the fixed-width UTC layout of Event.At; it sorts as text.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// FormatTime renders t in TimeLayout.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// Time parses the event's At.
func (e *Event) Time() (time.Time, error) { return time.Parse(TimeLayout, e.At) }

// ErrInvalid is wrapped by every schema violation.
var ErrInvalid = errors.New("ledger: invalid event")

// Validate checks the envelope: a known type, the version, a well-formed time, and data that is one
// JSON object in valid UTF-8.
func (e *Event) Validate() error {
	if err := e.validateEnvelope(); err != nil {
		return err
	}
	if !json.Valid(e.Data) {
		return fmt.Errorf("%w: %s: data is not a JSON object", ErrInvalid, e.Type)
	}
	return nil
}

// validateEnvelope is Validate without parsing the data (Encode does that when it compacts it).
func (e *Event) validateEnvelope() error {
	if !KnownType(e.Type) {
		return fmt.Errorf("%w: unknown type %q (add it to the ledger's list of types)", ErrInvalid, e.Type)
	}
	if e.V != Version {
		return fmt.Errorf("%w: version %d, want %d", ErrInvalid, e.V, Version)
	}
	if _, err := e.Time(); err != nil || len(e.At) != len(TimeLayout) {
		return fmt.Errorf("%w: %s: time %q is not in the fixed layout", ErrInvalid, e.Type, e.At)
	}
	if !utf8.ValidString(e.Package) {
		return fmt.Errorf("%w: %s: package ID is not valid UTF-8", ErrInvalid, e.Type)
	}
	if len(e.Data) < 2 || e.Data[0] != '{' || e.Data[len(e.Data)-1] != '}' || !utf8.Valid(e.Data) {
		return fmt.Errorf("%w: %s: data is not a JSON object", ErrInvalid, e.Type)
	}
	return nil
}

// EncodeData marshals a type's data struct the canonical way: compact, no HTML escaping. nil gives {}.
func EncodeData(v any) (json.RawMessage, error) {
	if v == nil {
		return json.RawMessage("{}"), nil
	}
	b, err := encode(v)
	if err != nil {
		return nil, fmt.Errorf("ledger: encoding event data: %w", err)
	}
	return b, nil
}

func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Encode returns the canonical encoding of e: compact JSON with the envelope's fields in a fixed order
// (v, n, at, type, package, data), strings escaped as encoding/json does without HTML escaping, the
// data compacted, no trailing newline. These are the bytes the leaf hash covers. It is what
// encoding/json writes for an Event (a test keeps the two equal), built by hand because appends are on
// the acceptance path.
func Encode(e *Event) ([]byte, error) {
	b := make([]byte, 0, 96+len(e.Type)+len(e.Package)+len(e.Data))
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(e.V), 10)
	b = append(b, `,"n":`...)
	b = strconv.AppendUint(b, e.N, 10)
	b = append(b, `,"at":`...)
	b = appendString(b, e.At)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	if e.Package != "" {
		b = append(b, `,"package":`...)
		b = appendString(b, e.Package)
	}
	b = append(b, `,"data":`...)
	if len(e.Data) == 0 {
		b = append(b, "null"...)
	} else {
		var buf bytes.Buffer
		if err := json.Compact(&buf, e.Data); err != nil {
			return nil, fmt.Errorf("ledger: event data is not JSON: %w", err)
		}
		b = append(b, buf.Bytes()...)
	}
	return append(b, '}'), nil
}

// appendString appends s as a JSON string: plain ASCII directly, anything else through encoding/json
// (no HTML escaping) so both always agree.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := encode(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// ErrNotCanonical is returned by Decode for bytes that parse but are not the canonical encoding.
var ErrNotCanonical = errors.New("ledger: event is not in canonical form")

// Decode parses event bytes and checks that they are canonical (re-encoding gives the same bytes). On
// ErrNotCanonical the event is returned as well.
func Decode(b []byte) (*Event, error) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("ledger: event does not parse: %w", err)
	}
	again, err := Encode(&e)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, b) {
		return &e, ErrNotCanonical
	}
	return &e, nil
}

// claimPrefix starts every canonical version-1 event, followed by its number.
const claimPrefix = `{"v":1,"n":`

// claimedNumber reads the event number from the start of canonical bytes without parsing the rest,
// so the verifier can check positions at hashing speed.
func claimedNumber(b []byte) (uint64, bool) {
	if !bytes.HasPrefix(b, []byte(claimPrefix)) {
		return 0, false
	}
	rest := b[len(claimPrefix):]
	end := bytes.IndexByte(rest, ',')
	if end <= 0 || end > 20 || (end > 1 && rest[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	return n, err == nil
}

// KnownType reports whether typ is an event type of the schema.
func KnownType(typ string) bool {
	_, ok := typeDocs[typ]
	return ok
}

// Types returns every event type of the schema, sorted.
func Types() []string {
	out := make([]string, 0, len(typeDocs))
	for t := range typeDocs {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// TypeDoc returns the one-line description of an event type.
func TypeDoc(typ string) string { return typeDocs[typ] }
