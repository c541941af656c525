package integration

// The pickup page end to end, in-process: a store of record holding a real package, the sample
// directory behind the real intake sign-in, the notification built and queued by mailbox.Notify, and
// the pickup handler on an HTTPS server with a certificate from the development CA. Headless Chromium
// follows the link from the queued notification (pickup_scenarios_test.go); curl checks the headers.
// Unlike the rest of this package these tests link the gateway's packages, to move the gateway's clock
// (expiry, TOTP steps) and to reach refusals quickly; the trip through the built binary is
// pickup_binary_test.go (Chromium) and py/test_delivery.py (urllib).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"cafgate/certs/devca"
	"cafgate/configs"
	"cafgate/directory/ldif"
	"cafgate/envelope/pkg"
	"cafgate/gateway/httpd"
	"cafgate/gateway/intake"
	"cafgate/gateway/notify"
	"cafgate/gateway/pickup"
	"cafgate/mailbox"
)

const (
	harriet = "harriet.example@school.cafgate.test"
	gwen    = "gwen.testcase@socialcare.cafgate.test"
)

// pickupClock is the gateway's clock: the tests move it to get fresh TOTP steps and expire links.
type pickupClock struct{ ns atomic.Int64 }

func (c *pickupClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *pickupClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// syncBuffer collects the gateway's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// pickupGateway is the gateway side of the tests.
type pickupGateway struct {
	t         *testing.T
	clk       *pickupClock
	store     *mailbox.Store
	url       string // https://127.0.0.1:PORT
	caFile    string
	dbPath    string
	cert      *x509.Certificate
	logs      *syncBuffer
	pkg       *pkg.Package
	allowed   map[string][]pkg.Section
	withdrawn atomic.Bool
	passwords map[string]string
	secrets   map[string]string // TOTP secrets the test knows
	builder   *notify.Builder
}

const pickupMessage = "MPICKUP0000000001"

func startPickupGateway(t *testing.T, mod func(*pickup.Options)) *pickupGateway {
	t.Helper()
	dir := t.TempDir()
	g := &pickupGateway{t: t, clk: &pickupClock{}, logs: &syncBuffer{},
		passwords: map[string]string{harriet: "harriet-Pa55-word", gwen: "gwen-Pa55-word"}, secrets: map[string]string{},
		allowed: map[string][]pkg.Section{harriet: {pkg.ConclusionsAndActions}, gwen: pkg.AllSections()}}
	g.clk.ns.Store(time.Now().UnixNano())
	log := slog.New(slog.NewJSONHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	g.dbPath = filepath.Join(dir, "cafgate.db")
	st, err := mailbox.Open(ctx, mailbox.Options{Path: g.dbPath, ContentKey: bytes.Repeat([]byte{5}, 32),
		Now: g.clk.Now, Log: log, Ledger: mailbox.LedgerOptions{Interval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g.store = st
	g.acceptPackage()
	for _, m := range []string{harriet} {
		key, _ := totp.Generate(totp.GenerateOpts{Issuer: "cafgate dev", AccountName: m})
		g.secrets[m] = key.Secret()
		if err := st.ImportTOTPSecret(ctx, m, key.Secret()); err != nil {
			t.Fatal(err)
		}
	}
	in := intake.New(g.directory(), st, nil, log, nil)
	opt := pickup.Options{Store: st, Auth: in, Source: pickup.SourceFunc(g.contents), Log: log, Now: g.clk.Now,
		Contact: "help@gw.cafgate.test", IPFailures: 100, LinkFailures: 5}
	if mod != nil {
		mod(&opt)
	}
	h, err := pickup.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	g.serve(dir, h)
	g.builder = &notify.Builder{From: "no-reply@gw.cafgate.test", Report: "help@gw.cafgate.test", BaseURL: g.url + pickup.Prefix,
		Now: g.clk.Now}
	return g
}

// acceptPackage stores the golden health review from priya to harriet and gwen.
func (g *pickupGateway) acceptPackage() {
	raw, err := os.ReadFile("../envelope/pkg/testdata/golden/health-review.eml")
	if err != nil {
		g.t.Fatal(err)
	}
	content := append([]byte("Subject: CAF review for NFS-2026-0042\r\n"), raw...)
	if g.pkg, err = pkg.ParseBytes(content, pkg.Limits{}); err != nil {
		g.t.Fatal(err)
	}
	err = g.store.Accept(context.Background(), &mailbox.Incoming{ID: pickupMessage, Sender: "priya.placeholder@health.cafgate.test",
		SenderDN: "uid=priya.placeholder", Agency: "Riverside Community Health", Recipients: []string{harriet, gwen},
		Via: "submission", RemoteAddr: "192.0.2.7:1234", ReceivedAt: g.clk.Now(), Digest: sha256.Sum256(content), Content: content})
	if err != nil {
		g.t.Fatal(err)
	}
}

// directory is the sample directory with the test's passwords.
func (g *pickupGateway) directory() *ldif.Directory {
	entries, err := ldif.Parse(bytes.NewReader(configs.SampleDirectory))
	if err != nil {
		g.t.Fatal(err)
	}
	d, err := ldif.New(ldif.WithSecrets(entries, g.passwords, nil), "sample",
		[]string{"school.cafgate.test", "health.cafgate.test", "socialcare.cafgate.test", "police.cafgate.test"})
	if err != nil {
		g.t.Fatal(err)
	}
	return d
}

// contents is the PackageSource: the stored message read back and cut down to what the recipient
// may see, as the delivery pipeline does.
func (g *pickupGateway) contents(ctx context.Context, messageID, rcpt string) (*pickup.Contents, error) {
	if g.withdrawn.Load() {
		return nil, pickup.ErrNotAllowed
	}
	m, err := g.store.Message(ctx, messageID)
	if err != nil {
		return nil, err
	}
	p, err := pkg.ParseBytes(m.Content, pkg.Limits{})
	if err != nil {
		return nil, err
	}
	return pickup.FromPackage(p, g.allowed[rcpt])
}

// serve starts the HTTPS server (development CA certificate, TLS 1.2 or later) as gateway/httpd
// would mount the handler.
func (g *pickupGateway) serve(dir string, h *pickup.Handler) {
	ca, err := devca.LoadOrCreate(filepath.Join(dir, "ca"), time.Now())
	if err != nil {
		g.t.Fatal(err)
	}
	g.caFile = devca.CertPath(filepath.Join(dir, "ca"))
	certPath, keyPath, err := ca.IssueTLS(filepath.Join(dir, "tls"), "pickup", []string{"127.0.0.1", "localhost"}, time.Now())
	if err != nil {
		g.t.Fatal(err)
	}
	kp, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		g.t.Fatal(err)
	}
	g.cert, _ = x509.ParseCertificate(kp.Certificate[0])
	conf := &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}
	mux := http.NewServeMux()
	mux.Handle(pickup.Prefix, h)
	srv := &http.Server{Handler: httpd.SecurityHeaders(mux), TLSConfig: conf, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.New(slog.NewTextHandler(io.Discard, nil)).Handler(), slog.LevelDebug)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		g.t.Fatal(err)
	}
	go srv.Serve(tls.NewListener(l, conf))
	g.t.Cleanup(func() { srv.Close() })
	g.url = "https://" + l.Addr().String()
}

var linkInMail = regexp.MustCompile(`https://\S+/pickup/l/\S+`)

// notify issues a link for rcpt, queues its notification, reads the notification back from the queue
// as the relay would send it and returns the link found in it.
func (g *pickupGateway) notify(rcpt string, req mailbox.LinkRequest) (*mailbox.Link, string) {
	g.t.Helper()
	req.MessageID, req.Recipient = pickupMessage, rcpt
	l, err := g.store.Notify(context.Background(), req, g.builder.Build)
	if err != nil {
		g.t.Fatal(err)
	}
	raw, err := g.store.QueueContent(context.Background(), l.QueueID)
	if err != nil {
		g.t.Fatal(err)
	}
	for _, bad := range []string{"NFS-2026-0042", "CAF review", "action-plan", "consent-form", "conclusions-and-actions"} {
		if bytes.Contains(raw, []byte(bad)) {
			g.t.Fatalf("the notification contains %q", bad)
		}
	}
	link := linkInMail.Find(raw)
	if link == nil {
		g.t.Fatalf("no link in the notification:\n%s", raw)
	}
	return l, string(link)
}

// code is mail's TOTP code at the gateway's clock.
func (g *pickupGateway) code(mail string) string {
	g.t.Helper()
	c, err := totp.GenerateCodeCustom(g.secrets[mail], g.clk.Now(), totp.ValidateOpts{Digits: otp.DigitsSix})
	if err != nil {
		g.t.Fatal(err)
	}
	return c
}

// nextStep moves the clock to the next TOTP step, so a new code is due.
func (g *pickupGateway) nextStep() { g.clk.Add(mailbox.TOTPPeriod) }

// allowedDocuments are the documents of the package whose sections are all allowed to rcpt, decoded.
func (g *pickupGateway) allowedDocuments(rcpt string) map[string][]byte {
	may := map[pkg.Section]bool{}
	for _, s := range g.allowed[rcpt] {
		may[s] = true
	}
	out := map[string][]byte{}
	for _, d := range g.pkg.Documents {
		ok := true
		for _, s := range d.Sections {
			ok = ok && may[s]
		}
		if ok {
			b, err := d.Content()
			if err != nil {
				g.t.Fatal(err)
			}
			out[d.Part] = b
		}
	}
	return out
}

// ledger counts ledger events of typ about the package.
func (g *pickupGateway) ledger(typ string) int {
	g.t.Helper()
	db, err := mailbox.OpenLedgerReader(g.dbPath)
	if err != nil {
		g.t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM ledger_events WHERE type = ? AND message_id = ?`, typ, pickupMessage).Scan(&n); err != nil {
		g.t.Fatal(err)
	}
	return n
}

// checkLogs fails when a link token or a password reached the log.
func (g *pickupGateway) checkLogs(tokens ...string) {
	g.t.Helper()
	logs := g.logs.String()
	for _, s := range tokens {
		if s != "" && strings.Contains(logs, s) {
			g.t.Errorf("the log contains %q", s)
		}
	}
	for _, pw := range g.passwords {
		if strings.Contains(logs, pw) {
			g.t.Error("the log contains a password")
		}
	}
}

// tokenOf is the token part of a link.
func tokenOf(link string) string { return link[strings.LastIndex(link, "/")+1:] }
