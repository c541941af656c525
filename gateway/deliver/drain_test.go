package deliver

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cafgate/certs/validate"
	"cafgate/directory"
	"cafgate/envelope/cms"
	"cafgate/mailbox"
	"cafgate/policy"
)

var drainPackages = flag.Int("drain.packages", 100, "packages of 3 recipients each in BenchmarkDrain's store")

var drainSign = flag.String("drain.sign", "rsa", "the gateway's signing key in the drain rig: rsa (its RSA-2048 S/MIME key) or p256 (a separate ECDSA P-256 signing certificate naming the RSA one for replies)")

// drainSignKey is the gateway's P-256 signing key for -drain.sign=p256, made once.
var drainSignKey = sync.OnceValues(func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })

// drainKeys are generated once: RSA-2048 like certs/devca's, so signing costs what it does in dev.
var drainKeys = sync.OnceValues(func() (map[string]*rsa.PrivateKey, error) {
	out := map[string]*rsa.PrivateKey{}
	for _, name := range []string{"gateway", "ann", "ben", "cat"} {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		out[name] = k
	}
	return out, nil
})

// drainRig is a real store of record holding pending packages, a directory of three recipients with
// S/MIME certificates, and the gateway's signing identity.
type drainRig struct {
	store *mailbox.Store
	path  string
	opt   Options
	rcpts []string
}

// mapDir is a directory held in memory (the pipeline's lookups; nothing here authenticates).
type mapDir map[string]*directory.Practitioner

func (d mapDir) Authenticate(context.Context, string, string) (*directory.Practitioner, error) {
	return nil, directory.ErrBadCredentials
}
func (d mapDir) Lookup(_ context.Context, mail string) (*directory.Practitioner, error) {
	if p, ok := d[mail]; ok {
		return p, nil
	}
	return nil, directory.ErrNotFound
}

// acceptAll passes every certificate: the certificate checks are not what these tests measure.
type acceptAll struct{}

func (acceptAll) Validate(context.Context, validate.Request) (*validate.Result, error) {
	return &validate.Result{}, nil
}

func selfSigned(t testing.TB, key crypto.Signer, mail string, usage x509.KeyUsage, now time.Time) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: mail},
		EmailAddresses: []string{mail}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: usage, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newDrainRig opens a fresh store holding packages pending packages, each to the three recipients,
// with their decisions (every section allowed), as intake leaves them.
func newDrainRig(t testing.TB, packages int) *drainRig {
	t.Helper()
	keys, err := drainKeys()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UTC()
	r := &drainRig{path: filepath.Join(t.TempDir(), "mailbox.db")}
	key := []byte(strings.Repeat("k", 32))
	if r.store, err = mailbox.Open(ctx, mailbox.Options{Path: r.path, ContentKey: key}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.store.Close() })
	dir := mapDir{}
	sender := "sam@school.example"
	dir[sender] = &directory.Practitioner{DN: "uid=sam", Mail: sender, Agency: "school", VettingValidUntil: now.Add(time.Hour)}
	for _, name := range []string{"ann", "ben", "cat"} {
		mail := name + "@council.example"
		c := selfSigned(t, keys[name], mail, x509.KeyUsageKeyEncipherment, now)
		dir[mail] = &directory.Practitioner{DN: "uid=" + name, Mail: mail, Agency: "council",
			Certificates: [][]byte{c.Raw}, VettingValidUntil: now.Add(time.Hour)}
		r.rcpts = append(r.rcpts, mail)
	}
	gw := selfSigned(t, keys["gateway"], "gateway@gw.example", x509.KeyUsageDigitalSignature, now)
	signer := &cms.Signer{Cert: gw, Key: keys["gateway"]}
	switch *drainSign {
	case "rsa":
	case "p256":
		ec, err := drainSignKey()
		if err != nil {
			t.Fatal(err)
		}
		// now+1s: another serial number than gw's under the same (self-signed) issuer name
		signer = &cms.Signer{Cert: selfSigned(t, ec, "gateway@gw.example", x509.KeyUsageDigitalSignature, now.Add(time.Second)), Key: ec, EncryptCert: gw}
	default:
		t.Fatalf("-drain.sign=%q: want rsa or p256", *drainSign)
	}
	// About 4 KiB: the small package.
	text := strings.Repeat("The team met and agreed the plan for the coming weeks.\r\n", 72)
	for i := range packages {
		id := fmt.Sprintf("drain-%06d", i)
		content := []byte("From: <" + sender + ">\r\nTo: <ann@council.example>\r\nSubject: [CAF-2026-000123] review " +
			id + "\r\nMessage-ID: <" + id + "@school.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + text)
		in := &mailbox.Incoming{ID: id, Sender: sender, SenderDN: "uid=sam", Agency: "school", Recipients: r.rcpts,
			Via: "submission", RemoteAddr: "192.0.2.1:5555", ReceivedAt: now, Digest: sha256.Sum256(content), Content: content}
		pd := &mailbox.PackageDecision{At: now, Sender: sender, Package: policy.Package{EpisodeRef: "CAF-2026-000123", Sender: sender}}
		for _, m := range r.rcpts {
			pd.Decisions = append(pd.Decisions, policy.Decision{Recipient: m, Result: policy.DeliverAll})
		}
		if err := r.store.AcceptDecided(ctx, in, pd); err != nil {
			t.Fatal(err)
		}
	}
	r.opt = Options{Store: r.store, Dir: dir, Validator: acceptAll{}, Hostname: "gw.example",
		Signer: signer, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		NoReports: true, Batch: 64}
	return r
}

// drain runs rounds until none finds work and returns how many recipients the rounds took; false
// when a thousand rounds did not run out of work.
func drain(p *Pipeline) (int, bool) {
	total := 0
	for range 1000 {
		n := p.Round(context.Background())
		if n == 0 {
			return total, true
		}
		total += n
	}
	return total, false
}

func count(t testing.TB, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestConcurrentDrainQueuesEachCopyOnce drains a store with the worker pool and group commits and
// checks, in the store's file, that every recipient was queued exactly once with its one "encrypted"
// ledger event, whatever the commit grouping; then that the serial pipeline agrees on a second store.
func TestConcurrentDrainQueuesEachCopyOnce(t *testing.T) {
	const packages = 20
	for _, c := range []struct {
		name                 string
		workers, commitBatch int
	}{{"pool", 4, 8}, {"serial", 1, 1}} {
		t.Run(c.name, func(t *testing.T) {
			r := newDrainRig(t, packages)
			r.opt.Workers, r.opt.CommitBatch, r.opt.Batch = c.workers, c.commitBatch, 16
			var woken atomic.Int32
			r.opt.Queued = func() { woken.Add(1) }
			p := New(r.opt)
			// Two pipelines on the same store at once, as after a restart that overlaps: the
			// "still pending" condition must keep each recipient to one copy.
			other := New(r.opt)
			var wg sync.WaitGroup
			wg.Add(1)
			var otherOK bool
			go func() { defer wg.Done(); _, otherOK = drain(other) }()
			_, ok := drain(p)
			wg.Wait()
			if !ok || !otherOK {
				t.Fatal("the pipeline never ran out of work")
			}
			db, err := sql.Open("sqlite3", "file:"+r.path+"?mode=ro&_busy_timeout=5000")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			want := packages * len(r.rcpts)
			if n := count(t, db, `SELECT count(*) FROM recipients WHERE state = ?`, mailbox.StateQueued); n != want {
				t.Errorf("%d recipients queued, want %d", n, want)
			}
			if n := count(t, db, `SELECT count(*) FROM queue`); n != want {
				t.Errorf("%d copies in the outbound queue, want %d", n, want)
			}
			if n := count(t, db, `SELECT count(DISTINCT message_id || ' ' || recipient) FROM queue`); n != want {
				t.Errorf("%d distinct (package, recipient) in the queue, want %d", n, want)
			}
			if woken.Load() == 0 {
				t.Error("the relay was never told of queued mail")
			}
			if n := p.Round(context.Background()); n != 0 {
				t.Errorf("a round after the drain took %d", n)
			}
		})
	}
}

// BenchmarkDrain times draining a store of -drain.packages pending packages of three recipients with
// certificates (the gateway's signature by -drain.sign, RSA-2048 unless p256; RSA-OAEP + AES-256-GCM
// to each), serial (workers=1, a commit per copy, the pipeline before the worker pool), the worker pool
// alone (a commit per copy) and the defaults (GOMAXPROCS workers, group commits of up to 64 steps), in
// the same run:
//
//	go test -run '^$' -bench BenchmarkDrain -benchtime 3x ./gateway/deliver/ -args -drain.sign=p256
func BenchmarkDrain(b *testing.B) {
	for _, c := range []struct {
		name                 string
		workers, commitBatch int
	}{{"workers=1", 1, 1}, {"workers=GOMAXPROCS,commit=1", 0, 1}, {"workers=GOMAXPROCS", 0, 0}} {
		b.Run(c.name, func(b *testing.B) {
			copies := 0
			var elapsed time.Duration
			for b.Loop() {
				b.StopTimer()
				r := newDrainRig(b, *drainPackages)
				r.opt.Workers, r.opt.CommitBatch = c.workers, c.commitBatch
				p := New(r.opt)
				b.StartTimer()
				start := time.Now()
				n, _ := drain(p)
				elapsed += time.Since(start)
				b.StopTimer()
				if n != *drainPackages*3 {
					b.Fatalf("drained %d copies, want %d", n, *drainPackages*3)
				}
				copies += n
				r.store.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(copies), "ns/copy")
			b.ReportMetric(float64(copies)/elapsed.Seconds(), "copies/s")
		})
	}
}

// TestGroupCommitFailureStoresNothingThenOneByOne: a group with a step the store refuses stores none
// of its steps (FinishDeliveries), and the pipeline then records the others one by one, leaving only
// the refused one pending.
func TestGroupCommitFailureStoresNothingThenOneByOne(t *testing.T) {
	r := newDrainRig(t, 1)
	p := New(r.opt)
	ctx := context.Background()
	at := time.Now().UTC()
	good := mailbox.DeliveryStep{MessageID: "drain-000000", Recipient: r.rcpts[0], State: mailbox.StateRefused, At: at}
	good2 := mailbox.DeliveryStep{MessageID: "drain-000000", Recipient: r.rcpts[1], State: mailbox.StateRefused, At: at}
	bad := mailbox.DeliveryStep{MessageID: "drain-000000", Recipient: r.rcpts[2], State: mailbox.StateRefused, At: at,
		EventType: "no such event"}
	db, err := sql.Open("sqlite3", "file:"+r.path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pending := func() int {
		return count(t, db, `SELECT count(*) FROM recipients WHERE state = ?`, mailbox.StatePending)
	}
	done, err := r.store.FinishDeliveries(ctx, []mailbox.DeliveryStep{good, good2, bad})
	if err == nil || done[0] || done[1] || done[2] {
		t.Fatalf("FinishDeliveries with a refused step: done %v, err %v", done, err)
	}
	if n := pending(); n != 3 {
		t.Fatalf("%d recipients pending after a failed group, want all 3", n)
	}
	p.commit(ctx, []mailbox.DeliveryStep{good, bad, good2})
	if n := pending(); n != 1 {
		t.Errorf("%d recipients pending after the one-by-one fallback, want 1", n)
	}
	if n := count(t, db, `SELECT count(*) FROM recipients WHERE state = ? AND rcpt = ?`, mailbox.StatePending, r.rcpts[2]); n != 1 {
		t.Error("the refused step's recipient is not the one left pending")
	}
	// The same steps again: no longer pending, so nothing is done twice.
	if done, err := r.store.FinishDeliveries(ctx, []mailbox.DeliveryStep{good, good2}); err != nil || done[0] || done[1] {
		t.Errorf("finishing finished steps again: done %v, err %v", done, err)
	}
}
