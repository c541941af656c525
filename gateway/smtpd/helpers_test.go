package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"cafgate/directory"
	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
)

// testTLS returns a server configuration with a fresh self-signed certificate for 127.0.0.1 and
// localhost, and a client configuration that trusts it.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "smtpd test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool, ServerName: "localhost"}
	return server, client
}

const (
	alice    = "alice@a.example"
	bob      = "bob@b.example"
	carol    = "carol@b.example"
	alicePw  = "correct horse"
	lapsed   = "lapsed@b.example"
	disabled = "disabled@b.example"
	downRcpt = "down@b.example"
)

// fakeIntake answers like the real intake for a small fixed directory, and records what it was asked.
type fakeIntake struct {
	mu        sync.Mutex
	authErr   error // when set, Authenticate returns it
	acceptErr error // when set, Accept returns it (after the content check)
	auths     int
	senders   []string
	rcpts     []string
	accepted  []*intake.Submission
}

var _ Intake = (*fakeIntake)(nil)

var alicePractitioner = &directory.Practitioner{DN: "uid=alice", Mail: alice, Agency: "a", VettingValidUntil: time.Now().Add(time.Hour)}

func (f *fakeIntake) Authenticate(_ context.Context, user, password string, _ intake.Client) (*directory.Practitioner, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auths++
	if f.authErr != nil {
		return nil, f.authErr
	}
	if intake.NormalizeMail(user) != alice || password != alicePw {
		return nil, fault.New(fault.BadCredentials, "", directory.ErrBadCredentials)
	}
	return alicePractitioner, nil
}

func (f *fakeIntake) Sender(_ context.Context, p *directory.Practitioner, from string, _ intake.Client) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.senders = append(f.senders, from)
	if p == nil {
		return fault.New(fault.AuthRequired, "", nil)
	}
	if intake.NormalizeMail(from) != p.Mail {
		return fault.New(fault.SenderMismatch, "", nil)
	}
	return nil
}

func (f *fakeIntake) Recipient(_ context.Context, _ *directory.Practitioner, rcpt string, _ intake.Client) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rcpts = append(f.rcpts, rcpt)
	switch intake.NormalizeMail(rcpt) {
	case bob, carol, alice:
		return nil
	case lapsed:
		return fault.New(fault.NotPermitted, "This recipient cannot send or receive through the gateway: the vetting checks have lapsed and must be renewed by the agency.", directory.ErrVettingLapsed)
	case disabled:
		return fault.New(fault.NotPermitted, "This recipient cannot send or receive through the gateway: the directory account is disabled.", directory.ErrDisabled)
	case downRcpt:
		return fault.New(fault.DirectoryUnavailable, "", directory.ErrUnavailable)
	}
	if strings.HasPrefix(rcpt, "r") && strings.HasSuffix(rcpt, "@b.example") { // r1@b.example, r2@...
		return nil
	}
	return fault.New(fault.UnknownRecipient, "", directory.ErrNotFound)
}

func (f *fakeIntake) Accept(_ context.Context, s *intake.Submission) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cp := *s
	cp.Content = bytes.Clone(s.Content)
	f.accepted = append(f.accepted, &cp)
	if err := intake.CheckContent(s.Content); err != nil {
		return "", err
	}
	if f.acceptErr != nil {
		return "", f.acceptErr
	}
	return fmt.Sprintf("MSG%03d", len(f.accepted)), nil
}

func (f *fakeIntake) counts() (auths, senders, accepted int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.auths, len(f.senders), len(f.accepted)
}

func (f *fakeIntake) last() *intake.Submission {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.accepted) == 0 {
		return nil
	}
	return f.accepted[len(f.accepted)-1]
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// harness is a running server on 127.0.0.1 with both ports.
type harness struct {
	srv         *Server
	in          *fakeIntake
	logs        *logBuffer
	clientTLS   *tls.Config
	submission  string // 587-style address
	submissions string // 465-style address
	served      chan error
}

func start(t testing.TB, in Intake, opt Options) *harness {
	t.Helper()
	return startWith(t, in, opt, nil)
}

// startWith is start with a hook that adjusts the server before it serves.
func startWith(t testing.TB, in Intake, opt Options, configure func(*Server)) *harness {
	t.Helper()
	serverTLS, clientTLS := testTLS(t)
	h := &harness{logs: &logBuffer{}, clientTLS: clientTLS, served: make(chan error, 2)}
	if f, ok := in.(*fakeIntake); ok {
		h.in = f
	}
	opt.TLSConfig = serverTLS
	if opt.Hostname == "" {
		opt.Hostname = "mx.test"
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h.srv = New(in, opt)
	h.srv.sleep = func(context.Context, time.Duration) {} // tests that care replace it
	if configure != nil {
		configure(h.srv)
	}
	l1 := listen(t)
	l2 := listen(t)
	h.submission, h.submissions = l1.Addr().String(), l2.Addr().String()
	go func() { h.served <- h.srv.ServeSubmission(l1) }()
	go func() { h.served <- h.srv.ServeSubmissions(l2) }()
	t.Cleanup(func() { h.srv.Close() })
	return h
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// client speaks raw SMTP lines.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialFrom(t testing.TB, addr, localIP string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

func newClient(t testing.TB, c net.Conn) *client {
	return &client{t: t, conn: c, r: bufio.NewReader(c)}
}

// plain connects to the submission port and reads the greeting.
func (h *harness) plain(t testing.TB) *client {
	c := newClient(t, dialFrom(t, h.submission, ""))
	c.expect("220 ")
	return c
}

// tls connects to the submissions port (implicit TLS) and reads the greeting.
func (h *harness) tls(t testing.TB) *client {
	return h.tlsFrom(t, "")
}

func (h *harness) tlsFrom(t testing.TB, localIP string) *client {
	t.Helper()
	raw := dialFrom(t, h.submissions, localIP)
	tc := tls.Client(raw, h.clientTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, tc)
	c.expect("220 ")
	return c
}

// signedIn is a TLS session after EHLO and a successful AUTH PLAIN as alice.
func (h *harness) signedIn(t testing.TB) *client {
	c := h.tls(t)
	c.ehlo()
	c.cmd("AUTH PLAIN "+plainIR("", alice, alicePw), "235 ")
	return c
}

func plainIR(identity, user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(identity + "\x00" + user + "\x00" + pass))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// reply reads one (possibly multi-line) reply and returns its lines.
func (c *client) reply() ([]string, error) {
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return lines, err
		}
		if !strings.HasSuffix(line, "\r\n") {
			return lines, fmt.Errorf("reply line without CRLF: %q", line)
		}
		line = strings.TrimSuffix(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return lines, nil
		}
	}
}

// expect reads a reply whose last line starts with want and returns it.
func (c *client) expect(want string) string {
	c.t.Helper()
	lines, err := c.reply()
	if err != nil {
		c.t.Fatalf("reading reply (want %q): %v (got %q)", want, err, lines)
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, want) {
		c.t.Fatalf("reply %q, want %q", lines, want)
	}
	return strings.Join(lines, "\n")
}

// cmd sends one command line and expects a reply starting with want.
func (c *client) cmd(line, want string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.expect(want)
}

func (c *client) ehlo() string { return c.cmd("EHLO client.test", "250 ") }

// closed reports whether the server has closed the connection (nothing more to read).
func (c *client) closed() bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.r.ReadByte()
	return err != nil && !isTimeout(err)
}

// quiet reports whether the server sends nothing more within a short time.
func (c *client) quiet() bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	defer c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := c.r.Peek(1)
	return isTimeout(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func tlsClient(t testing.TB, raw net.Conn, h *harness) *tls.Conn {
	t.Helper()
	tc := tls.Client(raw, h.clientTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return tc
}
