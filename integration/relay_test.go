// The outbound relay against a real Postfix as the receiving MTA. Unlike the rest of this directory this
// test links the gateway's packages (the store and gateway/relay) instead of running the binary: the
// relay is not yet started by `cafgate serve`. It starts a private Postfix instance (its own
// config_directory, queue and maildirs under a temporary directory, smtpd on a loopback port with a
// certificate from a test CA; the system Postfix is never touched) that delivers dest.test and
// agency.test to maildirs, and checks: a package arrives intact and once; a 5xx answer bounces at once
// and the DSN reaches the sender, where Python's email package reads it as a real mail client would; a
// 4xx answer is retried and then delivered; a host that is down is retried until it is up; a
// certificate that does not verify delivers nothing. The ledger records each step.
package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"cafgate/gateway/relay"
	"cafgate/mailbox"
)

// postfix is one private Postfix instance.
type postfix struct {
	dir, port string
	ca        *x509.CertPool
}

func TestRelayThroughPostfix(t *testing.T) {
	if testing.Short() {
		t.Skip("Postfix relay test skipped in -short mode")
	}
	pf := startPostfix(t)
	clk := &itClock{t: time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC)}
	st, dbPath := openItStore(t, clk)
	down := false
	var mu sync.Mutex
	opt := relay.Options{
		Hostname: "gw.test", Now: clk.Now, Rand: func() float64 { return 0.5 }, RootCAs: pf.ca,
		ConnectTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second, DataTimeout: 10 * time.Second, Lease: 2 * time.Minute,
		Resolver: fixedMX{"dest.test": "mx.dest.test", "agency.test": "mx.dest.test"},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			defer mu.Unlock()
			if addr != "mx.dest.test:25" || down {
				return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("connection refused")}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, "127.0.0.1:"+pf.port)
		},
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	rl, err := relay.New(st, opt)
	if err != nil {
		t.Fatal(err)
	}
	flush := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pf.setAccess(t, "later@dest.test 451 4.7.1 greylisted, try again later\n")
	bob := enqueueIt(t, st, "bob@dest.test")
	nobody := enqueueIt(t, st, "nobody@dest.test")
	later := enqueueIt(t, st, "later@dest.test")
	flush()

	wantState(t, st, bob, mailbox.QueueDelivered, "250 2.0.0 Ok")
	wantState(t, st, nobody, mailbox.QueueFailed, "550 5.1.1")
	wantState(t, st, later, mailbox.QueueQueued, "greylisted, try again later")
	body := pf.waitMaildir(t, "bob", 1)[0]
	if !bytes.HasSuffix(body, bytes.ReplaceAll(itPackage("bob@dest.test"), []byte("\r\n"), []byte("\n"))) {
		t.Fatalf("bob's copy differs from what was queued:\n%s", body)
	}
	dsnFile := pf.waitMaildirFiles(t, "alice", 1)[0]
	checkDSNWithPython(t, dsnFile)
	// Postfix offers PIPELINING and CHUNKING, so the three copies went in one session as one pipelined
	// group of transactions (MAIL, RCPT, BDAT LAST, and RSET between them), the refused RCPTs' chunks
	// included: its smtpd counts the commands of each session when it ends.
	pf.waitLog(t, regexp.MustCompile(`disconnect from .* mail=3 rcpt=1/3 bdat=1/3 rset=[1-9]`))

	// The 4xx goes away; the retry after the backoff delivers.
	pf.setAccess(t, "")
	clk.Advance(5 * time.Minute)
	flush()
	wantState(t, st, later, mailbox.QueueDelivered, "250 2.0.0 Ok")
	pf.waitMaildir(t, "later", 1)

	// The host is down for a while, then up again.
	mu.Lock()
	down = true
	mu.Unlock()
	carol := enqueueIt(t, st, "carol@dest.test")
	flush()
	wantState(t, st, carol, mailbox.QueueQueued, "could not connect")
	mu.Lock()
	down = false
	mu.Unlock()
	clk.Advance(5 * time.Minute)
	flush()
	wantState(t, st, carol, mailbox.QueueDelivered, "250 2.0.0 Ok")
	pf.waitMaildir(t, "carol", 1)

	// A certificate the relay cannot verify: nothing is delivered, the reason is recorded.
	opt.RootCAs = x509.NewCertPool()
	strict, err := relay.New(st, opt)
	if err != nil {
		t.Fatal(err)
	}
	dave := enqueueIt(t, st, "dave@dest.test")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := strict.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wantState(t, st, dave, mailbox.QueueQueued, "did not verify")
	time.Sleep(time.Second)
	if n := len(pf.maildirFiles(t, "dave")); n != 0 {
		t.Fatalf("dave got %d messages over TLS that did not verify", n)
	}

	// Exactly once: nothing arrived twice.
	for box, n := range map[string]int{"bob": 1, "later": 1, "carol": 1, "alice": 1} {
		if got := len(pf.maildirFiles(t, box)); got != n {
			t.Errorf("%s's maildir holds %d messages, want %d", box, got, n)
		}
	}
	st.Close()
	wantLedger(t, dbPath, map[string]string{
		bob: "queued,relayed", nobody: "queued,bounced", later: "queued,deferred,relayed",
		carol: "queued,deferred,relayed", dave: "queued,deferred",
	})
}

// startPostfix configures and starts a private instance; it is stopped at cleanup.
func startPostfix(t *testing.T) *postfix {
	t.Helper()
	return startPostfixFor(t, "dest.test agency.test", "bob@dest.test bob/\nlater@dest.test later/\ncarol@dest.test carol/\n"+
		"dave@dest.test dave/\nalice@agency.test alice/\n")
}

// startPostfixFor is startPostfix receiving for domains (space-separated) into the maildirs that
// vmailbox (Postfix's virtual_mailbox_maps: "address dir/" lines) names.
func startPostfixFor(t *testing.T, domains, vmailbox string) *postfix {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("!!!!! SKIPPED: starting a private Postfix needs root")
	}
	installPostfix(t)
	dir, err := os.MkdirTemp("", "cafgate-relay-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // postfix's daemons must reach their directories
		t.Fatal(err)
	}
	pf := &postfix{dir: dir, port: freePort(t)}
	for _, d := range []string{"etc", "spool", "data", "mail"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		t.Fatal(err)
	}
	chown(t, filepath.Join(dir, "mail"), nobody.Uid, nobody.Gid)
	chown(t, filepath.Join(dir, "data"), pfUser.Uid, "0")
	pf.ca = writeServerCert(t, filepath.Join(dir, "etc"), "mx.dest.test")
	writeFile(t, filepath.Join(dir, "etc", "vmailbox"), vmailbox)
	pf.setAccess(t, "")
	writeFile(t, filepath.Join(dir, "etc", "main.cf"), postfixMainCf(dir, nobody.Uid, nobody.Gid, domains))
	writeFile(t, filepath.Join(dir, "etc", "master.cf"), postfixMasterCf(pf.port))
	if out, err := exec.Command("postfix", "-c", filepath.Join(dir, "etc"), "check").CombinedOutput(); err != nil {
		t.Fatalf("postfix check: %v\n%s", err, out)
	}
	if out, err := exec.Command("postfix", "-c", filepath.Join(dir, "etc"), "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
		t.Fatalf("postfix start: %v\n%s\n%s", err, out, log)
	}
	t.Cleanup(func() {
		exec.Command("postfix", "-c", filepath.Join(dir, "etc"), "stop").Run()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
			t.Logf("postfix maillog:\n%s", log)
		}
	})
	waitPort(t, "127.0.0.1:"+pf.port)
	return pf
}

// installPostfix installs the Debian package if postfix is missing, without configuring the system
// instance ("No configuration": no main.cf, so nothing of it starts).
func installPostfix(t *testing.T) {
	if _, err := exec.LookPath("postfix"); err == nil {
		return
	}
	sh := `echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections &&
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix`
	if out, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
		t.Skipf("!!!!! SKIPPED: postfix is not installed and installing it failed: %v\n%s", err, out)
	}
}

func postfixMainCf(dir, uid, gid, domains string) string {
	return fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/spool
data_directory = %[1]s/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
syslog_name = postfix-relay-test
myhostname = mx.dest.test
mydomain = dest.test
mydestination =
relay_domains =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
biff = no
virtual_mailbox_domains = %[4]s
virtual_mailbox_base = %[1]s/mail
virtual_mailbox_maps = texthash:%[1]s/etc/vmailbox
virtual_uid_maps = static:%[2]s
virtual_gid_maps = static:%[3]s
smtpd_recipient_restrictions = check_recipient_access texthash:%[1]s/etc/access, permit
smtpd_tls_security_level = may
smtpd_tls_cert_file = %[1]s/etc/server.pem
smtpd_tls_key_file = %[1]s/etc/server.key
smtpd_tls_session_cache_database =
smtpd_tls_received_header = yes
`, dir, uid, gid, domains)
}

func postfixMasterCf(port string) string {
	return `127.0.0.1:` + port + ` inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
tlsmgr    unix - - n 1000? 1 tlsmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
virtual   unix - n n - - virtual
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`
}

// setAccess replaces the recipient access table and makes smtpd read it again.
func (pf *postfix) setAccess(t *testing.T, table string) {
	t.Helper()
	writeFile(t, filepath.Join(pf.dir, "etc", "access"), table)
	if _, err := os.Stat(filepath.Join(pf.dir, "spool", "pid", "master.pid")); err == nil {
		if out, err := exec.Command("postfix", "-c", filepath.Join(pf.dir, "etc"), "reload").CombinedOutput(); err != nil {
			t.Fatalf("postfix reload: %v\n%s", err, out)
		}
		time.Sleep(500 * time.Millisecond) // the master restarts its children
		waitPort(t, "127.0.0.1:"+pf.port)
	}
}

func (pf *postfix) maildirFiles(t *testing.T, box string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(pf.dir, "mail", box, "new", "*"))
	return files
}

// waitMaildirFiles waits until box holds n delivered messages and returns their paths.
func (pf *postfix) waitMaildirFiles(t *testing.T, box string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		files := pf.maildirFiles(t, box)
		if len(files) >= n {
			return files
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(pf.dir, "maillog"))
			t.Fatalf("%s's maildir holds %d messages after 30s, want %d\n%s", box, len(files), n, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLog waits up to 30 s for a line of Postfix's log that re matches.
func (pf *postfix) waitLog(t *testing.T, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		log, _ := os.ReadFile(filepath.Join(pf.dir, "maillog"))
		if re.Match(log) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line of Postfix's log matches %s after 30s:\n%s", re, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (pf *postfix) waitMaildir(t *testing.T, box string, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for _, f := range pf.waitMaildirFiles(t, box, n) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// checkDSNWithPython parses the delivered DSN with Python's email package (stdlib), as a mail client
// of the sender would, and checks what it finds.
func checkDSNWithPython(t *testing.T, path string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("!!!!! SKIPPED: python3 not installed")
	}
	out, err := exec.Command(py, "-c", pythonDSNCheck, path).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python printed %q: %v", out, err)
	}
	want := map[string]any{
		"type": "multipart/report", "report_type": "delivery-status", "defects": 0.0,
		"parts":            []any{"text/plain", "message/delivery-status", "text/rfc822-headers"},
		"return_path":      "<>",
		"action":           "failed",
		"status":           "5.1.1",
		"final_recipient":  "rfc822; nobody@dest.test",
		"remote_mta":       "dns; mx.dest.test",
		"original_msg_id":  "<pkg.nobody.dest.test@gw.test>",
		"body_leaked":      false,
		"diag_has_unknown": true,
	}
	for k, w := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(w) {
			t.Errorf("python saw %s = %v, want %v (all: %v)", k, got[k], w, got)
		}
	}
}

const pythonDSNCheck = `
import sys, json, email
from email import policy
raw = open(sys.argv[1], 'rb').read()
m = email.message_from_bytes(raw, policy=policy.default)
parts = list(m.iter_parts())
blocks = parts[1].get_payload()
headers = email.message_from_string(parts[2].get_content(), policy=policy.default)
rcpt = blocks[1]
print(json.dumps({
    "type": m.get_content_type(), "report_type": m.get_param("report-type"),
    "parts": [p.get_content_type() for p in parts],
    "defects": sum(len(p.defects) for p in m.walk()),
    "return_path": str(m["Return-Path"]),
    "action": str(rcpt["Action"]), "status": str(rcpt["Status"]),
    "final_recipient": str(rcpt["Final-Recipient"]), "remote_mta": str(rcpt["Remote-MTA"]),
    "diag_has_unknown": "User unknown" in str(rcpt["Diagnostic-Code"]),
    "original_msg_id": str(headers["Message-ID"]),
    "body_leaked": b"SECRET-BODY" in raw,
}))
`

// fixedMX answers MX look-ups from a table of domain to one MX host.
type fixedMX map[string]string

func (f fixedMX) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if h, ok := f[name]; ok {
		return []*net.MX{{Host: h + ".", Pref: 10}}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f fixedMX) LookupHost(_ context.Context, host string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

type itClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *itClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *itClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openItStore(t *testing.T, clk *itClock) (*mailbox.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cafgate.db")
	st, err := mailbox.Open(context.Background(), mailbox.Options{Path: path, ContentKey: bytes.Repeat([]byte{3}, 32), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	content := []byte("Subject: x\r\n\r\nsubmitted\r\n")
	err = st.Accept(context.Background(), &mailbox.Incoming{ID: "m1", Sender: "alice@agency.test", Recipients: []string{"bob@dest.test"},
		Via: "submission", ReceivedAt: clk.Now(), Digest: sha256.Sum256(content), Content: content})
	if err != nil {
		t.Fatal(err)
	}
	return st, path
}

func itPackage(rcpt string) []byte {
	return []byte(fmt.Sprintf("Message-ID: <pkg.%s@gw.test>\r\nDate: Tue, 04 Mar 2025 09:00:00 +0000\r\n"+
		"From: alice@agency.test\r\nTo: %s\r\nSubject: sealed\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAxggE=\r\n.a line starting with a dot\r\nSECRET-BODY\r\n",
		strings.ReplaceAll(rcpt, "@", "."), rcpt))
}

func enqueueIt(t *testing.T, st *mailbox.Store, rcpt string) string {
	t.Helper()
	ids, err := st.Enqueue(context.Background(), &mailbox.Outbound{MessageID: "m1", From: "alice@agency.test", Recipient: rcpt,
		Content: itPackage(rcpt)})
	if err != nil {
		t.Fatal(err)
	}
	return ids[0]
}

func wantState(t *testing.T, st *mailbox.Store, id, state, answer string) {
	t.Helper()
	e, err := st.QueueGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if e.State != state || !strings.Contains(e.LastAnswer, answer) {
		t.Fatalf("%s (%s): state %s, answer %q; want %s, %q", id, e.Recipient, e.State, e.LastAnswer, state, answer)
	}
}

// wantLedger checks the ledger events written about each queue entry, in order.
func wantLedger(t *testing.T, dbPath string, want map[string]string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for id, w := range want {
		rows, err := db.Query(`SELECT type FROM ledger_events WHERE json_extract(data, '$.queue_id') = ? ORDER BY seq`, id)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var typ string
			rows.Scan(&typ)
			got = append(got, typ)
		}
		rows.Close()
		if strings.Join(got, ",") != w {
			t.Errorf("ledger for %s: %s, want %s", id, strings.Join(got, ","), w)
		}
	}
}

// writeServerCert writes a test CA's server certificate for name (server.pem, server.key) into dir and
// returns the pool that trusts it.
func writeServerCert(t *testing.T, dir, name string) *x509.CertPool {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relay test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	writeFile(t, filepath.Join(dir, "server.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	if err := os.WriteFile(filepath.Join(dir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, path, uid, gid string) {
	t.Helper()
	var u, g int
	fmt.Sscan(uid, &u)
	fmt.Sscan(gid, &g)
	if err := os.Chown(path, u, g); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func waitPort(t *testing.T, addr string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}
