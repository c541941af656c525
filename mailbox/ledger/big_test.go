// Size and speed: a ledger of a million events verifies (and how fast, beside sha256sum over the same
// bytes), and what an append costs inside a transaction.

package ledger_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"cafgate/mailbox"
	"cafgate/mailbox/ledger"
)

// bigLedger creates a store (for its schema) and writes n accepted events straight into its tables,
// computing the hashes as an append would but with one prepared INSERT per event, large transactions
// and synchronous=OFF: a test-only shortcut. It also writes the event bytes, one after another, to a
// file for sha256sum, and lets the store sign a checkpoint at the end.
func bigLedger(tb testing.TB, n int) (dbPath, bytesPath string, f *fixture) {
	tb.Helper()
	return bigLedgerIn(tb, tb.TempDir(), n)
}

// bigLedgerIn is bigLedger in a given (empty) directory.
func bigLedgerIn(tb testing.TB, dir string, n int) (dbPath, bytesPath string, f *fixture) {
	tb.Helper()
	f = buildIn(tb, dir, 0, 0)
	bytesPath = filepath.Join(f.dir, "events.bin")
	out, err := os.Create(bytesPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close()
	w := bufio.NewWriterSize(out, 1<<20)
	db, err := sql.Open("sqlite3", "file:"+f.db+"?_synchronous=OFF&_journal_mode=WAL&_txlock=immediate")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	at := ledger.FormatTime(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))
	tr := &ledger.Tree{}
	var tx *sql.Tx
	var ins *sql.Stmt
	var completed []ledger.Hash
	nodes := []byte{}
	for i := range n {
		if i%50000 == 0 {
			if tx != nil {
				if err := tx.Commit(); err != nil {
					tb.Fatal(err)
				}
			}
			if tx, err = db.Begin(); err != nil {
				tb.Fatal(err)
			}
			if ins, err = tx.Prepare(`INSERT INTO ledger_events (seq, event, leaf, nodes) VALUES (?, ?, ?, ?)`); err != nil {
				tb.Fatal(err)
			}
		}
		e := acceptedEvent(i)
		e.V, e.N, e.At = ledger.Version, uint64(i), at
		data, err := ledger.Encode(e)
		if err != nil {
			tb.Fatal(err)
		}
		leaf := ledger.LeafHash(data)
		completed = tr.Append(leaf, completed[:0])
		nodes = nodes[:0]
		for _, h := range completed {
			nodes = append(nodes, h[:]...)
		}
		if _, err := ins.Exec(int64(i), string(data), leaf[:], nodes); err != nil {
			tb.Fatal(err)
		}
		w.Write(data)
	}
	if tx != nil {
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
	edge := []byte{}
	for _, h := range tr.Edge() {
		edge = append(edge, h[:]...)
	}
	if _, err := db.Exec(`UPDATE ledger_head SET size = ?, edge = ?`, int64(tr.Size()), edge); err != nil {
		tb.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	// Sign the final tree as the gateway would.
	s, err := mailbox.Open(context.Background(), f.opt)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	return f.db, bytesPath, f
}

// bigAccepted has the fields of an accepted event's data.
type bigAccepted struct {
	Digest     string   `json:"digest"`
	Sender     string   `json:"sender"`
	Recipients []string `json:"recipients"`
	Size       int      `json:"size"`
	Via        string   `json:"via"`
}

func acceptedEvent(i int) *ledger.Event {
	d := sha256.Sum256([]byte(strconv.Itoa(i)))
	data, _ := ledger.EncodeData(bigAccepted{Digest: hex.EncodeToString(d[:]), Sender: "priya.shah@school.example.sch.uk",
		Recipients: []string{"harriet.jones@health.example.nhs.uk", "gwen.evans@council.example.gov.uk"},
		Size:       48213 + i%1000, Via: "submission"})
	return &ledger.Event{Type: ledger.Accepted, Package: fmt.Sprintf("01JX%012dQZ", i), Data: data}
}

func eventCount(tb testing.TB, def int) int {
	if s := os.Getenv("CAFGATE_LEDGER_EVENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			tb.Fatal(err)
		}
		return n
	}
	return def
}

// TestVerifyMillion builds a ledger of 1,000,000 events (100,000 under the race detector;
// CAFGATE_LEDGER_EVENTS sets another size), verifies it, and reports the time beside sha256sum and
// openssl over the same event bytes.
func TestVerifyMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a million-event ledger")
	}
	n := eventCount(t, 1_000_000)
	if raceEnabled && os.Getenv("CAFGATE_LEDGER_EVENTS") == "" {
		n = 100_000
	}
	start := time.Now()
	db, raw, f := bigLedger(t, n)
	t.Logf("built %d events in %v", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	rep := f.verify(t, db, f.cpFile)
	took := time.Since(start)
	if !rep.OK() || rep.Events != uint64(n) || len(rep.Checkpoints) != 1 {
		t.Fatalf("big ledger: %d events, findings %v, checkpoints %d", rep.Events, rep.Findings, len(rep.Checkpoints))
	}
	mb := float64(rep.Bytes) / 1e6
	t.Logf("verify: %d events, %.1f MB in %v: %.0f events/s, %.1f MB/s", n, mb, took.Round(time.Millisecond),
		float64(n)/took.Seconds(), mb/took.Seconds())
	if _, err := exec.LookPath("sha256sum"); err == nil {
		start = time.Now()
		if out, err := exec.Command("sha256sum", raw).CombinedOutput(); err != nil {
			t.Fatalf("sha256sum: %v %s", err, out)
		}
		sum := time.Since(start)
		t.Logf("sha256sum over the same %.1f MB: %v (%.1f MB/s); verify/sha256sum = %.1fx", mb, sum.Round(time.Millisecond),
			mb/sum.Seconds(), took.Seconds()/sum.Seconds())
	}
	if _, err := exec.LookPath("openssl"); err == nil { // uses the CPU's SHA instructions, unlike sha256sum
		start = time.Now()
		if out, err := exec.Command("openssl", "dgst", "-sha256", raw).CombinedOutput(); err != nil {
			t.Fatalf("openssl: %v %s", err, out)
		}
		sum := time.Since(start)
		t.Logf("openssl dgst -sha256 over the same bytes: %v (%.1f MB/s); verify/openssl = %.1fx", sum.Round(time.Millisecond),
			mb/sum.Seconds(), took.Seconds()/sum.Seconds())
	}
	if b, _ := os.ReadFile("/proc/loadavg"); len(b) > 0 {
		t.Logf("load average: %s", bytes.TrimSpace(b))
	}
}

// BenchmarkAppend measures appending one event as the writer's group commit does: one Appender per
// transaction of 64 events. Building the events and the durable commits (synchronous=FULL, as the
// store uses) are outside the timer: they are the acceptance's cost, not the ledger's.
func BenchmarkAppend(b *testing.B) {
	f := build(b, 0, 0)
	db, err := sql.Open("sqlite3", "file:"+f.db+"?_synchronous=FULL&_journal_mode=WAL&_txlock=immediate&_stmt_cache_size=32")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	at := time.Now()
	var tx *sql.Tx
	var led *ledger.Appender
	evs := make([]*ledger.Event, 64)
	next := func(i int) {
		b.StopTimer()
		if tx != nil {
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		for j := range evs {
			evs[j] = acceptedEvent(i + j)
		}
		if tx, err = db.BeginTx(ctx, nil); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if led, err = ledger.NewAppender(ctx, tx); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; b.Loop(); i++ {
		if i%64 == 0 {
			next(i)
		}
		if _, err := led.Append(ctx, at, evs[i%64]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if tx != nil {
		tx.Commit()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}
