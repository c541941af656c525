// BenchmarkVerify: `ledger verify` speed beside sha256sum and openssl over the same event bytes, in
// the same run. The ledger is built once per size; set CAFGATE_LEDGER_DIR to keep it between runs
// (building ten million events takes several minutes) and CAFGATE_LEDGER_EVENTS for its size:
//
//	CAFGATE_LEDGER_EVENTS=10000000 CAFGATE_LEDGER_DIR=/var/tmp/ledger \
//	  go test -run '^$' -bench Verify -benchtime 1x -v ./mailbox/ledger/

package ledger_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// BenchmarkVerify times the verifier's two passes over the same ledger, after timing sha256sum and
// openssl over the same event bytes in the same run: "sequential" is the one-connection pass through
// database/sql (the verifier before the parallel pass), "parallel" what `cafgate ledger verify` runs.
// Besides wall time it reports CPU time (user+system, the process's rusage), which a loaded machine
// distorts less, and both as ratios to each peer's.
func BenchmarkVerify(b *testing.B) {
	n := eventCount(b, 200_000)
	db, raw, cpFile, v := benchLedger(b, n)
	type peer struct {
		name      string
		wall, cpu time.Duration
	}
	var peers []peer
	for _, cmd := range [][]string{{"sha256sum", raw}, {"openssl", "dgst", "-sha256", raw}} {
		if _, err := exec.LookPath(cmd[0]); err != nil {
			continue
		}
		c := exec.Command(cmd[0], cmd[1:]...)
		start := time.Now()
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v %s", cmd[0], err, out)
		}
		peers = append(peers, peer{cmd[0], time.Since(start), c.ProcessState.UserTime() + c.ProcessState.SystemTime()})
	}
	for _, pass := range []struct {
		name    string
		workers int
	}{{"sequential", -1}, {"parallel", 0}} {
		b.Run(pass.name, func(b *testing.B) {
			var rep *ledger.Report
			cpu0 := cpuTime()
			for b.Loop() {
				rdb, err := mailbox.OpenLedgerReader(db)
				if err != nil {
					b.Fatal(err)
				}
				if pass.workers < 0 {
					rep, err = ledger.VerifyDatabaseWith(context.Background(), rdb, v, cpFile, -1, 0)
				} else {
					rep, err = ledger.VerifyDatabase(context.Background(), rdb, v, cpFile)
				}
				rdb.Close()
				if err != nil {
					b.Fatal(err)
				}
				if !rep.OK() || rep.Events != uint64(n) {
					b.Fatalf("%d events, findings %v", rep.Events, rep.Findings)
				}
			}
			wall := b.Elapsed() / time.Duration(b.N)
			cpu := (cpuTime() - cpu0) / time.Duration(b.N)
			b.ReportMetric(float64(n)/wall.Seconds(), "events/s")
			b.ReportMetric(float64(rep.Bytes)/1e6/wall.Seconds(), "MB/s")
			b.ReportMetric(cpu.Seconds(), "cpu-s/op")
			line := fmt.Sprintf("%s: %d events, %.1f MB: wall %v, cpu %v", pass.name, n, float64(rep.Bytes)/1e6,
				wall.Round(time.Millisecond), cpu.Round(time.Millisecond))
			for _, p := range peers {
				b.ReportMetric(wall.Seconds()/p.wall.Seconds(), "x_"+p.name)
				line += fmt.Sprintf("; %s wall %v (%.2fx) cpu %v (%.2fx)", p.name, p.wall.Round(time.Millisecond),
					wall.Seconds()/p.wall.Seconds(), p.cpu.Round(time.Millisecond), cpu.Seconds()/p.cpu.Seconds())
			}
			if l, _ := os.ReadFile("/proc/loadavg"); len(l) > 0 {
				line += "; load " + strings.TrimSpace(string(l))
			}
			b.Log(line)
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
