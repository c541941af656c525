package api

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"cafgate/gateway/smtpd"
)

// Real clients against the in-process server: curl for the API, Python's smtplib for SMTP
// submission through the real SMTP front door over the same intake and store.

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed (apt-get install %s)", name, name)
	}
}

// curl runs curl against the server and returns the answer, checked like do's.
func (e *env) curl(method, path string, args ...string) *resp {
	e.t.Helper()
	all := append([]string{"-sS", "-i", "--http1.1", "--cacert", e.caFile, "-X", method}, args...)
	all = append(all, e.srv.URL+path)
	out, err := exec.Command("curl", all...).Output()
	if err != nil {
		e.t.Fatalf("curl %s: %v", strings.Join(all, " "), err)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, nil)
	res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), req)
	if err != nil {
		e.t.Fatalf("curl answer: %v\n%s", err, out)
	}
	body, _ := io.ReadAll(res.Body)
	r := &resp{status: res.StatusCode, header: res.Header, body: body}
	e.validate(req, res, body)
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
		r.problem = e.checkProblem(res, body)
	}
	return r
}

// files writes the package's files for curl and smtplib: the manifest, the documents, the whole
// package.
func (e *env) files(t *testing.T, from string, to []string, ref string) (dir string, docs []testDoc) {
	dir = t.TempDir()
	docs = threeDocs()
	mf := manifestFor(ref, from, docs)
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("manifest.json", []byte(mf))
	for _, d := range docs {
		write(d.name, d.data)
	}
	write("package.eml", rawPackage(from, to, mf, docs))
	return dir, docs
}

// TestCurlAndSMTPSameDecisions: one package, uploaded by curl as a form and as a message, and
// submitted by smtplib, gets the same decision for every recipient.
func TestCurlAndSMTPSameDecisions(t *testing.T) {
	t.Parallel()
	requireTool(t, "curl")
	requireTool(t, "python3")
	e := newEnv(t)
	// nobody is refused by the directory check: at RCPT by SMTP, in the answer by the API.
	const nobody = "nobody@police.cafgate.test"
	to := []string{gwen, rita, nobody, sam}
	dir, docs := e.files(t, harriet, to, e.episode(1))
	auth := []string{"-H", "Authorization: Bearer " + e.keys[school], "-H", OnBehalfOfHeader + ": " + harriet}
	form := append([]string{}, auth...)
	form = append(form, "-F", "manifest=@"+filepath.Join(dir, "manifest.json")+";type=application/json")
	for _, d := range docs {
		form = append(form, "-F", "document=@"+filepath.Join(dir, d.name)+";type="+d.ctype)
	}
	for _, r := range to {
		form = append(form, "-F", "recipient="+r)
	}
	byForm := e.curl("POST", "/v1/packages", form...)
	raw := append(append([]string{}, auth...), "-H", "Content-Type: message/rfc822", "-H", "Idempotency-Key: raw-1",
		"--data-binary", "@"+filepath.Join(dir, "package.eml"))
	byRaw := e.curl("POST", "/v1/packages", raw...)
	again := e.curl("POST", "/v1/packages", raw...)
	var f, r, a packageResult
	byForm.json(t, &f)
	byRaw.json(t, &r)
	again.json(t, &a)
	if byForm.status != 201 || byRaw.status != 201 || again.header.Get("Idempotent-Replayed") != "true" || a.ID != r.ID {
		t.Fatalf("curl uploads: %s / %s / %s", byForm, byRaw, again)
	}
	id, refused := e.submitSMTP(t, harriet, to, filepath.Join(dir, "package.eml"))
	if refused != nobody+" 550" {
		t.Errorf("smtplib RCPT refusals: %q", refused)
	}
	for _, p := range []packageResult{f, r, a} {
		if len(p.Recipients) != 4 || p.Recipients[2].Recipient != nobody || p.Recipients[2].Decision != "refuse" {
			t.Fatalf("API answer does not refuse %s: %+v", nobody, p.Recipients)
		}
	}
	// Past the refusal at RCPT, the same decisions.
	f.Recipients = slices.Delete(f.Recipients, 2, 3)
	r.Recipients = slices.Delete(r.Recipients, 2, 3)
	bySMTP := e.curl("GET", "/v1/packages/"+id, auth...)
	var s packageResult
	bySMTP.json(t, &s)
	if bySMTP.status != 200 || s.Via != "submissions" {
		t.Fatalf("status of the SMTP submission: %s", bySMTP)
	}
	if f.decisions() != r.decisions() || r.decisions() != s.decisions() {
		t.Errorf("decisions differ:\nform:\n%s\nraw:\n%s\nsmtp:\n%s", f.decisions(), r.decisions(), s.decisions())
	}
	if !strings.Contains(s.decisions(), "refused-agency") || !strings.Contains(s.decisions(), "sections-withheld") {
		t.Errorf("unexpected decisions:\n%s", s.decisions())
	}
	// The same stored bytes: the raw upload is the SMTP submission, byte for byte.
	if r.Digest != s.Digest || r.Size != s.Size {
		t.Errorf("raw upload and SMTP submission stored differently: %s/%d vs %s/%d", r.Digest, r.Size, s.Digest, s.Size)
	}
	// A few refusals through curl too.
	wantProblem(t, e.curl("GET", "/v1/packages/"+id), 401, "auth-required")
	wantProblem(t, e.curl("POST", "/v1/packages", append(append([]string{}, auth...), "-H", "Content-Type: text/plain", "--data", "hello")...), 415, "unsupported-media-type")
	wantProblem(t, e.curl("POST", "/v1/episodes", append(append([]string{}, auth...), "-H", "Content-Type: application/json", "--data", `{"child":`)...), 400, "bad-request")
}

var acceptedRE = regexp.MustCompile(`Accepted as ([0-9A-Z]{16})`)

// submitSMTP submits the file at path with smtplib over implicit TLS through a real SMTP front door on
// the same intake, and returns the accepted ID and the recipients refused at RCPT ("mail code", space
// separated).
func (e *env) submitSMTP(t *testing.T, from string, to []string, path string) (string, string) {
	t.Helper()
	srv := smtpd.New(e.in, smtpd.Options{Hostname: "localhost", TLSConfig: &tls.Config{Certificates: e.srv.TLS.Certificates}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeSubmissions(l)
	defer srv.Close()
	host, port, _ := net.SplitHostPort(l.Addr().String())
	script := `
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.check_hostname = False
with smtplib.SMTP_SSL(sys.argv[2], int(sys.argv[3]), context=ctx, timeout=30) as s:
    s.login(sys.argv[4], sys.argv[5])
    s.mail(sys.argv[4])
    refused = []
    for r in sys.argv[7:]:
        code, msg = s.rcpt(r)
        if code != 250:
            assert code >= 500, (code, msg)
            refused.append("%s %d" % (r, code))
    code, msg = s.data(open(sys.argv[6], 'rb').read())
    print(code, msg.decode())
    print("REFUSED:" + " ".join(refused))
`
	args := append([]string{"-c", script, e.caFile, host, port, from, e.passwd[from], path}, to...)
	out, err := exec.Command("python3", args...).CombinedOutput()
	m := acceptedRE.FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	_, refused, _ := strings.Cut(string(out), "REFUSED:")
	return string(m[1]), strings.TrimSpace(refused)
}
