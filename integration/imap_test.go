// The hosted IMAP mailboxes with Python's imaplib as the client. Like relay_test.go this test links the
// gateway's packages instead of running the binary, because cafgate does not start the IMAP server
// yet: it starts gateway/imapd in-process on loopback over a real store, delivers through the store as
// the pipeline does, and runs integration/py/imap_check.py against it (STARTTLS and LOGINDISABLED,
// implicit TLS with a verified certificate, refused sign-ins, special-use folders, FETCH of the exact
// bytes delivered, flags, SEARCH, COPY/MOVE with COPYUID, APPEND with APPENDUID, EXPUNGE, and IDLE
// announcing a delivery within two seconds). imap_dev_test.go runs the same script against `cafgate dev`
// once the binary lists its IMAP listeners.
package integration_test

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cafgate/certs/devca"
	"cafgate/directory"
	"cafgate/gateway/imapd"
	"cafgate/gateway/intake"
	"cafgate/mailbox"
)

// imapDir is a small in-memory directory: an active practitioner, a lapsed and a disabled one.
type imapDir struct {
	ents map[string]*directory.Practitioner
}

func newIMAPDir() *imapDir {
	future := time.Now().Add(24 * time.Hour)
	d := &imapDir{ents: map[string]*directory.Practitioner{}}
	for mail, st := range map[string]string{"bob@council.cafgate.test": "active", "lapsed@council.cafgate.test": "lapsed",
		"off@council.cafgate.test": "disabled"} {
		p := &directory.Practitioner{DN: "uid=" + mail, Mail: mail, Agency: "council", VettingValidUntil: future}
		switch st {
		case "lapsed":
			p.VettingValidUntil = time.Now().Add(-time.Hour)
		case "disabled":
			p.Disabled = true
		}
		d.ents[mail] = p
	}
	return d
}

func imapPassword(mail string) string { return "pw-" + strings.SplitN(mail, "@", 2)[0] + "-2f9q" }

func (d *imapDir) Authenticate(_ context.Context, mail, pw string) (*directory.Practitioner, error) {
	p, ok := d.ents[mail]
	if !ok || pw != imapPassword(mail) {
		return nil, directory.ErrBadCredentials
	}
	c := *p
	return &c, nil
}

func (d *imapDir) Lookup(_ context.Context, mail string) (*directory.Practitioner, error) {
	p, ok := d.ents[mail]
	if !ok {
		return nil, directory.ErrNotFound
	}
	c := *p
	return &c, nil
}

func imapMessage(n int) []byte {
	return []byte(fmt.Sprintf("From: <priya.placeholder@health.cafgate.test>\r\nTo: <bob@council.cafgate.test>\r\n"+
		"Subject: [CAF-2026-000001] package %d\r\nMessage-ID: <imap-it-%d-%d@cafgate.test>\r\nDate: Tue, 4 Mar 2025 05:06:07 +0000\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAxggE%d\r\n", n, n, time.Now().UnixNano(), n))
}

func TestIMAPWithImaplib(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is required (integration/ci.sh installs it)")
	}
	dir := t.TempDir()
	now := time.Now()
	ca, err := devca.LoadOrCreate(filepath.Join(dir, "ca"), now)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath, err := ca.IssueTLS(filepath.Join(dir, "tls"), "imap", []string{"localhost", "127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "cafgate.db")
	store, err := mailbox.Open(context.Background(), mailbox.Options{Path: dbPath, ContentKey: make([]byte, 32),
		Ledger: mailbox.LedgerOptions{Interval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var logs strings.Builder
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	notifier := mailbox.NewNotifier()
	in := intake.New(newIMAPDir(), store, nil, log, nil)
	srv := imapd.New(in, store, imapd.Options{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Notifier: notifier, Events: store, Log: log, IdlePoll: time.Hour,
		Hosted: func(mail string) bool { return strings.HasSuffix(mail, "@council.cafgate.test") }})
	defer srv.Close()
	ports := map[string]string{}
	for name, serve := range map[string]func(net.Listener) error{"imaps": srv.ServeIMAPS, "imap": srv.ServeIMAP} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[name] = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		go serve(ln)
	}

	const user = "bob@council.cafgate.test"
	first := imapMessage(1)
	deliver := func(content []byte, pkg string) {
		if _, err := store.DeliverToMailbox(context.Background(), &mailbox.Delivery{MessageID: pkg, Recipient: user, Content: content}); err != nil {
			t.Errorf("delivery: %v", err)
		}
		notifier.Notify(user)
	}
	deliver(first, "PKG1")
	expect := filepath.Join(dir, "expect.eml")
	if err := os.WriteFile(expect, first, 0o600); err != nil {
		t.Fatal(err)
	}
	trigger := filepath.Join(dir, "trigger")
	stop := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Add(1)
	go func() { // the script asks for one more delivery while it idles
		defer watcher.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := os.Stat(trigger); err == nil {
				os.Remove(trigger)
				deliver(imapMessage(2), "PKG2")
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", "imap_check.py")
	cmd.Dir = "py"
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1",
		"CAFGATE_IMAP_HOST=127.0.0.1", "CAFGATE_IMAP_SERVER_NAME=localhost",
		"CAFGATE_IMAPS_PORT="+ports["imaps"], "CAFGATE_IMAP_PORT="+ports["imap"],
		"CAFGATE_IMAP_CA="+devca.CertPath(filepath.Join(dir, "ca")),
		"CAFGATE_IMAP_USER="+user, "CAFGATE_IMAP_PASSWORD="+imapPassword(user),
		"CAFGATE_IMAP_REFUSED=lapsed@council.cafgate.test:"+imapPassword("lapsed@council.cafgate.test")+
			",off@council.cafgate.test:"+imapPassword("off@council.cafgate.test"),
		"CAFGATE_IMAP_EXPECT_FILE="+expect, "CAFGATE_IMAP_TRIGGER="+trigger)
	out, err := cmd.CombinedOutput()
	close(stop)
	watcher.Wait()
	t.Logf("python3 imap_check.py:\n%s", out)
	if err != nil {
		t.Fatalf("imap_check.py failed: %v", err)
	}
	if !strings.Contains(string(out), "Ran 9 tests") {
		t.Errorf("imap_check.py did not run its 9 tests")
	}
	logMu.Lock()
	text := logs.String()
	logMu.Unlock()
	for _, secret := range []string{imapPassword(user), "MIAGCSqGSIb3DQEHA6CAMIACAQAxggE", "package 1", "my own copy"} {
		if strings.Contains(text, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
	if strings.Contains(text, "panic") {
		t.Errorf("a panic was logged:\n%s", text)
	}
	checkIMAPLedger(t, dbPath)
}

// checkIMAPLedger: both deliveries are in the ledger with the hosted mailbox, and the sign-ins too.
func checkIMAPLedger(t *testing.T, dbPath string) {
	t.Helper()
	db, err := mailbox.OpenLedgerReader(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(q string, args ...any) int {
		var n int
		if err := db.QueryRow(q, args...).Scan(&n); err != nil && !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM ledger_events WHERE type = 'delivered' AND message_id IN ('PKG1', 'PKG2')
		AND json_extract(data, '$.mailbox') = 'INBOX' AND json_extract(data, '$.recipient') = 'bob@council.cafgate.test'`); n != 2 {
		t.Errorf("%d delivered events, want 2", n)
	}
	if n := count(`SELECT count(*) FROM ledger_events WHERE type = 'signin' AND json_extract(data, '$.via') IN ('imap', 'imaps')`); n < 5 {
		t.Errorf("%d imap sign-in events", n)
	}
	if n := count(`SELECT count(*) FROM ledger_events WHERE type = 'signin-failed' AND instr(data, '-2f9q') > 0`); n != 0 {
		t.Errorf("a password reached the ledger")
	}
}

type lockedWriter struct {
	b  *strings.Builder
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
