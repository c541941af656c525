package pkg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-message"
)

// msg joins header and body lines with CRLF.
func msg(lines ...string) []byte { return []byte(strings.Join(lines, "\r\n")) }

// manifestMsg is a manifest package with the given manifest JSON and document parts (file name, body).
func manifestMsg(manifest string, docs ...[2]string) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@b.test\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n")
	b.WriteString("--BB\r\nContent-Type: " + ManifestType + "\r\n\r\n" + manifest + "\r\n")
	for _, d := range docs {
		b.WriteString("--BB\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"" + d[0] + "\"\r\n\r\n" + d[1] + "\r\n")
	}
	b.WriteString("--BB--\r\n")
	return b.Bytes()
}

func oneDoc(part string, sections ...string) string {
	return fmt.Sprintf(`{"version":1,"episode":"CAF-2026-000123","child":"c1","sender":"a@b.test","documents":[{"part":%q,"sections":["%s"]}]}`,
		part, strings.Join(sections, `","`))
}

func refusal(t *testing.T, data []byte, lim Limits, field, limit string) *Error {
	t.Helper()
	p, err := ParseBytes(data, lim)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want a refusal at %s, got %v (package %v)", field, err, p)
	}
	if e.Field != field || e.Limit != limit {
		t.Fatalf("refused at %q limit %q (%s), want %q limit %q", e.Field, e.Limit, e.Reason, field, limit)
	}
	return e
}

func TestManifestPackage(t *testing.T) {
	data := manifestMsg(oneDoc("a.pdf", "consent", "childs-details"), [2]string{"a.pdf", "%PDF"})
	p, err := ParseBytes(data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Plain || p.Manifest.Child != "c1" || len(p.Documents) != 1 {
		t.Fatalf("package %+v", p)
	}
	d := p.Documents[0]
	if d.Part != "a.pdf" || d.MediaType != "application/octet-stream" || len(d.Sections) != 2 {
		t.Errorf("document %+v", d)
	}
	if c, _ := d.Content(); string(c) != "%PDF" {
		t.Errorf("content %q", c)
	}
}

func TestManifestPackageRefusals(t *testing.T) {
	two := `{"version":1,"episode":"CAF-2026-000123","child":"c1","sender":"a@b.test","documents":[{"part":"a","sections":["consent"]},{"part":"b","sections":["consent"]}]}`
	cases := []struct {
		name  string
		data  []byte
		field string
	}{
		{"manifest names a missing part", manifestMsg(two, [2]string{"a", "x"}), "/documents/1/part"},
		{"part not in the manifest", manifestMsg(oneDoc("a", "consent"), [2]string{"a", "x"}, [2]string{"c", "y"}), "part 3"},
		{"two parts one name", manifestMsg(oneDoc("a", "consent"), [2]string{"a", "x"}, [2]string{"a", "y"}), "part 3"},
		{"unknown section", manifestMsg(oneDoc("a", "health"), [2]string{"a", "x"}), "/documents/0/sections/0"},
		{"subject names another episode", bytes.Replace(manifestMsg(oneDoc("a", "consent"), [2]string{"a", "x"}),
			[]byte("Subject: x"), []byte("Subject: [CAF-2026-000999] x"), 1), "header Subject"},
		{"part without a file name", bytes.Replace(manifestMsg(oneDoc("a", "consent"), [2]string{"a", "x"}),
			[]byte("Content-Disposition: attachment; filename=\"a\"\r\n"), nil, 1), "part 2"},
		{"two manifests", msg("Content-Type: multipart/mixed; boundary=B", "", "--B", "Content-Type: "+ManifestType, "", "{}",
			"--B", "Content-Type: "+ManifestType, "", "{}", "--B--", ""), "part 2"},
		{"nested manifest", msg("Content-Type: multipart/mixed; boundary=B", "", "--B", "Content-Type: multipart/mixed; boundary=C", "",
			"--C", "Content-Type: "+ManifestType, "", "{}", "--C--", "--B--", ""), "part 1.1"},
		{"manifest in a multipart/alternative", msg("Content-Type: multipart/alternative; boundary=B", "", "--B",
			"Content-Type: "+ManifestType, "", "{}", "--B--", ""), "part 1"},
		{"manifest charset", bytes.Replace(manifestMsg(oneDoc("a", "consent"), [2]string{"a", "x"}),
			[]byte(ManifestType), []byte(ManifestType+"; charset=iso-8859-1"), 1), "part 1"},
		{"bad base64 document", bytes.Replace(manifestMsg(oneDoc("a", "consent"), [2]string{"a", "!!!!"}),
			[]byte("filename=\"a\"\r\n"), []byte("filename=\"a\"\r\nContent-Transfer-Encoding: base64\r\n"), 1), "part 2"},
		{"unknown transfer encoding", bytes.Replace(manifestMsg(oneDoc("a", "consent"), [2]string{"a", "x"}),
			[]byte("filename=\"a\"\r\n"), []byte("filename=\"a\"\r\nContent-Transfer-Encoding: x-uuencode\r\n"), 1), "part 2"},
		{"base64 multipart", msg("Content-Type: multipart/mixed; boundary=B", "Content-Transfer-Encoding: base64", "", "--B", "", "x", "--B--"), "message"},
		{"truncated", manifestMsg(oneDoc("a", "consent"), [2]string{"a", "x"})[:200], "message"},
		{"no boundary", msg("Content-Type: multipart/mixed", "", "x"), "message"},
		{"bad boundary", msg("Content-Type: multipart/mixed; boundary=\"a\x01\"", "", "x"), "message"},
		{"empty multipart", msg("Content-Type: multipart/mixed; boundary=B", "", "--B--", ""), "message"},
		{"malformed content type", msg("Content-Type: text/plain; ;;=", "Subject: [CAF-2026-000123]", "", "x"), "message"},
		{"malformed header", msg("From a@b", "", "x"), "message"},
		{"signed", msg("Content-Type: multipart/signed; boundary=B; protocol=\"application/pkcs7-signature\"", "", "--B", "", "x", "--B--", ""), "message"},
		{"encrypted", msg("Content-Type: application/pkcs7-mime; smime-type=enveloped-data", "", "MIAG"), "message"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { refusal(t, c.data, Limits{}, c.field, "") })
	}
}

func TestLimits(t *testing.T) {
	doc := manifestMsg(oneDoc("a", "consent"), [2]string{"a", "x"})
	refusal(t, doc, Limits{MaxBytes: 100}, "message", "max_bytes")
	e := refusal(t, doc, Limits{MaxHeaderBytes: 40}, "message", "max_header_bytes")
	if !strings.Contains(e.Reason, "40 bytes") {
		t.Errorf("reason %q does not give the limit", e.Reason)
	}
	longPart := bytes.Replace(doc, []byte("filename=\"a\"\r\n"), []byte("filename=\"a\"\r\nX-Pad: "+strings.Repeat("p", 300)+"\r\n"), 1)
	refusal(t, longPart, Limits{MaxHeaderBytes: 200}, "part 2", "max_header_bytes")
	refusal(t, doc, Limits{MaxParts: 2}, "message", "max_parts")
	refusal(t, doc, Limits{MaxManifestBytes: 20}, "part 1", "max_manifest_bytes")

	// Nesting: multipart inside multipart, depth levels deep.
	nested := func(depth int) []byte {
		body := "Content-Type: text/plain\r\n\r\nx"
		for i := depth; i > 0; i-- {
			b := fmt.Sprintf("b%d", i)
			body = "Content-Type: multipart/mixed; boundary=" + b + "\r\n\r\n--" + b + "\r\n" + body + "\r\n--" + b + "--"
		}
		return []byte("Subject: [CAF-2026-000123]\r\nFrom: a@b.test\r\n" + body + "\r\n")
	}
	if _, err := ParseBytes(nested(3), Limits{MaxDepth: 3}); err != nil {
		t.Errorf("depth 3 within a limit of 3: %v", err)
	}
	refusal(t, nested(4), Limits{MaxDepth: 3}, "part 1.1.1", "max_depth")
	refusal(t, nested(200), Limits{}, "part 1.1.1.1.1.1.1.1", "max_depth")

	// Many parts: the walker stops at the limit without reading on.
	var many strings.Builder
	many.WriteString("Subject: [CAF-2026-000123]\r\nFrom: a@b.test\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n")
	for i := 0; i < 100000; i++ {
		many.WriteString("--B\r\n\r\nx\r\n")
	}
	many.WriteString("--B--\r\n")
	refusal(t, []byte(many.String()), Limits{}, "message", "max_parts")

	// A header with no end, longer than the limit.
	refusal(t, []byte("Subject: "+strings.Repeat("x", 70<<10)), Limits{}, "message", "max_header_bytes")
}

func TestPlainMail(t *testing.T) {
	data := msg("From: \"Ada Example\" <Ada@Health.test>", "Subject: Re: [CAF-2026-000123] notes",
		"MIME-Version: 1.0", "Content-Type: multipart/mixed; boundary=B", "", "--B",
		"Content-Type: multipart/alternative; boundary=C", "", "--C", "Content-Type: text/plain", "", "Hello", "--C",
		"Content-Type: text/html", "", "<p>Hello</p>", "--C--", "",
		"--B", "Content-Type: application/pdf", "Content-Disposition: attachment; filename=\"[caf: Consent , parents-and-carers] form.pdf\"", "", "%PDF",
		"--B", "Content-Type: application/pdf", "Content-Disposition: attachment; filename=\"notes.pdf\"", "", "%PDF",
		"--B", "Content-Type: application/pdf", "Content-Disposition: attachment; filename=\"notes.pdf\"", "", "%PDF",
		"--B", "Content-Type: application/pdf", "Content-Disposition: attachment; filename*=UTF-8''a%2Fb.pdf", "", "%PDF",
		"--B--", "")
	p, err := ParseBytes(data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := "plain e-mail: episode CAF-2026-000123, child from the episode, sender ada@health.test\n" +
		"message: childs-details, development-of-the-child, parents-and-carers, family-and-environment, conclusions-and-actions, consent\n" +
		"[caf: Consent , parents-and-carers] form.pdf: parents-and-carers, consent\n" +
		"notes.pdf: childs-details, development-of-the-child, parents-and-carers, family-and-environment, conclusions-and-actions, consent\n" +
		"notes (2).pdf: childs-details, development-of-the-child, parents-and-carers, family-and-environment, conclusions-and-actions, consent\n" +
		"a_b.pdf: childs-details, development-of-the-child, parents-and-carers, family-and-environment, conclusions-and-actions, consent\n"
	if got := summarize(p, nil); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// The renamed parts keep their names through a per-recipient package.
	p.Manifest.Child = "c1"
	out, err := p.ForRecipient(AllSections())
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseBytes(out, Limits{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := summarize(q, nil); !strings.HasSuffix(got, want[strings.IndexByte(want, '\n')+1:]) {
		t.Errorf("round trip:\n%s", got)
	}
}

func TestPlainMailVariants(t *testing.T) {
	hdr := func(extra ...string) []string {
		return append([]string{"From: a@b.test", "Subject: [CAF-2026-000123]"}, extra...)
	}
	t.Run("single part text", func(t *testing.T) {
		p, err := ParseBytes(msg(append(hdr("Content-Type: text/plain; charset=utf-8", ""), "Note")...), Limits{})
		if err != nil || len(p.Documents) != 1 || p.Documents[0].Part != "message.txt" {
			t.Fatalf("%v %+v", err, p)
		}
	})
	t.Run("LF line ends", func(t *testing.T) {
		data := bytes.ReplaceAll(manifestMsg(oneDoc("a", "consent"), [2]string{"a", "x"}), []byte("\r\n"), []byte("\n"))
		if _, err := ParseBytes(data, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("CAF-Sections and CAF-Episode headers", func(t *testing.T) {
		data := msg("From: a@b.test", "Subject: notes", "CAF-Episode: CAF-2026-000777", "CAF-Sections: consent childs-details",
			"CAF-Child: c9", "CAF-Override-Reason: =?utf-8?q?risk_of_harm?=", "", "text")
		p, err := ParseBytes(data, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		m := p.Manifest
		if m.Episode != "CAF-2026-000777" || m.Child != "c9" || m.OverrideReason != "risk of harm" ||
			len(p.Documents[0].Sections) != 2 || p.Documents[0].Sections[0] != ChildsDetails {
			t.Errorf("%+v", m)
		}
	})
	t.Run("blank text left out", func(t *testing.T) {
		data := msg(append(hdr("Content-Type: multipart/mixed; boundary=B", ""), "--B", "", " \r\n", "--B",
			"Content-Disposition: attachment; filename=a.pdf", "", "x", "--B--", "")...)
		p, err := ParseBytes(data, Limits{})
		if err != nil || len(p.Documents) != 1 || p.Documents[0].Part != "a.pdf" {
			t.Fatalf("%v %+v", err, p)
		}
	})
	for _, c := range []struct {
		name  string
		data  []byte
		field string
	}{
		{"no reference", msg("From: a@b.test", "Subject: notes", "", "x"), "header Subject"},
		{"reference not bracketed", msg("From: a@b.test", "Subject: CAF-2026-000123", "", "x"), "header Subject"},
		{"two references", msg("From: a@b.test", "Subject: [CAF-2026-000123] [CAF-2026-000124]", "", "x"), "header Subject"},
		{"header and subject differ", msg(append(hdr("CAF-Episode: CAF-2026-000124", ""), "x")...), "header Subject"},
		{"bad CAF-Episode", msg("From: a@b.test", "CAF-Episode: 123", "", "x"), "header CAF-Episode"},
		{"bad CAF-Sections", msg(append(hdr("CAF-Sections: consent, health", ""), "x")...), "header CAF-Sections"},
		{"empty CAF-Sections", msg(append(hdr("CAF-Sections: ,", ""), "x")...), "header CAF-Sections"},
		{"bad CAF-Child", msg(append(hdr("CAF-Child: a b", ""), "x")...), "header CAF-Child"},
		{"blank override", msg(append(hdr("CAF-Override-Reason: =?utf-8?q?_?=", ""), "x")...), "header CAF-Override-Reason"},
		{"two senders", msg("From: a@b.test, c@d.test", "Subject: [CAF-2026-000123]", "", "x"), "header From"},
		{"no sender", msg("Subject: [CAF-2026-000123]", "", "x"), "header From"},
		{"bad file label", msg(append(hdr("Content-Type: multipart/mixed; boundary=B", ""), "--B",
			"Content-Disposition: attachment; filename=\"[CAF: health] a.pdf\"", "", "x", "--B--", "")...), "part 1"},
		{"nothing in it", msg(append(hdr("Content-Type: multipart/mixed; boundary=B", ""), "--B", "", "", "--B--", "")...), "message"},
	} {
		t.Run(c.name, func(t *testing.T) { refusal(t, c.data, Limits{}, c.field, "") })
	}
}

func TestErrorsDoNotQuoteContent(t *testing.T) {
	secret := "Jamie-Secret-Child"
	for _, data := range [][]byte{
		msg("From "+secret, "", "x"),
		msg("Content-Type: "+secret+"/;;", "", "x"),
		manifestMsg(`{"version":1,"episode":"` + secret + `"}`),
		manifestMsg(`{"version":1,"` + secret + `":1`),
		msg("From: a@b.test", "Subject: [CAF-2026-000123]", "CAF-Sections: "+secret, "", "x"),
	} {
		_, err := ParseBytes(data, Limits{})
		if err == nil {
			t.Fatal("accepted")
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error quotes the message: %v", err)
		}
	}
}

func TestForRecipient(t *testing.T) {
	src := manifestMsg(`{"version":1,"episode":"CAF-2026-000123","child":"c1","sender":"a@b.test","override_reason":"risk",
		"consent":{"given_by":"child","given_at":"2026-03-01T10:00:00Z","refusals":[{"agency":"Police"}]},
		"documents":[{"part":"form.pdf","sections":["childs-details","family-and-environment"]},
		{"part":"plan.pdf","sections":["conclusions-and-actions"]},{"part":"details.pdf","sections":["childs-details"]}]}`,
		[2]string{"form.pdf", "FORM"}, [2]string{"plan.pdf", "PLAN"}, [2]string{"details.pdf", "DETAILS\nbare LF"})
	p, err := ParseBytes(src, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.ForRecipient([]Section{ChildsDetails, ConclusionsAndActions})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("FORM")) || bytes.Contains(out, []byte("form.pdf")) ||
		bytes.Contains(out, []byte("Police")) || bytes.Contains(out, []byte("risk")) {
		t.Errorf("the recipient's package holds what it must not:\n%s", out)
	}
	if i := bytes.IndexByte(bytes.ReplaceAll(out, []byte("\r\n"), nil), '\n'); i >= 0 {
		t.Errorf("bare LF in the output at %d", i)
	}
	again, _ := p.ForRecipient([]Section{ConclusionsAndActions, ChildsDetails})
	if !bytes.Equal(out, again) {
		t.Error("the same package and sections gave different bytes")
	}
	q, err := ParseBytes(out, Limits{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	w := q.Manifest.Withheld
	if len(w) != 2 || w[0] != ChildsDetails || w[1] != FamilyAndEnvironment || len(q.Documents) != 2 ||
		q.Manifest.OverrideReason != "" || q.Manifest.Consent != nil {
		t.Errorf("recipient manifest %+v", q.Manifest)
	}
	// Read it back with go-message's own reader too: the documents are intact.
	e, err := message.Read(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	mr := e.MultipartReader()
	var names []string
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		_, params, _ := part.Header.ContentDisposition()
		body, _ := io.ReadAll(part.Body)
		names = append(names, params["filename"]+"="+strings.SplitN(string(body), "\n", 2)[0])
	}
	if strings.Join(names, " ") != "manifest.json={\r plan.pdf=PLAN details.pdf=DETAILS\r" {
		t.Errorf("go-message reads %q", names)
	}

	if _, err := p.CopySize([]Section{Consent}); !errors.Is(err, ErrNothingAllowed) {
		t.Fatalf("CopySize with nothing allowed: %v", err)
	}
	if _, err := p.ForRecipient([]Section{Consent}); !errors.Is(err, ErrNothingAllowed) {
		t.Errorf("nothing allowed: %v", err)
	}
	if _, err := p.ForRecipient([]Section{"health"}); err == nil {
		t.Error("unknown section accepted")
	}
	p.Manifest.Child = ""
	if _, err := p.ForRecipient(AllSections()); err == nil {
		t.Error("no child identifier accepted")
	}
}

func TestSplitMultipartEdges(t *testing.T) {
	body := []byte("preamble\r\n--B \t\r\nA\r\n--Bx\r\n--B\r\n\r\n--B--  \r\nepilogue")
	parts, res := splitMultipart(body, "B", 10)
	if res != splitOK || len(parts) != 2 || string(parts[0]) != "A\r\n--Bx" || string(parts[1]) != "" {
		t.Errorf("%v %q", res, parts)
	}
	if _, res := splitMultipart([]byte("--B\r\nx"), "B", 10); res != splitNoEnd {
		t.Errorf("no end: %v", res)
	}
	if _, res := splitMultipart([]byte("--B\r\nx\r\n--B\r\ny\r\n--B--"), "B", 1); res != splitTooMany {
		t.Errorf("too many: %v", res)
	}
}

func TestErrorSentence(t *testing.T) {
	e := &Error{Field: "part 2", Limit: "max_parts", Reason: "the message has more than 100 MIME parts"}
	if got := e.Sentence(); got != "The package was refused at part 2: the message has more than 100 MIME parts (limit max_parts)." {
		t.Errorf("sentence %q", got)
	}
	if got := (&Error{Reason: "x"}).Sentence(); got != "The package was refused: x." {
		t.Errorf("sentence %q", got)
	}
}

// TestOpeningPackage: a package that opens its episode names none; once the gateway has put the new
// reference in a CAF-Episode header before it, reading it again gives that reference.
func TestOpeningPackage(t *testing.T) {
	manifest := `{"version": 1, "child": "NFS-1", "sender": "a@b.test",
 "operations": [{"op": "open", "lead": "a@b.test", "members": ["c@d.test"]}],
 "consent": {"given_by": "parent", "given_at": "2026-03-01T10:30:00Z", "grants": [{"team": true}]},
 "documents": [{"part": "a.pdf", "sections": ["consent"]}]}`
	msg := "From: a@b.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=P\r\n\r\n" +
		"--P\r\nContent-Type: application/vnd.cafgate.manifest+json\r\n\r\n" + strings.ReplaceAll(manifest, "\n", "\r\n") + "\r\n" +
		"--P\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n\r\n%PDF\r\n--P--\r\n"
	p, err := ParseBytes([]byte(msg), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Manifest.Opens() || p.Manifest.Episode != "" || p.EpisodeField != "" {
		t.Fatalf("submitted: opens %v, episode %q from %q", p.Manifest.Opens(), p.Manifest.Episode, p.EpisodeField)
	}
	p, err = ParseBytes([]byte("CAF-Episode: CAF-2026-000042\r\n"+msg), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Manifest.Episode != "CAF-2026-000042" || p.EpisodeField != "header CAF-Episode" {
		t.Fatalf("stored: episode %q from %q", p.Manifest.Episode, p.EpisodeField)
	}
	// A package that names its episode in the manifest gets "/episode".
	named := strings.Replace(strings.Replace(msg, `"child"`, `"episode": "CAF-2026-000001", "child"`, 1),
		`"operations": [{"op": "open", "lead": "a@b.test", "members": ["c@d.test"]}],`, "", 1)
	if p, err = ParseBytes([]byte(named), Limits{}); err != nil || p.EpisodeField != "/episode" {
		t.Fatalf("named: %v %+v", err, p)
	}
}
