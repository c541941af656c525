package imapd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"cafgate/directory"
	"cafgate/gateway/intake"
	"cafgate/mailbox"
)

// fakeDir is an in-memory directory: mail -> password and entry.
type fakeDir struct {
	mu    sync.Mutex
	pw    map[string]string
	ents  map[string]*directory.Practitioner
	down  bool
	calls int
}

func newFakeDir() *fakeDir {
	d := &fakeDir{pw: map[string]string{}, ents: map[string]*directory.Practitioner{}}
	future := time.Now().Add(365 * 24 * time.Hour)
	d.add("bob@council.example", "bob-pw", future, false)
	d.add("carol@council.example", "carol-pw", future, false)
	d.add("lapsed@council.example", "lapsed-pw", time.Now().Add(-time.Hour), false)
	d.add("off@council.example", "off-pw", future, true)
	d.add("ext@elsewhere.example", "ext-pw", future, false)
	return d
}

func (d *fakeDir) add(mail, pw string, until time.Time, disabled bool) {
	d.pw[mail] = pw
	d.ents[mail] = &directory.Practitioner{DN: "uid=" + mail, Mail: mail, Agency: "council", VettingValidUntil: until, Disabled: disabled}
}

func (d *fakeDir) Authenticate(_ context.Context, mail, pw string) (*directory.Practitioner, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.down {
		return nil, directory.ErrUnavailable
	}
	if want, ok := d.pw[mail]; !ok || want != pw {
		return nil, directory.ErrBadCredentials
	}
	p := *d.ents[mail]
	return &p, nil
}

func (d *fakeDir) Lookup(_ context.Context, mail string) (*directory.Practitioner, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return nil, directory.ErrUnavailable
	}
	p, ok := d.ents[mail]
	if !ok {
		return nil, directory.ErrNotFound
	}
	c := *p
	return &c, nil
}

func (d *fakeDir) set(f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f()
}

// env is one running server over a fresh store.
type env struct {
	srv       *Server
	store     *mailbox.Store
	dbPath    string
	dir       *fakeDir
	notifier  *mailbox.Notifier
	imaps     string
	imap      string
	clientTLS *tls.Config
	logs      *logBuffer
}

func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// logBuffer keeps every log record's text, to check what is (never) logged.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startEnv(t testing.TB, mutate func(*Options)) *env {
	t.Helper()
	key := make([]byte, 32)
	dbPath := filepath.Join(t.TempDir(), "m.db")
	store, err := mailbox.Open(context.Background(), mailbox.Options{Path: dbPath, ContentKey: key,
		Ledger: mailbox.LedgerOptions{Interval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, cliTLS := testTLS(t)
	e := &env{store: store, dbPath: dbPath, dir: newFakeDir(), notifier: mailbox.NewNotifier(), clientTLS: cliTLS, logs: &logBuffer{}}
	opt := Options{TLSConfig: srvTLS, Notifier: e.notifier, Events: store, AuthDelay: time.Millisecond, AuthMaxDelay: 2 * time.Millisecond,
		Hosted: func(mail string) bool { return strings.HasSuffix(mail, "@council.example") },
		Log:    slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mutate != nil {
		mutate(&opt)
	}
	in := intake.New(e.dir, nil, nil, slog.New(slog.NewTextHandler(e.logs, nil)), nil)
	e.srv = New(in, store, opt)
	for _, l := range []struct {
		addr  *string
		serve func(net.Listener) error
	}{{&e.imaps, e.srv.ServeIMAPS}, {&e.imap, e.srv.ServeIMAP}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		*l.addr = ln.Addr().String()
		go l.serve(ln)
	}
	t.Cleanup(func() {
		e.srv.Close()
		store.Close()
		if strings.Contains(e.logs.String(), "panic") {
			t.Errorf("a panic was logged:\n%s", e.logs.String())
		}
	})
	return e
}

// dial opens an IMAPS client; h may be nil.
func (e *env) dial(t testing.TB, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(e.imaps, &imapclient.Options{TLSConfig: e.clientTLS, UnilateralDataHandler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// login opens an IMAPS client signed in as mail.
func (e *env) login(t testing.TB, mail string, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c := e.dial(t, h)
	if err := c.Login(mail, e.dir.pw[mail]).Wait(); err != nil {
		t.Fatalf("login %s: %v", mail, err)
	}
	return c
}

// deliver puts a message into mail's INBOX as the delivery pipeline does, and notifies.
func (e *env) deliver(t testing.TB, mail string, content []byte) *mailbox.Delivered {
	t.Helper()
	d, err := e.store.DeliverToMailbox(context.Background(), &mailbox.Delivery{MessageID: "PKG", Recipient: mail, Content: content})
	if err != nil {
		t.Fatal(err)
	}
	e.notifier.Notify(mail)
	return d
}

func message(n int, subject string) []byte {
	return []byte(fmt.Sprintf("From: Alice <alice@agency.example>\r\nTo: bob@council.example\r\nSubject: %s\r\n"+
		"Message-ID: <m%d@cafgate.test>\r\nDate: Tue, 4 Mar 2025 05:06:07 +0000\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\nTUlNRSBib2R5IG51bWJlciAl%d\r\n", subject, n, n))
}

// imapCode returns the response code of an IMAP error, or "".
func imapCode(err error) imap.ResponseCode {
	if ie, ok := err.(*imap.Error); ok {
		return ie.Code
	}
	return ""
}
