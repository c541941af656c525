// Finding events for `cafgate ledger show`: by package, by practitioner, by time. The copied columns
// only narrow the search; every event is decoded from its hashed bytes and matched on those, and its
// leaf hash is checked, so what is shown is what the tree covers.

package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Filter selects events; set fields are combined with AND. At least one must be set.
type Filter struct {
	Package      string    // events about this package (message ID)
	Practitioner string    // events where this mail is sender, a recipient or the actor
	Since        time.Time // events at or after this time
	Type         string    // events of this type
	Limit        int       // most events returned; 0: 10,000
}

// Found is one event found, with whether its bytes still match its recorded leaf hash.
type Found struct {
	Event  *Event
	Data   []byte // the stored canonical bytes
	Intact bool   // the bytes hash to the recorded leaf and decode canonically
}

// Describe is a short text form of the filter, recorded in the access event.
func (f Filter) Describe() string {
	var parts []string
	if f.Package != "" {
		parts = append(parts, "package="+f.Package)
	}
	if f.Practitioner != "" {
		parts = append(parts, "practitioner="+f.Practitioner)
	}
	if !f.Since.IsZero() {
		parts = append(parts, "since="+FormatTime(f.Since))
	}
	if f.Type != "" {
		parts = append(parts, "type="+f.Type)
	}
	return strings.Join(parts, " ")
}

// Find returns the events matching f in ledger order.
func Find(ctx context.Context, q Querier, f Filter) ([]Found, error) {
	if f.Package == "" && f.Practitioner == "" && f.Since.IsZero() && f.Type == "" {
		return nil, errors.New("ledger: say which events to show (package, practitioner, since or type)")
	}
	if f.Limit <= 0 {
		f.Limit = 10000
	}
	f.Practitioner = strings.ToLower(strings.TrimSpace(f.Practitioner))
	query, args := f.sql()
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Found
	for rows.Next() && len(out) < f.Limit {
		var data, leaf []byte
		if err := rows.Scan(&data, &leaf); err != nil {
			return nil, err
		}
		e, err := Decode(data)
		if e == nil {
			out = append(out, Found{Event: &Event{Type: "(unreadable)"}, Data: data})
			continue
		}
		if f.matches(e) {
			h := LeafHash(data)
			out = append(out, Found{Event: e, Data: data, Intact: err == nil && string(h[:]) == string(leaf)})
		}
	}
	return out, rows.Err()
}

// sql narrows the search with the copied columns and a text search in the event bytes.
func (f Filter) sql() (string, []any) {
	var where []string
	var args []any
	if f.Package != "" {
		where, args = append(where, "message_id = ?"), append(args, f.Package)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, FormatTime(f.Since))
	}
	if f.Type != "" {
		where, args = append(where, "type = ?"), append(args, f.Type)
	}
	if f.Practitioner != "" {
		quoted, _ := json.Marshal(f.Practitioner)
		where, args = append(where, "instr(event, ?) > 0"), append(args, string(quoted))
	}
	return `SELECT event, leaf FROM ledger_events WHERE ` + strings.Join(where, " AND ") + ` ORDER BY seq`, args
}

// matches applies the filter to the decoded event.
func (f Filter) matches(e *Event) bool {
	if f.Package != "" && e.Package != f.Package {
		return false
	}
	if f.Type != "" && e.Type != f.Type {
		return false
	}
	if !f.Since.IsZero() {
		if t, err := e.Time(); err != nil || t.Before(f.Since) {
			return false
		}
	}
	if f.Practitioner != "" {
		var data any
		if err := json.Unmarshal(e.Data, &data); err != nil || !mentions(data, f.Practitioner) {
			return false
		}
	}
	return true
}

// mentions reports whether some string value in v equals mail, ignoring case.
func mentions(v any, mail string) bool {
	switch x := v.(type) {
	case string:
		return strings.EqualFold(x, mail)
	case []any:
		return slices.ContainsFunc(x, func(y any) bool { return mentions(y, mail) })
	case map[string]any:
		for _, y := range x {
			if mentions(y, mail) {
				return true
			}
		}
	}
	return false
}

// Text renders an event on one line for people: number, time, type, package, then its data fields in
// the order they are stored.
func Text(e *Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s %s", e.N, e.At, e.Type)
	if e.Package != "" {
		fmt.Fprintf(&b, " package=%s", e.Package)
	}
	dec := json.NewDecoder(bytes.NewReader(e.Data))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return b.String()
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			break
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		fmt.Fprintf(&b, " %s=%s", k, plain(v))
	}
	return b.String()
}

// plain shows a JSON value without quotes when it needs none.
func plain(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil && s != "" && !strings.ContainsAny(s, " \t\"=,[]{}") {
		return s
	}
	return string(v)
}
