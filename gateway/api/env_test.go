package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	vconfig "github.com/pb33f/libopenapi-validator/config"

	spec "cafgate/api"
	"cafgate/configs"
	"cafgate/directory"
	"cafgate/directory/ldif"
	"cafgate/gateway/httpd"
	"cafgate/gateway/intake"
	"cafgate/mailbox"
)

// The in-process test server: the real intake, the real store (mailbox.Open in a temporary directory),
// the sample directory of the development setup (configs/sample-directory.ldif) and its sample
// episodes, behind an httptest TLS server that asks for client certificates. Every answer is validated
// against the OpenAPI document.

// Sample practitioners (configs/sample-directory.ldif).
const (
	priya   = "priya.placeholder@health.cafgate.test" // Riverside Community Health, lead of the sample episodes
	sam     = "sam.fictitious@health.cafgate.test"    // Riverside Community Health, sensitive service, on the team
	harriet = "harriet.example@school.cafgate.test"   // Northfield Primary School, safeguarding person, on the team
	oliver  = "oliver.sample@school.cafgate.test"     // Northfield Primary School, vetting lapsed
	gwen    = "gwen.testcase@socialcare.cafgate.test" // Eastshire Children's Services, on the team
	declan  = "declan.madeup@socialcare.cafgate.test" // Eastshire Children's Services, not on the team
	rita    = "rita.notreal@police.cafgate.test"      // Eastshire Police, on the team
	tom     = "tom.pretend@police.cafgate.test"       // Eastshire Police, not on the team
	health  = "Riverside Community Health"
	school  = "Northfield Primary School"
	police  = "Eastshire Police"
)

var sampleDomains = []string{"school.cafgate.test", "health.cafgate.test", "socialcare.cafgate.test", "police.cafgate.test"}

// switchDir is the sample directory with a switch that makes it unavailable.
type switchDir struct {
	directory.Directory
	down atomic.Bool
}

func (d *switchDir) Lookup(ctx context.Context, mail string) (*directory.Practitioner, error) {
	if d.down.Load() {
		return nil, fmt.Errorf("%w: switched off by the test", directory.ErrUnavailable)
	}
	return d.Directory.Lookup(ctx, mail)
}

func (d *switchDir) Authenticate(ctx context.Context, mail, password string) (*directory.Practitioner, error) {
	if d.down.Load() {
		return nil, fmt.Errorf("%w: switched off by the test", directory.ErrUnavailable)
	}
	return d.Directory.Authenticate(ctx, mail, password)
}

// syncBuffer is a log destination tests read while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one test server and what it stands on.
type env struct {
	t        *testing.T
	dir      string
	spoolDir string
	store    *mailbox.Store
	sdir     *switchDir
	in       *intake.Intake
	h        *Handler
	srv      *httptest.Server
	caFile   string
	pool     *x509.CertPool
	log      *syncBuffer
	passwd   map[string]string
	episodes []mailbox.SeedEpisode
	keys     map[string]string // agency -> API key
	clients  map[string]string // agency -> client ID

	vmu sync.Mutex
	v   validator.Validator
}

// newEnv starts a server; tweak, when given, changes the limits first.
func newEnv(t *testing.T, tweak ...func(*Limits)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), log: &syncBuffer{}, keys: map[string]string{}, clients: map[string]string{}}
	log := slog.New(slog.NewJSONHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	key := make([]byte, 32)
	rand.Read(key)
	st, err := mailbox.Open(ctx, mailbox.Options{Path: filepath.Join(e.dir, "cafgate.db"), ContentKey: key, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.store = st
	e.sdir = &switchDir{Directory: e.sampleDirectory()}
	e.in = intake.New(e.sdir, st, st, log.With("part", "intake"), nil)
	childKey, err := mailbox.DeriveChildKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if e.episodes, err = mailbox.SeedDevEpisodes(ctx, st, childKey, e.sdir); err != nil {
		t.Fatal(err)
	}
	lim := DefaultLimits()
	for _, f := range tweak {
		f(&lim)
	}
	e.spoolDir = filepath.Join(e.dir, "spool")
	if err := os.Mkdir(e.spoolDir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.h, err = New(Options{Intake: e.in, Store: st, Dir: e.sdir, ChildKey: childKey, Limits: lim, Hostname: "gateway.test", SpoolDir: e.spoolDir,
		Log: log.With("part", "api")})
	if err != nil {
		t.Fatal(err)
	}
	e.startServer()
	for _, agency := range []string{health, school} {
		c, k, err := st.AddAPIClient(ctx, mailbox.NewAPIClient{Agency: agency, Name: "case system", By: "test"})
		if err != nil {
			t.Fatal(err)
		}
		e.keys[agency], e.clients[agency] = k, c.ID
	}
	e.v = loadValidator(t)
	return e
}

// sampleDirectory is the development setup's directory with a password for everyone.
func (e *env) sampleDirectory() directory.Directory {
	entries, err := ldif.Parse(bytes.NewReader(configs.SampleDirectory))
	if err != nil {
		e.t.Fatal(err)
	}
	e.passwd = map[string]string{}
	for _, m := range []string{priya, sam, harriet, oliver, gwen, declan, rita, tom} {
		e.passwd[m] = "pw-" + m
	}
	d, err := ldif.New(ldif.WithSecrets(entries, e.passwd, nil), "dev", sampleDomains)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// startServer serves the handler as the lead mounts it: under /v1/ of a mux, behind the gateway's
// security headers, over TLS 1.2+ asking for (not requiring) a client certificate.
func (e *env) startServer() {
	cert, pemCert := selfSigned(e.t, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	mux := http.NewServeMux()
	mux.Handle("/v1/", e.h)
	e.srv = httptest.NewUnstartedServer(httpd.SecurityHeaders(mux))
	e.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert}
	e.srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // refused handshakes of the TLS tests
	e.srv.StartTLS()
	e.t.Cleanup(e.srv.Close)
	e.caFile = filepath.Join(e.dir, "ca.pem")
	if err := os.WriteFile(e.caFile, pemCert, 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.pool = x509.NewCertPool()
	e.pool.AppendCertsFromPEM(pemCert)
}

// selfSigned makes a certificate for name (an IP address or a common name) and its PEM.
func selfSigned(t testing.TB, name string, usage x509.ExtKeyUsage) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// client returns an HTTPS client trusting the server, presenting cert when given.
func (e *env) client(cert *tls.Certificate) *http.Client {
	conf := &tls.Config{RootCAs: e.pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: conf}, Timeout: 30 * time.Second}
}

func loadValidator(t testing.TB) validator.Validator {
	t.Helper()
	doc, err := libopenapi.NewDocument(spec.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc, vconfig.WithFormatAssertions())
	if len(errs) > 0 {
		t.Fatalf("OpenAPI document: %v", errs)
	}
	return v
}

// resp is an answer read whole.
type resp struct {
	status  int
	header  http.Header
	body    []byte
	problem *Problem
}

func (r *resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer %d is not the JSON expected: %v\n%s", r.status, err, r.body)
	}
}

func (r *resp) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// call is one request: method, path, headers, body.
type call struct {
	method, path string
	actor        string // CAF-On-Behalf-Of; empty: none
	key          string // API key; empty: none
	header       map[string]string
	body         io.Reader
	ctype        string
	cert         *tls.Certificate
	outOfSpec    bool // a path or method the document does not have (404, 405)
}

// do sends c and checks the answer: valid against the OpenAPI document, and a problem carries the
// fields RFC 9457 and the API promise, its status, and an ID found in the log.
func (e *env) do(c call) *resp {
	e.t.Helper()
	req, err := http.NewRequest(c.method, e.srv.URL+c.path, c.body)
	if err != nil {
		e.t.Fatal(err)
	}
	if c.actor != "" {
		req.Header.Set(OnBehalfOfHeader, c.actor)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if c.ctype != "" {
		req.Header.Set("Content-Type", c.ctype)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	res, err := e.client(c.cert).Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &resp{status: res.StatusCode, header: res.Header, body: body}
	if !c.outOfSpec {
		e.validate(req, res, body)
	}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
		r.problem = e.checkProblem(res, body)
	}
	if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("Cache-Control") != "no-store" {
		e.t.Errorf("%s %s: security headers missing: %v", c.method, c.path, res.Header)
	}
	return r
}

// validate checks an answer against the OpenAPI document.
func (e *env) validate(req *http.Request, res *http.Response, body []byte) {
	e.t.Helper()
	e.vmu.Lock()
	defer e.vmu.Unlock()
	res.Body = io.NopCloser(bytes.NewReader(body))
	if ok, errs := e.v.ValidateHttpResponse(req, res); !ok {
		var msgs []string
		for _, ve := range errs {
			msgs = append(msgs, ve.Error())
			for _, se := range ve.SchemaValidationErrors {
				msgs = append(msgs, "  "+se.Reason+" at "+se.FieldPath)
			}
		}
		e.t.Errorf("%s %s -> %d does not match the OpenAPI document:\n%s\n%s", req.Method, req.URL.Path, res.StatusCode,
			strings.Join(msgs, "\n"), truncate(body, 600))
	}
}

var problemID = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{16}$`)

// checkProblem checks a problem body and that its ID is in the log.
func (e *env) checkProblem(res *http.Response, body []byte) *Problem {
	e.t.Helper()
	var p Problem
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		e.t.Fatalf("problem body: %v\n%s", err, body)
	}
	if p.Status != res.StatusCode || !strings.HasPrefix(p.Type, ProblemBase) || p.Title == "" || p.Detail == "" || !problemID.MatchString(p.ID) {
		e.t.Errorf("problem does not keep its promises (status %d): %+v", res.StatusCode, p)
	}
	if (p.Status == 429 || p.Status == 503 || p.Status == 507) && res.Header.Get("Retry-After") == "" {
		e.t.Errorf("%d without Retry-After", p.Status)
	}
	e.waitLog(p.ID)
	return &p
}

// waitLog waits until the log holds s (a request's line is written just after its answer).
func (e *env) waitLog(s string) {
	e.t.Helper()
	for i := 0; i < 200; i++ {
		if strings.Contains(e.log.String(), s) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Errorf("the log never mentions %q", s)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// wantProblem fails unless r is a problem of status and type slug (and field, when given).
func wantProblem(t testing.TB, r *resp, status int, slug string, field ...string) *Problem {
	t.Helper()
	if r.problem == nil || r.status != status || r.problem.Type != ProblemBase+slug {
		t.Fatalf("want %d %s, got %s", status, slug, r)
	}
	if len(field) > 0 && r.problem.Field != field[0] {
		t.Fatalf("want field %q, got %q (%s)", field[0], r.problem.Field, r)
	}
	return r.problem
}

// episode returns a sample episode's reference: 0 shares with the four agencies, 1 has refusals.
func (e *env) episode(i int) string { return e.episodes[i].Reference }
