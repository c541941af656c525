package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// fakeServer is a real go-smtp server on 127.0.0.1:0 requiring STARTTLS and AUTH PLAIN, that keeps
// what it receives and can reject every n-th RCPT.
type fakeServer struct {
	addr, caFile string
	rejectEvery  int // 0: never

	mu      sync.Mutex
	rcpts   int
	msgs    [][]byte
	remotes map[string]bool // client IPs seen
}

func startServer(t *testing.T, rejectEvery int) *fakeServer {
	t.Helper()
	cert, caPEM := selfSigned(t)
	fs := &fakeServer{rejectEvery: rejectEvery, caFile: filepath.Join(t.TempDir(), "ca.pem")}
	if err := os.WriteFile(fs.caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	fs.remotes = map[string]bool{}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		host, _, _ := net.SplitHostPort(c.Conn().RemoteAddr().String())
		fs.mu.Lock()
		fs.remotes[host] = true
		fs.mu.Unlock()
		return &fakeSession{srv: fs}, nil
	}))
	s.Domain = "localhost"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs.addr = l.Addr().String()
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return fs
}

type fakeSession struct {
	srv    *fakeServer
	authed bool
}

func (s *fakeSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *fakeSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "alice@a.example" || pass != "s3:cret" {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}
func (s *fakeSession) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	return nil
}
func (s *fakeSession) Rcpt(string, *smtp.RcptOptions) error {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	s.srv.rcpts++
	if s.srv.rejectEvery > 0 && s.srv.rcpts%s.srv.rejectEvery == 0 {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	}
	return nil
}
func (s *fakeSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, b)
	s.srv.mu.Unlock()
	return nil
}
func (s *fakeSession) Reset()        {}
func (s *fakeSession) Logout() error { return nil }

func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func runLoad(t *testing.T, args ...string) (Result, int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append(args, "-json"), &out, &errb)
	var r Result
	if out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("bad JSON %q: %v", out.String(), err)
		}
	}
	return r, code, errb.String()
}

func TestRunAgainstServer(t *testing.T) {
	srv := startServer(t, 0)
	r, code, stderr := runLoad(t, "-addr", srv.addr, "-starttls", "-ca", srv.caFile, "-auth", "alice@a.example:s3:cret",
		"-from", "alice@a.example", "-to", "bob@b.example", "-size", "4KiB", "-conns", "3", "-messages", "25")
	if code != 0 || r.Accepted != 25 || r.Failed != 0 || r.Connected != 3 {
		t.Fatalf("code %d, result %+v, stderr %s", code, r, stderr)
	}
	if r.Rate <= 0 || r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 || !r.StartTLS || !r.Auth ||
		!strings.HasPrefix(r.TLS, "TLS 1.3 ") {
		t.Fatalf("figures: %+v", r)
	}
	ids := map[string]bool{}
	for _, m := range srv.msgs {
		if len(m) != 4096 {
			t.Errorf("server got %d bytes", len(m))
		}
		checkLines(t, m)
		pm, err := mail.ReadMessage(bytes.NewReader(m))
		if err != nil {
			t.Fatal(err)
		}
		ids[pm.Header.Get("Message-ID")] = true
	}
	if len(srv.msgs) != 25 || len(ids) != 25 {
		t.Fatalf("server got %d messages, %d distinct IDs", len(srv.msgs), len(ids))
	}
	if len(srv.remotes) != 1 {
		t.Fatalf("one source expected, server saw %v", srv.remotes)
	}
}

func TestRunSpreadsSources(t *testing.T) {
	srv := startServer(t, 0)
	r, code, _ := runLoad(t, "-addr", srv.addr, "-starttls", "-ca", srv.caFile, "-auth", "alice@a.example:s3:cret",
		"-from", "alice@a.example", "-to", "bob@b.example", "-conns", "6", "-sources", "3", "-messages", "6")
	if code != 0 || r.Accepted != 6 || r.Sources != 3 {
		t.Fatalf("code %d, result %+v", code, r)
	}
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		if !srv.remotes[ip] {
			t.Errorf("no connection from %s: %v", ip, srv.remotes)
		}
	}
}

func TestRunCountsRejectionsByCode(t *testing.T) {
	srv := startServer(t, 3)
	r, code, _ := runLoad(t, "-addr", srv.addr, "-starttls", "-ca", srv.caFile, "-auth", "alice@a.example:s3:cret",
		"-from", "alice@a.example", "-to", "bob@b.example", "-size", "2KiB", "-conns", "2", "-messages", "30")
	if code != 0 || r.Accepted != 20 || r.Errors["451"] != 10 || r.Failed != 10 {
		t.Fatalf("code %d, result %+v", code, r)
	}
	if len(srv.msgs) != 20 {
		t.Fatalf("server stored %d", len(srv.msgs))
	}
}

func TestRunDurationStopsAndReports(t *testing.T) {
	srv := startServer(t, 0)
	start := time.Now()
	r, code, _ := runLoad(t, "-addr", srv.addr, "-starttls", "-ca", srv.caFile, "-auth", "alice@a.example:s3:cret",
		"-from", "alice@a.example", "-to", "bob@b.example,carol@c.example", "-conns", "2", "-duration", "300ms")
	if code != 0 || r.Accepted == 0 || r.ElapsedS < 0.3 || time.Since(start) > 5*time.Second || r.Recipients != 2 {
		t.Fatalf("code %d, result %+v", code, r)
	}
}

func TestRunBadPasswordFails(t *testing.T) {
	srv := startServer(t, 0)
	r, code, _ := runLoad(t, "-addr", srv.addr, "-starttls", "-ca", srv.caFile, "-auth", "alice@a.example:wrong",
		"-from", "alice@a.example", "-to", "bob@b.example", "-messages", "3")
	if code != 1 || r.Accepted != 0 || r.Errors["535"] == 0 || len(srv.msgs) != 0 {
		t.Fatalf("code %d, result %+v", code, r)
	}
}

func TestRunRefusesUnknownCA(t *testing.T) {
	srv := startServer(t, 0)
	other := startServer(t, 0) // a different self-signed CA
	r, code, _ := runLoad(t, "-addr", srv.addr, "-starttls", "-ca", other.caFile,
		"-from", "alice@a.example", "-to", "bob@b.example", "-messages", "2")
	if code != 1 || r.Errors["tls"] == 0 || len(srv.msgs) != 0 {
		t.Fatalf("code %d, result %+v", code, r)
	}
	if !strings.Contains(r.Samples["tls"], "certificate") {
		t.Fatalf("sample %q", r.Samples["tls"])
	}
}
