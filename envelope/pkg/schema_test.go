package pkg

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

const schemaPath = "../../docs/manifest.schema.json"

var (
	schemaOnce sync.Once
	schema     *jsonschema.Schema
	schemaErr  error
)

// compiledSchema compiles the published schema once, with format assertions on (date-time).
func compiledSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	schemaOnce.Do(func() {
		f, err := os.Open(schemaPath)
		if err != nil {
			schemaErr = err
			return
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			schemaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		if err := c.AddResource("manifest.schema.json", doc); err != nil {
			schemaErr = err
			return
		}
		schema, schemaErr = c.Compile("manifest.schema.json")
	})
	if schemaErr != nil {
		t.Fatal(schemaErr)
	}
	return schema
}

func schemaValidate(t testing.TB, data []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return compiledSchema(t).Validate(inst)
}

// schemaLocations lists the instance locations (as JSON pointers) of every error in the tree.
func schemaLocations(err error) []string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		p := ""
		for _, tok := range e.InstanceLocation {
			p += "/" + escapePointer(tok)
		}
		out = append(out, p)
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return out
}

// base is a valid manifest using every field; the corpus mutates copies of it.
const base = `{
  "version": 1,
  "episode": "CAF-2026-000123",
  "child": "NFS-2026-0042",
  "sender": "gwen.testcase@socialcare.cafgate.test",
  "override_reason": "Child protection: immediate risk of harm reported by the school.",
  "operations": [
    {"op": "handover", "lead": "a@x.test"},
    {"op": "add-members", "members": ["c@x.test"]},
    {"op": "remove-members", "members": ["b@y.test"]},
    {"op": "transition", "state": "action-plan-and-delivery"},
    {"op": "close"}
  ],
  "consent": {
    "given_by": "carer",
    "given_at": "2026-03-01T10:30:00.5+01:00",
    "grants": [{"team": true}, {"agency": "Riverside Community Health", "sections": ["consent"]},
               {"practitioner": "a@x.test"}],
    "refusals": [{"agency": "Eastshire Police"}, {"practitioner": "c@x.test", "sections": ["childs-details"]}],
    "withdrawn": false
  },
  "documents": [
    {"part": "caf-form.pdf", "sections": ["childs-details", "development-of-the-child"]},
    {"part": "Action plan (v2) — final.docx", "sections": ["conclusions-and-actions"]}
  ],
  "withheld": ["parents-and-carers"]
}`

// opening is a valid manifest that opens its episode: no reference, and the consent it opens with.
const opening = `{"version": 1, "child": "NFS-2026-0042", "sender": "gwen.testcase@socialcare.cafgate.test",
  "operations": [
    {"op": "open", "lead": "gwen.testcase@socialcare.cafgate.test", "members": ["a@x.test", "b@y.test"]},
    {"op": "transition", "state": "assessment"}
  ],
  "consent": {"given_by": "parent", "given_at": "2026-03-01T10:30:00Z", "grants": [{"team": true}]},
  "documents": [{"part": "caf-form.pdf", "sections": ["childs-details"]}]}`

const minimal = `{"version": 1, "episode": "CAF-2026-000123", "child": "x", "sender": "a@b",
  "documents": [{"part": "a", "sections": ["consent"]}]}`

// corpusCase is one manifest: from a JSON text (raw), or base with one change at a pointer.
type corpusCase struct {
	name   string
	raw    string // used when set
	at     string // pointer into base
	value  any    // new value; del removes the field
	del    bool
	field  string // the field Go must name; "" for a valid manifest
	goOnly bool   // a rule the schema cannot state: the schema accepts it, Go refuses
}

var del = struct{}{}

func corpus() []corpusCase {
	long := strings.Repeat("x", 256)
	return []corpusCase{
		{name: "base", raw: base},
		{name: "minimal", raw: minimal},
		{name: "version 1.0 is 1", at: "/version", value: json.Number("1.0")},
		{name: "empty withheld", at: "/withheld", value: []any{}},
		{name: "part of 255 characters", at: "/documents/0/part", value: long[:255]},
		{name: "child with punctuation", at: "/child", value: "UPN:A123/45.6_7-8"},
		{name: "given_at Z", at: "/consent/given_at", value: "2026-12-31T23:59:59Z"},
		{name: "no consent", at: "/consent", del: true},
		{name: "withdrawn only", at: "/consent", value: map[string]any{"given_by": "child", "given_at": "2026-03-01T10:30:00Z", "withdrawn": true}},

		{name: "version 2", at: "/version", value: 2, field: "/version"},
		{name: "version string", at: "/version", value: "1", field: "/version"},
		{name: "version missing", at: "/version", del: true, field: "/version"},
		{name: "version 1.5", at: "/version", value: 1.5, field: "/version"},
		{name: "unknown top field", at: "/attachments", value: []any{}, field: "/attachments"},
		{name: "episode missing", at: "/episode", del: true, field: "/episode"},
		{name: "episode short", at: "/episode", value: "CAF-2026-123", field: "/episode"},
		{name: "episode lower", at: "/episode", value: "caf-2026-000123", field: "/episode"},
		{name: "episode number", at: "/episode", value: 2026000123, field: "/episode"},
		{name: "child empty", at: "/child", value: "", field: "/child"},
		{name: "child leading dash", at: "/child", value: "-x", field: "/child"},
		{name: "child too long", at: "/child", value: long[:65], field: "/child"},
		{name: "child space", at: "/child", value: "a b", field: "/child"},
		{name: "sender no at", at: "/sender", value: "gwen", field: "/sender"},
		{name: "sender two ats", at: "/sender", value: "a@b@c", field: "/sender"},
		{name: "sender space", at: "/sender", value: "a b@c", field: "/sender"},
		{name: "sender angle", at: "/sender", value: "<a@b>", field: "/sender"},
		{name: "sender too long", at: "/sender", value: long[:250] + "@b.cd", field: "/sender"},
		{name: "override empty", at: "/override_reason", value: "", field: "/override_reason"},
		{name: "override blank", at: "/override_reason", value: "   ", field: "/override_reason"},
		{name: "override too long", at: "/override_reason", value: strings.Repeat("y", 1001), field: "/override_reason"},
		{name: "documents missing", at: "/documents", del: true, field: "/documents"},
		{name: "documents empty", at: "/documents", value: []any{}, field: "/documents"},
		{name: "documents object", at: "/documents", value: map[string]any{}, field: "/documents"},
		{name: "document unknown field", at: "/documents/1/title", value: "x", field: "/documents/1/title"},
		{name: "document part missing", at: "/documents/0/part", del: true, field: "/documents/0/part"},
		{name: "part with slash", at: "/documents/0/part", value: "../etc/passwd", field: "/documents/0/part"},
		{name: "part with backslash", at: "/documents/0/part", value: `a\b`, field: "/documents/0/part"},
		{name: "part dotdot", at: "/documents/0/part", value: "..", field: "/documents/0/part"},
		{name: "part newline", at: "/documents/0/part", value: "a\nb", field: "/documents/0/part"},
		{name: "part too long", at: "/documents/0/part", value: long, field: "/documents/0/part"},
		{name: "part empty", at: "/documents/0/part", value: "", field: "/documents/0/part"},
		{name: "unknown section", at: "/documents/1/sections/0", value: "health", field: "/documents/1/sections/0"},
		{name: "section case", at: "/documents/1/sections/0", value: "Consent", field: "/documents/1/sections/0"},
		{name: "section repeated", at: "/documents/0/sections/1", value: "childs-details", field: "/documents/0/sections/1"},
		{name: "sections empty", at: "/documents/0/sections", value: []any{}, field: "/documents/0/sections"},
		{name: "sections string", at: "/documents/0/sections", value: "consent", field: "/documents/0/sections"},
		{name: "withheld unknown", at: "/withheld/0", value: "health", field: "/withheld/0"},
		{name: "operations empty", at: "/operations", value: []any{}, field: "/operations"},
		{name: "op unknown", at: "/operations/4/op", value: "reopen", field: "/operations/4/op"},
		{name: "op missing", at: "/operations/4/op", del: true, field: "/operations/4/op"},
		{name: "opening", raw: opening},
		{name: "open without lead", raw: strings.Replace(opening, `"lead": "gwen.testcase@socialcare.cafgate.test", `, "", 1), field: "/operations/0/lead"},
		{name: "open with an episode", raw: strings.Replace(opening, `{"version": 1,`, `{"version": 1, "episode": "CAF-2026-000123",`, 1), field: "/episode"},
		{name: "open without consent", raw: strings.Replace(opening, `"consent": {"given_by": "parent", "given_at": "2026-03-01T10:30:00Z", "grants": [{"team": true}]},`, "", 1), field: "/consent"},
		{name: "open not first", at: "/operations/0", value: map[string]any{"op": "open", "lead": "a@x.test", "members": []any{"b@y.test"}}, field: "/episode"},
		{name: "open second", raw: strings.Replace(opening, `{"op": "transition", "state": "assessment"}`, `{"op": "open", "lead": "a@x.test", "members": ["b@y.test"]}`, 1), field: "/operations/1/op", goOnly: true},
		{name: "close with lead", at: "/operations/4/lead", value: "a@x.test", field: "/operations/4/lead"},
		{name: "handover with state", at: "/operations/0/state", value: "review", field: "/operations/0/state"},
		{name: "transition to closed", at: "/operations/3/state", value: "closed", field: "/operations/3/state"},
		{name: "members repeated", at: "/operations/1/members", value: []any{"c@x.test", "c@x.test"}, field: "/operations/1/members/1"},
		{name: "members empty", at: "/operations/1/members", value: []any{}, field: "/operations/1/members"},
		{name: "member not mail", at: "/operations/1/members/0", value: "c", field: "/operations/1/members/0"},
		{name: "consent given_by other", at: "/consent/given_by", value: "teacher", field: "/consent/given_by"},
		{name: "consent given_at missing", at: "/consent/given_at", del: true, field: "/consent/given_at"},
		{name: "consent given_at date only", at: "/consent/given_at", value: "2026-03-01", field: "/consent/given_at"},
		{name: "consent given_at month 13", at: "/consent/given_at", value: "2026-13-01T10:00:00Z", field: "/consent/given_at"},
		{name: "consent given_at no zone", at: "/consent/given_at", value: "2026-03-01T10:00:00", field: "/consent/given_at"},
		{name: "consent free text", at: "/consent/notes", value: "x", field: "/consent/notes"},
		{name: "withdrawn string", at: "/consent/withdrawn", value: "yes", field: "/consent/withdrawn"},
		{name: "grant empty", at: "/consent/grants/0", value: map[string]any{}, field: "/consent/grants/0"},
		{name: "grant two subjects", at: "/consent/grants/1/team", value: true, field: "/consent/grants/1/team"},
		{name: "grant team false", at: "/consent/grants/0/team", value: false, field: "/consent/grants/0/team"},
		{name: "refusal of team", at: "/consent/refusals/0", value: map[string]any{"team": true}, field: "/consent/refusals/0/team"},
		{name: "refusal sections empty", at: "/consent/refusals/1/sections", value: []any{}, field: "/consent/refusals/1/sections"},
		{name: "agency newline", at: "/consent/grants/1/agency", value: "a\nb", field: "/consent/grants/1/agency"},
		{name: "agency too long", at: "/consent/grants/1/agency", value: long[:129], field: "/consent/grants/1/agency"},
		{name: "not an object", raw: `[1]`, field: ""},
		{name: "duplicate part", at: "/documents/1/part", value: "caf-form.pdf", field: "/documents/1/part", goOnly: true},
		{name: "leap second", at: "/consent/given_at", value: "2016-12-31T23:59:60Z", field: "/consent/given_at", goOnly: true},
	}
}

// build makes the case's JSON text.
func (c corpusCase) build(t *testing.T) []byte {
	t.Helper()
	if c.raw != "" {
		return []byte(c.raw)
	}
	dec := json.NewDecoder(strings.NewReader(base))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	doc = setPointer(t, doc, strings.Split(c.at, "/")[1:], c.value, c.del)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func setPointer(t *testing.T, doc any, path []string, value any, remove bool) any {
	if len(path) == 0 {
		return value
	}
	switch d := doc.(type) {
	case map[string]any:
		if len(path) == 1 && remove {
			delete(d, path[0])
			return d
		}
		d[path[0]] = setPointer(t, d[path[0]], path[1:], value, remove)
		return d
	case []any:
		i, err := strconv.Atoi(path[0])
		if err != nil || i >= len(d) {
			t.Fatalf("bad pointer step %q", path[0])
		}
		if len(path) == 1 && remove {
			return slices.Delete(d, i, i+1)
		}
		d[i] = setPointer(t, d[i], path[1:], value, remove)
		return d
	}
	t.Fatalf("pointer step %q into %T", path[0], doc)
	return nil
}

// TestSchemaAndGoAgree runs the corpus through the published schema and through ParseManifest: both
// accept the valid manifests, both refuse the invalid ones (except the rules only Go can apply), and
// the field Go names is one the schema's errors point at, or the object holding it (JSON Schema reports
// a missing or extra property at its parent).
func TestSchemaAndGoAgree(t *testing.T) {
	for _, c := range corpus() {
		t.Run(c.name, func(t *testing.T) {
			data := c.build(t)
			_, goErr := ParseManifest(data)
			schemaErr := schemaValidate(t, data)
			wantValid := c.field == "" && c.raw != `[1]`
			if wantValid {
				if goErr != nil || schemaErr != nil {
					t.Fatalf("valid manifest refused: go %v; schema %v", goErr, schemaErr)
				}
				return
			}
			var e *Error
			if !errors.As(goErr, &e) {
				t.Fatalf("Go accepted it or gave %T: %v", goErr, goErr)
			}
			if e.Field != c.field {
				t.Errorf("Go names %q, want %q (%s)", e.Field, c.field, e.Reason)
			}
			if c.goOnly {
				if schemaErr != nil {
					t.Errorf("the schema now refuses a go-only case: %v", schemaErr)
				}
				return
			}
			if schemaErr == nil {
				t.Fatalf("the schema accepted what Go refused at %s", e.Field)
			}
			locs := schemaLocations(schemaErr)
			parent := e.Field[:strings.LastIndexByte(e.Field, '/')+1]
			parent = strings.TrimSuffix(parent, "/")
			if !slices.Contains(locs, e.Field) && !slices.Contains(locs, parent) {
				t.Errorf("Go names %s; the schema's errors are at %v", e.Field, locs)
			}
		})
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m, err := ParseManifest([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseManifest(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out2, _ := again.Marshal()
	if !bytes.Equal(out, out2) {
		t.Errorf("marshal is not stable:\n%s\n%s", out, out2)
	}
	if err := schemaValidate(t, out); err != nil {
		t.Errorf("marshalled manifest fails the schema: %v", err)
	}
	if len(m.Operations) != 5 || m.Consent == nil || len(m.Consent.Grants) != 3 || !m.Consent.Grants[0].Team ||
		m.Documents[1].Part != "Action plan (v2) — final.docx" || m.Withheld[0] != ParentsAndCarers {
		t.Errorf("decoded %+v", m)
	}
}

func TestManifestJSONRules(t *testing.T) {
	for _, tc := range []struct{ name, json, field string }{
		{"duplicate key", `{"version": 1, "version": 1}`, "/version"},
		{"nested duplicate", `{"version":1,"episode":"CAF-2026-000123","child":"x","sender":"a@b","documents":[{"part":"a","part":"b","sections":["consent"]}]}`, "/documents/0/part"},
		{"trailing data", minimal + ` {}`, ""},
		{"syntax", `{"version": 1,`, ""},
		{"not utf-8", "{\"version\": 1, \"child\": \"\xff\"}", ""},
		{"deep", strings.Repeat("[", 100) + strings.Repeat("]", 100), strings.Repeat("/0", maxJSONDepth+1)},
		{"escaped key", `{"version":1,"a/b~c":1}`, "/a~1b~0c"},
	} {
		_, err := ParseManifest([]byte(tc.json))
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: accepted or untyped: %v", tc.name, err)
			continue
		}
		if e.Field != tc.field {
			t.Errorf("%s: field %q, want %q (%s)", tc.name, e.Field, tc.field, e.Reason)
		}
		if strings.Contains(e.Error(), "\xff") {
			t.Errorf("%s: the error quotes the input", tc.name)
		}
	}
}
