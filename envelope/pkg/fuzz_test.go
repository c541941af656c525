package pkg

import (
	"bytes"
	"testing"
)

// FuzzParseManifest: no input panics; what Go accepts the published schema accepts too, and it survives
// Marshal and a second parse unchanged.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(minimal))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"version":1}`))
	f.Add([]byte(`{"version":1.0,"episode":"CAF-2026-000123","child":"x","sender":"a@b","documents":[{"part":"a","sections":["consent","consent"]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		if err := schemaValidate(t, data); err != nil {
			t.Fatalf("Go accepted what the schema refuses: %v\n%s", err, data)
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseManifest(out)
		if err != nil {
			t.Fatalf("marshalled manifest refused: %v\n%s", err, out)
		}
		if out2, _ := m2.Marshal(); !bytes.Equal(out, out2) {
			t.Fatalf("unstable:\n%s\n%s", out, out2)
		}
	})
}

// FuzzParse: no message panics the MIME walker or the package reader; an accepted package gives a
// per-recipient package that is accepted again with the same documents and contents.
func FuzzParse(f *testing.F) {
	f.Add(manifestMsg(oneDoc("a.pdf", "consent"), [2]string{"a.pdf", "x"}))
	f.Add(msg("From: a@b.test", "Subject: [CAF-2026-000123]", "Content-Type: multipart/mixed; boundary=B", "", "--B",
		"Content-Type: multipart/alternative; boundary=C", "", "--C", "", "hi", "--C--", "--B",
		"Content-Disposition: attachment; filename=\"[CAF: consent] a\"", "Content-Transfer-Encoding: base64", "", "eHl6", "--B--", ""))
	f.Add(msg("From: a@b.test", "CAF-Episode: CAF-2026-000123", "CAF-Sections: consent", "", "text"))
	_, blocks := readDocBlocks(f)
	for _, b := range blocks {
		if b.kind == "package" {
			f.Add(crlf(b.body))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxBytes: 1 << 20, MaxParts: 20, MaxDepth: 4, MaxHeaderBytes: 4096, MaxManifestBytes: 8192}
		p, err := ParseBytes(data, lim)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		if p.Manifest.Child == "" {
			p.Manifest.Child = "c1"
		}
		out, err := p.ForRecipient(AllSections())
		if err != nil {
			t.Fatalf("ForRecipient: %v", err)
		}
		// CopySize is about its size: at most 1 KiB over, at most half under (bare LF made CRLF).
		if size, err := p.CopySize(AllSections()); err != nil || size > len(out)+1024 || 2*size < len(out) {
			t.Fatalf("CopySize = %d, %v; ForRecipient wrote %d bytes", size, err, len(out))
		}
		q, err := ParseBytes(out, Limits{})
		if err != nil {
			t.Fatalf("per-recipient package refused: %v\n%q", err, out)
		}
		if len(q.Documents) != len(p.Documents) {
			t.Fatalf("%d documents became %d", len(p.Documents), len(q.Documents))
		}
		for i, d := range p.Documents {
			a, errA := d.Content()
			b, errB := q.Documents[i].Content()
			if errA != nil || errB != nil || q.Documents[i].Part != d.Part || !sameText(a, b) {
				t.Fatalf("document %d changed: %q %q (%v %v)", i, a, b, errA, errB)
			}
		}
	})
}

// sameText compares contents allowing bare LFs to have become CRLF (the writer makes line ends CRLF).
func sameText(a, b []byte) bool {
	norm := func(x []byte) []byte {
		return bytes.ReplaceAll(bytes.ReplaceAll(x, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))
	}
	return bytes.Equal(norm(a), norm(b))
}
