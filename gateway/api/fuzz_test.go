package api

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"strings"
	"testing"
	"time"

	"cafgate/envelope/pkg"
	"cafgate/gateway/intake"
)

// FuzzDecodeObject: the strict JSON reader never panics, takes only valid JSON, and agrees with
// encoding/json about every object it takes.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"child":"x","team":["a","b"]}`, `{"a":{"b":[{"c":null}]}}`, `{"a":1,"a":2}`,
		`[`, `{"a":"\ud800"}`, `{"given_by":"parent","grants":[{"team":true,"sections":["consent"]}]}`, strings.Repeat("[", 40)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, p := decodeObject(data)
		if p != nil {
			if p.Status != 400 {
				t.Fatalf("status %d for a body refusal", p.Status)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("took invalid JSON %q", data)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("took %q, which encoding/json refuses as an object: %v", data, err)
		}
		if len(m) != len(obj.vals) {
			t.Fatalf("%q: %d members, encoding/json sees %d", data, len(obj.vals), len(m))
		}
	})
}

// FuzzForm: reading any multipart body never panics, and a form that is read builds a package that
// is clean mail text (CRLF only, no NUL) whose documents, when the package reader takes it, are the
// form's documents byte for byte.
func FuzzForm(f *testing.F) {
	docs := threeDocs()
	body, ct := formBody(f, manifestFor("CAF-2026-000001", harriet, docs), docs, []string{gwen, rita})
	boundary := strings.TrimPrefix(ct, "multipart/form-data; boundary=")
	f.Add(body.Bytes())
	f.Add([]byte("--" + boundary + "\r\nContent-Disposition: form-data; name=\"manifest\"\r\n\r\n{}\r\n--" + boundary + "--\r\n"))
	f.Add([]byte("--" + boundary + "\r\nContent-Disposition: form-data; name=\"document\"; filename=\"a\\r\\nb\"\r\nContent-Type: text/plain; charset=\"x\r\n\r\nhi\r\n--" + boundary + "--\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sp, err := newSpool(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		fp, p := readFormParts(multipart.NewReader(bytes.NewReader(data), boundary), 1<<20, sp)
		if p != nil {
			return
		}
		r, err := spoolFinished(sp)
		if err != nil {
			t.Fatal(err)
		}
		if fp.docs, err = loadDocs(r, fp.docs); err != nil {
			t.Fatal(err)
		}
		content := buildPackage(harriet, []string{gwen}, fp.manifest, fp.docs, time.Unix(0, 0), "id@test", "cafgate-0123456789abcdef")
		if err := intake.CheckContent(content); err != nil {
			t.Fatalf("built package is not clean mail text: %v\n%q", err, content)
		}
		pk, err := pkg.ParseBytes(content, pkg.Limits{})
		if err != nil {
			return // the manifest's or the documents' own faults
		}
		byName := map[string][]byte{}
		for _, d := range fp.docs {
			byName[d.name] = d.data
		}
		for _, d := range pk.Documents {
			got, err := d.Content()
			if err != nil {
				t.Fatalf("document %q: %v", d.Part, err)
			}
			if want, ok := byName[d.Part]; !ok || !bytes.Equal(got, want) {
				t.Fatalf("document %q changed on the way through", d.Part)
			}
		}
	})
}

// spoolFinished finishes sp and returns a reader from its start.
func spoolFinished(sp *spool) (io.Reader, error) {
	if err := sp.finish(); err != nil {
		return nil, err
	}
	return sp.reader()
}
