package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	spec "cafgate/api"
)

// TestOpenAPIDocument: the document is valid OpenAPI 3.1 by libopenapi-validator's document check,
// is what /v1/openapi.json serves, and describes exactly the routes the handler has.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	doc, err := libopenapi.NewDocument(spec.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.GetVersion(), "3.1") {
		t.Fatalf("OpenAPI version %q, want 3.1", doc.GetVersion())
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("document: %v", e)
		}
	}
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(spec.OpenAPI(), &d); err != nil {
		t.Fatal(err)
	}
	h := &Handler{}
	var inCode, inDoc []string
	for _, rt := range h.routes() {
		inCode = append(inCode, rt.method+" "+rt.pattern)
	}
	for path, ops := range d.Paths {
		for m := range ops {
			if m != "parameters" {
				inDoc = append(inDoc, strings.ToUpper(m)+" "+path)
			}
		}
	}
	slices.Sort(inCode)
	slices.Sort(inDoc)
	if !slices.Equal(inCode, inDoc) {
		t.Errorf("routes and document differ:\ncode: %v\ndoc:  %v", inCode, inDoc)
	}
	// Every problem type the API can answer is named in the document.
	var problem struct {
		Description string `json:"description"`
	}
	var comp struct {
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(spec.OpenAPI(), &comp); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(comp.Components.Schemas["Problem"], &problem)
	for slug := range titles {
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(slug) + `\b`).MatchString(problem.Description) {
			t.Errorf("problem type %q is not listed in the document's Problem schema", slug)
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do(call{method: "GET", path: "/v1/openapi.json"})
	var served, file any
	json.Unmarshal(r.body, &served)
	json.Unmarshal(spec.OpenAPI(), &file)
	a, _ := json.Marshal(served)
	b, _ := json.Marshal(file)
	if r.status != 200 || !bytes.Equal(a, b) {
		t.Fatalf("served document differs: %d", r.status)
	}
}

// TestValidatorCatchesMistakes: the response validation the tests rely on does fail a wrong answer.
func TestValidatorCatchesMistakes(t *testing.T) {
	t.Parallel()
	v := loadValidator(t)
	req, _ := http.NewRequest("GET", "https://127.0.0.1/v1/packages/ABC", nil)
	check := func(status int, ctype, body string) bool {
		res := &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {ctype}}, Body: io.NopCloser(strings.NewReader(body)), Request: req}
		ok, _ := v.ValidateHttpResponse(req, res)
		return ok
	}
	good := `{"id":"A","sender":"a@b.test","agency":"x","via":"https","received_at":"2026-01-01T00:00:00Z","accepted_at":"2026-01-01T00:00:00Z","size":1,"digest":"` +
		strings.Repeat("ab", 32) + `","recipients":[]}`
	if !check(200, "application/json", good) {
		t.Fatal("a good answer was refused")
	}
	for name, bad := range map[string]string{
		"missing field": strings.Replace(good, `"via":"https",`, "", 1),
		"extra field":   strings.Replace(good, `"via":"https",`, `"via":"https","content":"x",`, 1),
		"bad digest":    strings.Replace(good, strings.Repeat("ab", 32), "xyz", 1),
		"bad time":      strings.Replace(good, "2026-01-01T00:00:00Z", "yesterday", 1),
	} {
		if check(200, "application/json", bad) {
			t.Errorf("%s: accepted", name)
		}
	}
	if check(418, "application/problem+json", `{}`) {
		t.Error("an undocumented status was accepted")
	}
	if check(404, "application/problem+json", `{"type":"x","title":"t","status":404,"detail":"d"}`) {
		t.Error("a problem without id was accepted")
	}
	post, _ := http.NewRequest("POST", "https://127.0.0.1/v1/packages", nil)
	limited := `{"type":"https://cafgate.invalid/problems/rate-limited","title":"t","status":429,"detail":"d","id":"0123456789ABCDEF"}`
	res := &http.Response{StatusCode: 429, Header: http.Header{"Content-Type": {"application/problem+json"}}, Body: io.NopCloser(strings.NewReader(limited)), Request: post}
	if ok, _ := v.ValidateHttpResponse(post, res); ok {
		t.Error("a 429 without Retry-After was accepted")
	}
}
