// BenchmarkVerify: `ledger verify` speed beside sha256sum and openssl over the same event bytes, in
// the same run. The ledger is built once per size; set CAFGATE_LEDGER_DIR to keep it between runs
// (building ten million events takes several minutes) and CAFGATE_LEDGER_EVENTS for its size:
//
//	CAFGATE_LEDGER_EVENTS=10000000 CAFGATE_LEDGER_DIR=/var/tmp/ledger10m \
//	  go test -run '^$' -bench Verify -benchtime 1x ./mailbox/ledger/

package ledger_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"cafgate/mailbox"
	"cafgate/mailbox/ledger"
)

// benchLedger returns a ledger of n events: built in CAFGATE_LEDGER_DIR/N (kept) or in a temporary
// directory.
func benchLedger(b *testing.B, n int) (db, raw, cpFile string, v note.Verifier) {
	b.Helper()
	dir := b.TempDir()
	if keep := os.Getenv("CAFGATE_LEDGER_DIR"); keep != "" {
		dir = filepath.Join(keep, fmt.Sprint(n))
	}
	db, raw, cpFile = filepath.Join(dir, "cafgate.db"), filepath.Join(dir, "events.bin"), filepath.Join(dir, "checkpoints")
	if _, err := os.Stat(filepath.Join(dir, "complete")); err != nil {
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		bigLedgerIn(b, dir, n)
		b.Logf("built %d events in %v", n, time.Since(start).Round(time.Millisecond))
		if err := os.WriteFile(filepath.Join(dir, "complete"), nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	v, err := ledger.LoadVerifier(filepath.Join(dir, "ledger.key.pub"))
	if err != nil {
		b.Fatal(err)
	}
	return db, raw, cpFile, v
}

func BenchmarkVerify(b *testing.B) {
	n := eventCount(b, 200_000)
	db, raw, cpFile, v := benchLedger(b, n)
	peers := map[string]time.Duration{}
	for _, peer := range [][]string{{"sha256sum", raw}, {"openssl", "dgst", "-sha256", raw}} {
		if _, err := exec.LookPath(peer[0]); err != nil {
			continue
		}
		start := time.Now()
		if out, err := exec.Command(peer[0], peer[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v %s", peer[0], err, out)
		}
		peers[peer[0]] = time.Since(start)
	}
	var rep *ledger.Report
	b.ResetTimer()
	for b.Loop() {
		rdb, err := mailbox.OpenLedgerReader(db)
		if err != nil {
			b.Fatal(err)
		}
		rep, err = ledger.VerifyDatabase(context.Background(), rdb, v, cpFile)
		rdb.Close()
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() || rep.Events != uint64(n) {
			b.Fatalf("%d events, findings %v", rep.Events, rep.Findings)
		}
	}
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(n)/per.Seconds(), "events/s")
	b.ReportMetric(float64(rep.Bytes)/1e6/per.Seconds(), "MB/s")
	for name, d := range peers {
		b.ReportMetric(per.Seconds()/d.Seconds(), "x_"+name)
	}
	if l, _ := os.ReadFile("/proc/loadavg"); len(l) > 0 {
		b.Logf("%d events, %.1f MB: verify %v; %v; load %s", n, float64(rep.Bytes)/1e6, per.Round(time.Millisecond), peers, l[:len(l)-1])
	}
}
