package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"strings"
	"testing"
)

// Packages for the tests, in both forms.

// testDoc is one document of a test package.
type testDoc struct {
	name, ctype string
	data        []byte
	sections    []string
}

// threeDocs are the documents of docs/package-format.md's example: the form, the action plan, the
// consent form.
func threeDocs() []testDoc {
	return []testDoc{
		{"caf-form.pdf", "application/pdf", []byte("%PDF-1.7\n% CAF form (example)\n"),
			[]string{"childs-details", "development-of-the-child", "parents-and-carers", "family-and-environment"}},
		{"action-plan.pdf", "application/pdf", []byte("%PDF-1.7\n% Action plan (example)\n"), []string{"conclusions-and-actions"}},
		{"consent-form.pdf", "application/pdf", []byte("%PDF-1.7\n% Signed consent (example)\n"), []string{"consent"}},
	}
}

// manifestFor is the manifest of docs for episode ref sent by sender.
func manifestFor(ref, sender string, docs []testDoc) string {
	type entry struct {
		Part     string   `json:"part"`
		Sections []string `json:"sections"`
	}
	m := map[string]any{"version": 1, "episode": ref, "child": "NFS-2026-0042", "sender": sender}
	var list []entry
	for _, d := range docs {
		list = append(list, entry{d.name, d.sections})
	}
	m["documents"] = list
	b, _ := json.MarshalIndent(m, "", "  ")
	return string(b)
}

// rawPackage is the package as one MIME message with CRLF line ends.
func rawPackage(from string, to []string, manifest string, docs []testDoc) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\nTo: %s\nSubject: CAF review\nDate: Mon, 02 Mar 2026 10:30:00 +0000\nMIME-Version: 1.0\n", from, strings.Join(to, ", "))
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: application/vnd.cafgate.manifest+json\n\n")
	b.WriteString(manifest + "\n")
	for _, d := range docs {
		fmt.Fprintf(&b, "--b1\nContent-Type: %s\nContent-Disposition: attachment; filename=%s\n\n%s\n", d.ctype, d.name, d.data)
	}
	b.WriteString("--b1--\n")
	return []byte(strings.ReplaceAll(b.String(), "\n", "\r\n"))
}

// formBody is the package as a multipart form: the manifest, the documents, the recipients.
func formBody(t testing.TB, manifest string, docs []testDoc, rcpts []string) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if manifest != "" {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="manifest"; filename="manifest.json"`)
		h.Set("Content-Type", "application/json")
		p, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		p.Write([]byte(manifest))
	}
	for _, d := range docs {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="document"; filename=%q`, d.name))
		h.Set("Content-Type", d.ctype)
		p, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		p.Write(d.data)
	}
	for _, r := range rcpts {
		w.WriteField("recipient", r)
	}
	w.Close()
	return &buf, w.FormDataContentType()
}

// packageResult is the status answer, decoded.
type packageResult struct {
	ID             string `json:"id"`
	Sender         string `json:"sender"`
	Agency         string `json:"agency"`
	Via            string `json:"via"`
	Size           int    `json:"size"`
	Digest         string `json:"digest"`
	Episode        string `json:"episode"`
	ConsentVersion int    `json:"consent_version"`
	Recipients     []struct {
		Recipient string   `json:"recipient"`
		Decision  string   `json:"decision"`
		Reason    string   `json:"reason"`
		Detail    string   `json:"detail"`
		Field     string   `json:"field"`
		Allowed   []string `json:"allowed"`
		Withheld  []string `json:"withheld"`
		Override  bool     `json:"override"`
		Delivery  *struct {
			State string `json:"state"`
		} `json:"delivery"`
		Links []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"links"`
	} `json:"recipients"`
}

// decisions summarises a status as "rcpt=decision/reason[withheld]" lines, for comparisons.
func (p *packageResult) decisions() string {
	var lines []string
	for _, r := range p.Recipients {
		lines = append(lines, fmt.Sprintf("%s=%s/%s allowed=%s withheld=%s", r.Recipient, r.Decision, r.Reason,
			strings.Join(r.Allowed, ","), strings.Join(r.Withheld, ",")))
	}
	return strings.Join(lines, "\n")
}
