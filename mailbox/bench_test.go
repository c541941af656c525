// Benchmarks: Accept under parallel load (group commit, encryption, fsync) and the store's durable-commit
// ceiling (one small row per fsync'd commit, no encryption, no batching).

package mailbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

func BenchmarkAccept(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) { benchAccept(b, size) })
	}
}

func benchAccept(b *testing.B, size int) {
	s := openTest(b, testOpts(b))
	content := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	digest := sha256.Sum256(content)
	var n atomic.Int64
	b.SetBytes(int64(size))
	b.SetParallelism(8) // 8×GOMAXPROCS callers, as from many SMTP sessions
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := msg(fmt.Sprint("bench-", n.Add(1)), content)
			m.Digest = digest
			if err := s.Accept(context.Background(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.Messages)/b.Elapsed().Seconds(), "msgs/s")
	if st.Batches > 0 {
		b.ReportMetric(float64(st.Messages)/float64(st.Batches), "msgs/batch")
	}
}

// BenchmarkAcceptSerial is one caller accepting one message after another (one SMTP session): the
// latency of each Accept, digest and seal, commit and fsync, and whatever checkpoint work lands in
// the commit. It reports the p50 and p99 Accept latency and the WAL file's size at the end.
func BenchmarkAcceptSerial(b *testing.B) {
	for _, size := range []int{10 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			s := openTest(b, testOpts(b))
			content := bytes.Repeat([]byte("0123456789abcdef"), size/16)
			lat := make([]time.Duration, 0, b.N)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m := msg(fmt.Sprint("serial-", i), content)
				m.Digest = [32]byte{}
				t0 := time.Now()
				if err := s.Accept(context.Background(), m); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			if fi, err := os.Stat(s.opt.Path + "-wal"); err == nil {
				b.ReportMetric(float64(fi.Size())/(1<<20), "wal-MiB")
			}
		})
	}
}

// BenchmarkCommitCeiling measures durable commits per second on the store's own writer connection
// (WAL, synchronous=FULL): one small row per BEGIN IMMEDIATE … COMMIT, no encryption, no batching.
func BenchmarkCommitCeiling(b *testing.B) {
	s := openTest(b, testOpts(b))
	if _, err := s.wdb.Exec(`CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		tx, err := s.wdb.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO bench_rows (v) VALUES (?)`, fmt.Sprint("row-", i)); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}
