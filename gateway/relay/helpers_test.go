// Test helpers: a store of record with an accepted message, a receiving MTA (go-smtp's server on
// 127.0.0.1:0, real SMTP, with a test CA's certificate), a fake clock, DNS and dialer.

package relay

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"cafgate/mailbox"
)

var tStart = time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testCA is a CA and a server certificate it issued for the given names.
type testCA struct {
	pool *x509.CertPool
	cert tls.Certificate
}

func newTestCA(t testing.TB, names ...string) *testCA {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relay test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &testCA{pool: pool, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// received is one message the test MTA accepted.
type received struct {
	from, rcpt string
	data       []byte
	helo       string
	tls        bool
	user       string
	bdat       bool // the content came in BDAT chunks, not after DATA
}

// mta is a receiving MTA. answer decides the reply to each RCPT (nil accepts); it sees how many
// times that recipient was tried.
type mta struct {
	addr     string
	mu       sync.Mutex
	got      []received
	tries    map[string]int
	answer   func(rcpt string, try int) *smtp.SMTPError
	dataAns  func(rcpt string, data []byte) *smtp.SMTPError // the answer at the end of the data; nil accepts
	password string                                         // when set, AUTH PLAIN with user "relay" is offered and required
	conns    map[string]bool                                // client addresses of the connections accepted
	open     []*smtp.Conn                                   // every connection accepted, for closeConns
}

// closeConns cuts every connection the MTA has accepted, as a crash or a network fault would.
func (m *mta) closeConns() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.open {
		c.Conn().Close()
	}
}

type mtaOpts struct {
	tls      *tls.Config // STARTTLS offered when set
	implicit bool        // TLS from the first byte
	password string
	answer   func(rcpt string, try int) *smtp.SMTPError
	dataAns  func(rcpt string, data []byte) *smtp.SMTPError
}

func startMTA(t testing.TB, o mtaOpts) *mta {
	t.Helper()
	m := &mta{tries: map[string]int{}, answer: o.answer, dataAns: o.dataAns, password: o.password, conns: map[string]bool{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		m.mu.Lock()
		m.conns[c.Conn().RemoteAddr().String()] = true // go-smtp starts a new session after STARTTLS
		m.open = append(m.open, c)
		m.mu.Unlock()
		return &mtaSession{m: m, c: c}, nil
	}))
	srv.Domain = "mx.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = quietLog{}
	if !o.implicit {
		srv.TLSConfig = o.tls
	}
	srv.AllowInsecureAuth = o.tls == nil
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.implicit {
		l = tls.NewListener(l, o.tls)
	}
	m.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return m
}

func (m *mta) messages() []received {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]received(nil), m.got...)
}

func (m *mta) triesOf(rcpt string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tries[rcpt]
}

type quietLog struct{}

func (quietLog) Printf(string, ...any) {}
func (quietLog) Println(...any)        {}

type mtaSession struct {
	m          *mta
	c          *smtp.Conn
	from, rcpt string
	user       string
}

func (s *mtaSession) Reset()        { s.from, s.rcpt = "", "" }
func (s *mtaSession) Logout() error { return nil }
func (s *mtaSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.m.password != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *mtaSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.m.mu.Lock()
	s.m.tries[to]++
	try := s.m.tries[to]
	s.m.mu.Unlock()
	if s.m.answer != nil {
		if e := s.m.answer(to, try); e != nil {
			return e
		}
	}
	s.rcpt = to
	return nil
}

func (s *mtaSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.m.dataAns != nil {
		if e := s.m.dataAns(s.rcpt, b); e != nil {
			return e
		}
	}
	_, isTLS := s.c.TLSConnectionState()
	_, bdat := r.(*io.PipeReader) // go-smtp hands BDAT chunks through a pipe, DATA through its dot reader
	s.m.mu.Lock()
	s.m.got = append(s.m.got, received{from: s.from, rcpt: s.rcpt, data: b, helo: s.c.Hostname(), tls: isTLS, user: s.user, bdat: bdat})
	s.m.mu.Unlock()
	return nil
}

func (s *mtaSession) AuthMechanisms() []string {
	if s.m.password == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *mtaSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "relay" || pass != s.m.password {
			return smtp.ErrAuthFailed
		}
		s.user = user
		return nil
	}), nil
}

// resolver answers MX look-ups from a table; a missing domain is "not found".
type resolver struct {
	mx    map[string][]*net.MX
	hosts map[string]bool
}

func (r resolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if mx, ok := r.mx[name]; ok {
		return mx, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (r resolver) LookupHost(_ context.Context, host string) ([]string, error) {
	if r.hosts[host] {
		return []string{"127.0.0.1"}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// dialer maps host:port to a test listener's address; anything else is refused.
func dialer(table map[string]string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		to, ok := table[addr]
		if !ok {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, to)
	}
}

// rig is a store with one accepted message, a clock and relay options pointing at test MTAs.
type rig struct {
	store *mailbox.Store
	clock *clock
	opt   Options
	ca    *testCA
	log   *syncWriter
}

func newRig(t *testing.T) *rig {
	t.Helper()
	clk := &clock{t: tStart}
	key := bytes.Repeat([]byte{9}, 32)
	st, err := mailbox.Open(context.Background(), mailbox.Options{Path: filepath.Join(t.TempDir(), "q.db"), ContentKey: key, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	content := []byte("Subject: x\r\n\r\nsubmitted\r\n")
	err = st.Accept(context.Background(), &mailbox.Incoming{ID: "m1", Sender: "alice@agency.test", Recipients: []string{"bob@council.test"},
		Via: "submission", ReceivedAt: tStart, Digest: sha256.Sum256(content), Content: content})
	if err != nil {
		t.Fatal(err)
	}
	logBuf := &syncWriter{w: &bytes.Buffer{}}
	r := &rig{store: st, clock: clk, ca: newTestCA(t, "mx.council.test", "smart.test"), log: logBuf}
	r.opt = Options{
		Hostname: "gw.test", Now: clk.Now, Rand: func() float64 { return 0.5 }, RootCAs: r.ca.pool,
		ConnectTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second, DataTimeout: 5 * time.Second, Lease: time.Minute,
		RetryMin: 5 * time.Minute, RetryMax: time.Hour, Lifetime: 24 * time.Hour, DelayWarning: 4 * time.Hour,
		Log: slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	return r
}

// serverTLS is the TLS configuration of an MTA presenting the rig's certificate.
func (r *rig) serverTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{r.ca.cert}}
}

// mx points the MX of council.test (the recipients) and agency.test (the sender, who gets the DSNs)
// at m.
func (r *rig) mx(m *mta) {
	r.opt.Resolver = resolver{mx: map[string][]*net.MX{
		"council.test": {{Host: "mx.council.test.", Pref: 10}},
		"agency.test":  {{Host: "mx.council.test.", Pref: 10}},
	}}
	r.opt.Dial = dialer(map[string]string{"mx.council.test:25": m.addr})
}

func (r *rig) relay(t *testing.T) *Relay {
	t.Helper()
	rl, err := New(r.store, r.opt)
	if err != nil {
		t.Fatal(err)
	}
	return rl
}

func pkg(rcpt string) []byte {
	return []byte(fmt.Sprintf("Message-ID: <pkg.%s@gw.test>\r\nFrom: alice@agency.test\r\nTo: %s\r\nSubject: sealed\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\n"+
		"MIAGCSqGSIb3DQEHA6CAMIACAQAxggE=\r\n.leading dot line\r\nSECRET-BODY\r\n", strings.ReplaceAll(rcpt, "@", "."), rcpt))
}

func (r *rig) enqueue(t *testing.T, rcpt string) string {
	t.Helper()
	ids, err := r.store.Enqueue(context.Background(), &mailbox.Outbound{MessageID: "m1", From: "alice@agency.test",
		Recipient: rcpt, Content: pkg(rcpt)})
	if err != nil {
		t.Fatal(err)
	}
	return ids[0]
}

func (r *rig) flush(t *testing.T, rl *Relay) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) entry(t *testing.T, id string) *mailbox.QueueEntry {
	t.Helper()
	e, err := r.store.QueueGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// dsns returns the DSN entries queued about entry id (all states).
func (r *rig) dsns(t *testing.T, id string) []mailbox.QueueEntry {
	t.Helper()
	all, err := r.store.QueueList(context.Background(), mailbox.QueueFilter{MessageID: "m1", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []mailbox.QueueEntry
	for _, e := range all {
		if e.Kind == mailbox.KindDSN && strings.HasPrefix(e.About, id+"/") {
			out = append(out, e)
		}
	}
	return out
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
