package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	vconfig "github.com/pb33f/libopenapi-validator/config"

	spec "cafgate/api"
)

// The HTTPS API for case systems against the built binary (`cafgate dev`), driven by curl: every
// endpoint and every refusal, each answer checked against the OpenAPI document; an interrupted upload;
// a retry after kill -9; and the same package through curl and smtplib getting the same decisions.
// It skips while the gateway does not serve the API yet (GET /v1/openapi.json answers 404).

// apiEnv is one gateway with API clients.
type apiEnv struct {
	t        *testing.T
	g        *gateway
	base     string // https://host:port
	ca       string
	dir      string // scratch files
	keys     map[string]string
	ids      map[string]string // client IDs by agency
	episodes []struct {
		Reference string   `json:"reference"`
		Lead      string   `json:"lead"`
		Team      []string `json:"team"`
	}
	vmu sync.Mutex
	v   validator.Validator
}

const (
	apiPriya   = "priya.placeholder@health.cafgate.test"
	apiSam     = "sam.fictitious@health.cafgate.test"
	apiHarriet = "harriet.example@school.cafgate.test"
	apiOliver  = "oliver.sample@school.cafgate.test"
	apiGwen    = "gwen.testcase@socialcare.cafgate.test"
	apiRita    = "rita.notreal@police.cafgate.test"
	apiHealth  = "Riverside Community Health"
	apiSchool  = "Northfield Primary School"
	apiSocial  = "Eastshire Children's Services"
)

// startAPI starts a gateway and registers clients, or skips when the binary has no API yet.
func startAPI(t *testing.T) *apiEnv {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is required (integration/ci.sh installs it)")
	}
	g := startGateway(t)
	info := g.Info()
	a := &apiEnv{t: t, g: g, base: "https://" + info.Listen["https"], ca: info.CACert, dir: t.TempDir(), keys: map[string]string{}, ids: map[string]string{}}
	if r := a.curlRaw("GET", "/v1/openapi.json"); r.status == 404 {
		t.Skip("the gateway does not serve the API yet: GET /v1/openapi.json answered 404 (mount gateway/api on the HTTPS server)")
	}
	for _, agency := range []string{apiHealth, apiSchool, apiSocial} {
		out, errOut, code := g.cli("client", "add", "--agency", agency, "--name", "integration test", "--json")
		if code == 2 && strings.Contains(errOut, "unknown command") {
			t.Skip("the binary has no `cafgate client` commands yet (add clientCommands to the table)")
		}
		var added struct {
			ID     string `json:"id"`
			APIKey string `json:"api_key"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &added) != nil || added.APIKey == "" {
			t.Fatalf("cafgate client add: exit %d\n%s%s", code, out, errOut)
		}
		a.keys[agency], a.ids[agency] = added.APIKey, added.ID
	}
	raw, err := os.ReadFile(filepath.Join(g.dir, "dev.json"))
	var dj struct {
		Episodes json.RawMessage `json:"episodes"`
	}
	if err != nil || json.Unmarshal(raw, &dj) != nil || json.Unmarshal(dj.Episodes, &a.episodes) != nil || len(a.episodes) < 2 {
		t.Fatalf("dev.json has no sample episodes: %v", err)
	}
	doc, err := libopenapi.NewDocument(spec.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	if a.v, errs = validator.NewValidator(doc, vconfig.WithFormatAssertions()); len(errs) > 0 {
		t.Fatal(errs)
	}
	return a
}

// apiResp is one answer.
type apiResp struct {
	status  int
	header  http.Header
	body    []byte
	problem struct {
		Type, Title, Detail, ID, Field string
		Status                         int
	}
}

func (r *apiResp) String() string {
	return fmt.Sprintf("%d %s", r.status, truncate(string(r.body), 600))
}

func (r *apiResp) slug() string {
	return strings.TrimPrefix(r.problem.Type, "https://cafgate.invalid/problems/")
}

// curlRaw runs curl and parses its answer without checking it.
func (a *apiEnv) curlRaw(method, path string, args ...string) *apiResp {
	a.t.Helper()
	all := append([]string{"-sS", "-i", "--http1.1", "--max-time", "60", "--cacert", a.ca, "-X", method}, args...)
	out, err := exec.Command("curl", append(all, a.base+path)...).Output()
	if err != nil {
		a.t.Fatalf("curl %s %s: %v\n%s", method, path, err, out)
	}
	for bytes.HasPrefix(out, []byte("HTTP/1.1 100")) { // a 100 Continue before the answer
		if i := bytes.Index(out, []byte("\r\n\r\n")); i >= 0 {
			out = out[i+4:]
		}
	}
	req, _ := http.NewRequest(method, a.base+path, nil)
	res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), req)
	if err != nil {
		a.t.Fatalf("curl answer: %v\n%s", err, truncate(string(out), 400))
	}
	body, _ := io.ReadAll(res.Body)
	r := &apiResp{status: res.StatusCode, header: res.Header, body: body}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
		json.Unmarshal(body, &r.problem)
	}
	return r
}

var apiProblemID = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{16}$`)

// curl runs curl, checks the answer against the OpenAPI document, and a problem's promises (its ID is
// in the gateway's log).
func (a *apiEnv) curl(method, path string, args ...string) *apiResp {
	a.t.Helper()
	r := a.curlRaw(method, path, args...)
	req, _ := http.NewRequest(method, a.base+path, nil)
	res := &http.Response{StatusCode: r.status, Header: r.header, Body: io.NopCloser(bytes.NewReader(r.body)), Request: req}
	a.vmu.Lock()
	ok, errs := a.v.ValidateHttpResponse(req, res)
	a.vmu.Unlock()
	if !ok {
		a.t.Errorf("%s %s -> %d does not match the OpenAPI document: %v\n%s", method, path, r.status, errs, truncate(string(r.body), 400))
	}
	if r.problem.Type != "" {
		p := r.problem
		if p.Status != r.status || p.Title == "" || p.Detail == "" || !apiProblemID.MatchString(p.ID) {
			a.t.Errorf("problem does not keep its promises: %s", r)
		}
		a.waitLog(p.ID)
	}
	return r
}

func (a *apiEnv) waitLog(s string) {
	a.t.Helper()
	for i := 0; i < 200; i++ {
		if strings.Contains(a.g.stderr(), s) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.t.Errorf("the gateway's log never mentions %q", s)
}

// as are the headers of a client acting for a practitioner.
func (a *apiEnv) as(agency, actor string, more ...string) []string {
	return append([]string{"-H", "Authorization: Bearer " + a.keys[agency], "-H", "CAF-On-Behalf-Of: " + actor}, more...)
}

func (a *apiEnv) want(r *apiResp, status int, slug string) {
	a.t.Helper()
	if r.status != status || (slug != "" && r.slug() != slug) {
		a.t.Errorf("want %d %s, got %s", status, slug, r)
	}
}

// apiPackageFiles writes a package's files: manifest.json, the documents, and package.eml (the whole
// package, CRLF) from sender to rcpts for episode ref.
func (a *apiEnv) apiPackageFiles(name, sender, ref string, rcpts []string) string {
	dir := filepath.Join(a.dir, name)
	os.MkdirAll(dir, 0o700)
	docs := []struct{ name, sections, data string }{
		{"caf-form.pdf", `"childs-details", "development-of-the-child", "parents-and-carers", "family-and-environment"`, "%PDF-1.7\n% CAF form\n"},
		{"action-plan.pdf", `"conclusions-and-actions"`, "%PDF-1.7\n% action plan\n"},
		{"consent-form.pdf", `"consent"`, "%PDF-1.7\n% consent\n"},
	}
	var entries []string
	for _, d := range docs {
		entries = append(entries, fmt.Sprintf(`{"part": %q, "sections": [%s]}`, d.name, d.sections))
		os.WriteFile(filepath.Join(dir, d.name), []byte(d.data), 0o600)
	}
	mf := fmt.Sprintf(`{"version": 1, "episode": %q, "child": "IT-CHILD-7", "sender": %q, "documents": [%s]}`, ref, sender, strings.Join(entries, ", "))
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(mf), 0o600)
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: CAF review\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n", sender, strings.Join(rcpts, ", "))
	b.WriteString("--B\r\nContent-Type: application/vnd.cafgate.manifest+json\r\n\r\n" + mf + "\r\n")
	for _, d := range docs {
		fmt.Fprintf(&b, "--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=%s\r\n\r\n%s\r\n", d.name, strings.ReplaceAll(d.data, "\n", "\r\n"))
	}
	b.WriteString("--B--\r\n")
	os.WriteFile(filepath.Join(dir, "package.eml"), []byte(b.String()), 0o600)
	return dir
}

// formArgs are curl's arguments for the package in dir as a form.
func formArgs(dir string, rcpts []string) []string {
	args := []string{"-F", "manifest=@" + filepath.Join(dir, "manifest.json") + ";type=application/json"}
	for _, d := range []string{"caf-form.pdf", "action-plan.pdf", "consent-form.pdf"} {
		args = append(args, "-F", "document=@"+filepath.Join(dir, d)+";type=application/pdf")
	}
	for _, r := range rcpts {
		args = append(args, "-F", "recipient="+r)
	}
	return args
}

func rawArgs(dir string, more ...string) []string {
	return append([]string{"-H", "Content-Type: message/rfc822", "--data-binary", "@" + filepath.Join(dir, "package.eml")}, more...)
}

// apiPackage is a status answer, decoded.
type apiPackage struct {
	ID         string `json:"id"`
	Via        string `json:"via"`
	Digest     string `json:"digest"`
	Recipients []struct {
		Recipient, Decision, Reason string
		Withheld                    []string
	} `json:"recipients"`
}

func (a *apiEnv) pkg(r *apiResp) apiPackage {
	a.t.Helper()
	var p apiPackage
	if err := json.Unmarshal(r.body, &p); err != nil {
		a.t.Fatalf("status answer: %v: %s", err, r)
	}
	return p
}

func (p apiPackage) decisions() string {
	var out []string
	for _, r := range p.Recipients {
		out = append(out, fmt.Sprintf("%s=%s/%s-%s", r.Recipient, r.Decision, r.Reason, strings.Join(r.Withheld, ",")))
	}
	return strings.Join(out, " ")
}

func TestAPIAgainstBinary(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	refuses := a.episodes[1].Reference // refuses the police, sam by name, family and environment to social care
	to := []string{apiGwen, apiRita, apiSam}
	dir := a.apiPackageFiles("refuses", apiHarriet, refuses, to)

	// Uploads: a form, a message, the same message retried with its key; a status.
	byForm := a.curl("POST", "/v1/packages", append(a.as(apiSchool, apiHarriet), formArgs(dir, to)...)...)
	byRaw := a.curl("POST", "/v1/packages", a.as(apiSchool, apiHarriet, rawArgs(dir, "-H", "Idempotency-Key: it-raw-1")...)...)
	again := a.curl("POST", "/v1/packages", a.as(apiSchool, apiHarriet, rawArgs(dir, "-H", "Idempotency-Key: it-raw-1")...)...)
	a.want(byForm, 201, "")
	a.want(byRaw, 201, "")
	if a.pkg(again).ID != a.pkg(byRaw).ID || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry with the same key: %s", again)
	}
	status := a.curl("GET", "/v1/packages/"+a.pkg(byRaw).ID, a.as(apiSchool, apiHarriet)...)
	a.want(status, 200, "")

	// The same package by smtplib: the same decisions, the same stored bytes.
	smtpID := a.submitBySMTP(apiHarriet, to, filepath.Join(dir, "package.eml"))
	bySMTP := a.pkg(a.curl("GET", "/v1/packages/"+smtpID, a.as(apiSchool, apiHarriet)...))
	f, r := a.pkg(byForm), a.pkg(byRaw)
	if f.decisions() != r.decisions() || r.decisions() != bySMTP.decisions() || r.Digest != bySMTP.Digest {
		t.Errorf("decisions differ:\nform %s\nraw  %s\nsmtp %s (%s vs %s)", f.decisions(), r.decisions(), bySMTP.decisions(), r.Digest, bySMTP.Digest)
	}
	if !strings.Contains(r.decisions(), "refused-agency") || !strings.Contains(r.decisions(), "sections-withheld") {
		t.Errorf("unexpected decisions: %s", r.decisions())
	}

	// Upload refusals.
	a.want(a.curl("POST", "/v1/packages", append(a.as(apiSchool, apiHarriet), formArgs(dir, []string{apiRita})...)...), 403, "not-permitted")
	a.want(a.curl("POST", "/v1/packages", append(a.as(apiSchool, apiHarriet), formArgs(dir, []string{"nobody@police.cafgate.test"})...)...), 422, "unknown-recipient")
	a.want(a.curl("POST", "/v1/packages", append(a.as(apiSchool, apiHarriet), formArgs(dir, []string{apiOliver})...)...), 403, "not-permitted")
	a.want(a.curl("POST", "/v1/packages", a.as(apiSchool, apiHarriet, append(formArgs(dir, []string{apiGwen}), "-H", "Idempotency-Key: it-raw-1")...)...), 422, "idempotency-key-reused")
	// Some recipients refused by the directory check: accepted for the others, as SMTP would.
	part := a.curl("POST", "/v1/packages", append(a.as(apiSchool, apiHarriet), formArgs(dir, []string{apiGwen, "nobody@police.cafgate.test", apiOliver})...)...)
	a.want(part, 201, "")
	for _, want := range []string{`"reason":"recipient-unknown"`, `"field":"recipient[1]"`, `"reason":"recipient-vetting-lapsed"`, `"decision":"deliver-sections"`} {
		if !strings.Contains(string(part.body), want) {
			t.Errorf("partial upload answer lacks %s: %s", want, part)
		}
	}
	a.want(a.curl("POST", "/v1/packages", a.as(apiSchool, apiHarriet, "-H", "Content-Type: text/plain", "--data", "hello")...), 415, "unsupported-media-type")
	a.want(a.curl("POST", "/v1/packages", a.as(apiSchool, apiHarriet, "-F", "recipient="+apiGwen)...), 400, "bad-message")
	big := filepath.Join(a.dir, "big.eml")
	os.WriteFile(big, bytes.Repeat([]byte("x"), 26<<20), 0o600)
	a.want(a.curl("POST", "/v1/packages", a.as(apiSchool, apiHarriet, "-H", "Content-Type: message/rfc822", "--data-binary", "@"+big)...), 413, "too-big")
	a.want(a.curl("GET", "/v1/packages/"+smtpID, a.as(apiHealth, apiPriya)...), 404, "not-found")

	// Authentication and the practitioner acted for.
	a.want(a.curl("GET", "/v1/packages/"+smtpID), 401, "auth-required")
	a.want(a.curl("GET", "/v1/packages/"+smtpID, "-H", "Authorization: Bearer cafk_nope", "-H", "CAF-On-Behalf-Of: "+apiHarriet), 401, "bad-credentials")
	a.want(a.curl("GET", "/v1/packages/"+smtpID, a.as(apiSchool, apiPriya)...), 403, "not-permitted")
	a.want(a.curl("GET", "/v1/packages/"+smtpID, a.as(apiSchool, apiOliver)...), 403, "not-permitted")
	a.want(a.curl("GET", "/v1/packages/"+smtpID, "-H", "Authorization: Bearer "+a.keys[apiSchool]), 400, "bad-request")
	a.want(a.curlRaw("GET", "/v1/nothing", a.as(apiSchool, apiHarriet)...), 404, "not-found")
	a.want(a.curlRaw("DELETE", "/v1/packages/"+smtpID, a.as(apiSchool, apiHarriet)...), 405, "method-not-allowed")

	a.episodesAndConsent()
	a.want(a.curl("POST", "/v1/links/L0000000000000000/revoke", a.as(apiHealth, apiPriya, "-H", "Content-Type: application/json", "--data", `{"reason":"x"}`)...), 404, "not-found")
	a.storeLocked(dir)
	a.interruptedAndKilled(dir)
	a.rateLimited()
	a.revokeClient()
	// No key, no child's identifier, no content in the log.
	log := a.g.stderr()
	for _, k := range a.keys {
		if strings.Contains(log, k) || strings.Contains(log, k[len(k)-52:]) {
			t.Error("the log holds an API key")
		}
	}
	for _, s := range []string{"IT 0001", "IT0001", "IT-CHILD-7", "% CAF form", "CAF review"} {
		if strings.Contains(log, s) {
			t.Errorf("the log holds %q", s)
		}
	}
}

// episodesAndConsent opens, moves on, hands over and closes an episode and records consent.
func (a *apiEnv) episodesAndConsent() {
	t := a.t
	j := func(body string) []string { return []string{"-H", "Content-Type: application/json", "--data", body} }
	open := a.curl("POST", "/v1/episodes", a.as(apiHealth, apiPriya, j(`{"child": "IT 0001", "team": ["`+apiGwen+`"]}`)...)...)
	a.want(open, 201, "")
	var ep struct {
		Reference, State, Lead string
	}
	json.Unmarshal(open.body, &ep)
	path := "/v1/episodes/" + ep.Reference
	a.want(a.curl("POST", "/v1/episodes", a.as(apiHealth, apiPriya, j(`{"child": "IT-0001"}`)...)...), 409, "conflict")
	a.want(a.curl("POST", "/v1/episodes", a.as(apiHealth, apiPriya, j(`{"child": "x", "lead": "nobody@health.cafgate.test"}`)...)...), 422, "invalid-request")
	a.want(a.curl("POST", "/v1/episodes", a.as(apiHealth, apiPriya, j(`{"child": `)...)...), 400, "bad-request")
	a.want(a.curl("GET", path, a.as(apiSchool, apiHarriet)...), 404, "not-found")
	a.want(a.curl("GET", path, a.as(apiSocial, apiGwen)...), 200, "")
	a.want(a.curl("POST", path+"/transition", a.as(apiSocial, apiGwen, j(`{"state": "assessment"}`)...)...), 403, "not-permitted")
	a.want(a.curl("POST", path+"/transition", a.as(apiHealth, apiPriya, j(`{"state": "review"}`)...)...), 409, "conflict")
	a.want(a.curl("POST", path+"/transition", a.as(apiHealth, apiPriya, j(`{"state": "assessment"}`)...)...), 200, "")
	a.want(a.curl("POST", path+"/consent", a.as(apiHealth, apiPriya, j(`{"given_by": "parent", "grants": [{"team": true}], "refusals": [{"agency": "Eastshire Police"}]}`)...)...), 201, "")
	a.want(a.curl("POST", path+"/consent", a.as(apiHealth, apiPriya, j(`{"given_by": "parent", "grants": [{"team": true, "sections": ["health"]}]}`)...)...), 422, "invalid-request")
	a.want(a.curl("POST", path+"/consent", a.as(apiSocial, apiGwen, j(`{"given_by": "parent"}`)...)...), 403, "not-permitted")
	a.want(a.curl("POST", path+"/consent/withdraw", a.as(apiSocial, apiGwen, j(`{"given_by": "child"}`)...)...), 201, "")
	a.want(a.curl("POST", path+"/handover", a.as(apiHealth, apiPriya, j(`{"lead": "`+apiGwen+`"}`)...)...), 200, "")
	a.want(a.curl("POST", path+"/close", a.as(apiHealth, apiPriya)...), 403, "not-permitted")
	a.want(a.curl("POST", path+"/close", a.as(apiSocial, apiGwen)...), 200, "")
	a.want(a.curl("POST", path+"/close", a.as(apiSocial, apiGwen)...), 409, "conflict")
	if t.Failed() {
		a.g.dumpLogTail(30)
	}
}

// storeLocked: with the database's write lock held by another process past the busy timeout, an upload
// is a 503 with Retry-After and nothing is stored.
func (a *apiEnv) storeLocked(dir string) {
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(a.g.dir, "data", "cafgate.db")+"?_busy_timeout=10000")
	if err != nil {
		a.t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		a.t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		a.t.Skipf("cannot take the database's write lock: %v", err)
	}
	before := len(a.g.messages())
	r := a.curl("POST", "/v1/packages", a.as(apiSchool, apiHarriet, rawArgs(dir)...)...)
	conn.ExecContext(context.Background(), "ROLLBACK")
	a.want(r, 503, "store-unavailable")
	if n := len(a.g.messages()); n != before {
		a.t.Errorf("%d messages stored while the store was locked", n-before)
	}
}

// interruptedAndKilled: a body cut off half way stores nothing; an upload answered before kill -9 is
// answered the same after the restart when retried with its key.
func (a *apiEnv) interruptedAndKilled(dir string) {
	before := len(a.g.messages())
	content, _ := os.ReadFile(filepath.Join(dir, "package.eml"))
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(a.ca)
	pool.AppendCertsFromPEM(caPEM)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(a.base, "https://"), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		a.t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/packages HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nCAF-On-Behalf-Of: %s\r\nContent-Type: message/rfc822\r\nContent-Length: %d\r\n\r\n",
		a.keys[apiSchool], apiHarriet, len(content))
	conn.Write(content[:len(content)/2])
	conn.Close()
	time.Sleep(300 * time.Millisecond)
	if n := len(a.g.messages()); n != before {
		a.t.Errorf("%d messages stored by an interrupted upload", n-before)
	}
	first := a.curl("POST", "/v1/packages", a.as(apiSchool, apiHarriet, rawArgs(dir, "-H", "Idempotency-Key: before-kill")...)...)
	a.want(first, 201, "")
	a.g.kill()
	info := a.g.start()
	a.base = "https://" + info.Listen["https"]
	again := a.curl("POST", "/v1/packages", a.as(apiSchool, apiHarriet, rawArgs(dir, "-H", "Idempotency-Key: before-kill")...)...)
	if again.status != 201 || a.pkg(again).ID != a.pkg(first).ID || again.header.Get("Idempotent-Replayed") != "true" {
		a.t.Errorf("retry after kill -9: %s (first %s)", again, a.pkg(first).ID)
	}
	if n := len(a.g.messages()); n != before+1 {
		a.t.Errorf("%d messages stored, want 1", n-before)
	}
}

// revokeClient: `cafgate client revoke` needs a reason; the revoked key is refused; the registration and
// the revocation are in the ledger with who and why, and the ledger verifies.
func (a *apiEnv) revokeClient() {
	t := a.t
	id := a.ids[apiSocial]
	if _, _, code := a.g.cli("client", "revoke", id); code == 0 {
		t.Error("client revoke without --reason succeeded")
	}
	if out, errOut, code := a.g.cli("client", "revoke", id, "--by", "it-operator", "--reason", "integration test: system retired"); code != 0 {
		t.Fatalf("client revoke: exit %d\n%s%s", code, out, errOut)
	}
	a.want(a.curl("GET", "/v1/episodes/"+a.episodes[0].Reference, a.as(apiSocial, apiGwen)...), 401, "bad-credentials")
	out, errOut, code := a.g.cli("ledger", "show", "--since", "2000-01-01T00:00:00Z", "--type", "client-revoked", "--reason", "integration test", "--operator", "it")
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "it-operator") || !strings.Contains(out, "system retired") {
		t.Errorf("ledger show client-revoked: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = a.g.cli("ledger", "show", "--since", "2000-01-01T00:00:00Z", "--type", "client-added", "--reason", "integration test", "--operator", "it")
	if code != 0 || strings.Count(out, "client-added") != 3 {
		t.Errorf("ledger show client-added: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := a.g.cli("ledger", "verify"); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("ledger verify: exit %d\n%s%s", code, out, errOut)
	}
}

// rateLimited: past the client's burst, 429 with Retry-After.
func (a *apiEnv) rateLimited() {
	for i := 0; i < 60; i++ {
		// Each answer is validated against the OpenAPI document; the first 429 itself is checked (a
		// second request could find a token refilled meanwhile on a slow machine).
		r := a.curl("GET", "/v1/episodes/"+a.episodes[0].Reference, a.as(apiHealth, apiPriya)...)
		if r.status == 429 {
			a.want(r, 429, "rate-limited")
			if r.header.Get("Retry-After") == "" {
				a.t.Errorf("429 without Retry-After: %s", r)
			}
			return
		}
	}
	a.t.Error("60 requests in a row were never answered 429")
}

var apiAcceptedRE = regexp.MustCompile(`Accepted as ([0-9A-Z]{16})`)

// submitBySMTP submits the file with smtplib over implicit TLS and returns the accepted ID.
func (a *apiEnv) submitBySMTP(from string, to []string, path string) string {
	a.t.Helper()
	info := a.g.Info()
	var password string
	for _, acc := range info.Accounts {
		if acc.Mail == from {
			password = acc.Password
		}
	}
	_, port, _ := strings.Cut(info.Listen["submissions"], ":")
	script := `
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with smtplib.SMTP_SSL(sys.argv[2], int(sys.argv[3]), context=ctx, timeout=30) as s:
    s.login(sys.argv[4], sys.argv[5])
    s.mail(sys.argv[4])
    for r in sys.argv[7:]:
        code, msg = s.rcpt(r)
        assert code == 250, (code, msg)
    code, msg = s.data(open(sys.argv[6], 'rb').read())
    print(code, msg.decode())
`
	out, err := exec.Command("python3", append([]string{"-c", script, a.ca, "localhost", port, from, password, path}, to...)...).CombinedOutput()
	m := apiAcceptedRE.FindSubmatch(out)
	if err != nil || m == nil {
		a.t.Fatalf("smtplib: %v\n%s", err, out)
	}
	return string(m[1])
}

// TestAPISeparateListener: with [api] listen set, the API is served on its own listener, which
// requests a client certificate; the HTTPS listener of the pickup page requests none (no certificate
// chooser in a browser) and no longer serves /v1/. The gateway is the built binary run by `cafgate
// serve` on the configuration `cafgate dev` wrote, plus the setting.
func TestAPISeparateListener(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	a.g.stop()
	conf := filepath.Join(a.g.dir, "cafgate.toml")
	raw, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := l.Addr().String()
	l.Close()
	split := filepath.Join(a.g.dir, "split.toml")
	if err := os.WriteFile(split, append(raw, []byte("\n[api]\nlisten = \""+apiAddr+"\"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(a.dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(binPath, "serve", "--config", split)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	httpsAddr := strings.TrimPrefix(a.base, "https://")
	for _, addr := range []string{apiAddr, httpsAddr} {
		for i := 0; ; i++ {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if i == 150 {
				log, _ := os.ReadFile(logf.Name())
				t.Fatalf("nothing listens on %s:\n%s", addr, truncate(string(log), 4000))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(a.ca)
	pool.AppendCertsFromPEM(caPEM)
	asked := func(addr string) bool {
		requested := false
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost",
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				requested = true
				return &tls.Certificate{}, nil
			}})
		if err != nil {
			t.Fatalf("TLS to %s: %v", addr, err)
		}
		// TLS 1.3 sends the certificate request after the server's Finished: a round trip makes sure
		// it has been read.
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
		io.ReadAll(c)
		c.Close()
		return requested
	}
	if asked(httpsAddr) {
		t.Error("the pickup page's listener requests a client certificate although the API has its own listener")
	}
	if !asked(apiAddr) {
		t.Error("the API's listener does not request a client certificate")
	}
	a.want(a.curlRaw("GET", "/v1/openapi.json"), 404, "")
	a.base = "https://" + apiAddr
	a.want(a.curl("GET", "/v1/openapi.json"), 200, "")
	a.want(a.curl("GET", "/v1/episodes/"+a.episodes[0].Reference, a.as(apiHealth, apiPriya)...), 200, "")
	if t.Failed() {
		log, _ := os.ReadFile(logf.Name())
		t.Logf("cafgate serve log:\n%s", truncate(string(log), 4000))
	}
}
