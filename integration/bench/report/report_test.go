package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

func result(rate float64, accepted, failed int, size, conns int, p50, p99 float64) *fstest.MapFile {
	errs := `{}`
	if failed > 0 {
		errs = `{"451":` + itoa(failed) + `},"error_samples":{"451":"SMTP error 451: busy"}`
	}
	return &fstest.MapFile{Data: []byte(`{"size_bytes":` + itoa(size) + `,"conns":` + itoa(conns) +
		`,"accepted":` + itoa(accepted) + `,"failed":` + itoa(failed) + `,"rate_msgs_per_s":` + ftoa(rate) +
		`,"latency_ms":{"p50":` + ftoa(p50) + `,"p99":` + ftoa(p99) + `},"errors":` + errs + `}`)}
}

func itoa(n int) string     { return fmt.Sprint(n) }
func ftoa(f float64) string { return fmt.Sprint(f) }

func TestReportTable(t *testing.T) {
	dir := fstest.MapFS{
		"cafgate-10KiB-c10-r1.json":    result(400, 6000, 0, 10240, 10, 20, 80),
		"cafgate-10KiB-c10-r2.json":    result(300, 4500, 0, 10240, 10, 30, 90),
		"cafgate-10KiB-c10-r3.json":    result(500, 7500, 0, 10240, 10, 10, 70),
		"postfix-10KiB-c10.json":       result(800, 12000, 0, 10240, 10, 10, 40),
		"postfix-plain-10KiB-c10.json": result(1000, 15000, 0, 10240, 10, 8, 30),
		"cafgate-1MiB-c1.json":         result(50, 750, 3, 1<<20, 1, 20, 30),
		"postfix-1MiB-c1.json":         {Data: []byte("")}, // the tool died
		"postfix-fsync.txt":            {Data: []byte("x")},
		"cafgate-10KiB-c10-r1.cpu":     {Data: []byte("6.00\n")},  // 1.00 ms per message
		"cafgate-10KiB-c10-r2.cpu":     {Data: []byte("9.00\n")},  // 2.00
		"cafgate-10KiB-c10-r3.cpu":     {Data: []byte("22.50\n")}, // 3.00
		"postfix-10KiB-c10.cpu":        {Data: []byte("junk")},
		"ceiling.txt": {Data: []byte("goos: linux\n" +
			"BenchmarkCommitCeiling/size=10KiB-2   	 5000	   500000 ns/op	  2000 msgs/s\n" +
			"BenchmarkCommitCeiling/size=1MiB-2   	 100	   10000000 ns/op	 104.86 MB/s\n" +
			"BenchmarkCommitCeiling/size=1MiB-2   	 100	   5000000 ns/op	 104.86 MB/s\n" +
			"BenchmarkCommitCeiling/size=1MiB-2   	 100	   20000000 ns/op	 104.86 MB/s\n" +
			"PASS\n")},
	}
	var b bytes.Buffer
	if err := report(&b, dir); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| 10KiB | 10 | 400 (300–500) | 20.0 / 80.0 | 800 | 10.0 / 40.0 | 0.50 | 20% | 1000 |",
		"| 1MiB | 1 | 50 3 err | 20.0 / 30.0 | failed | — | — | 50% | — |",
		"cafgate 1MiB x1: 3 × 451 (SMTP error 451: busy)",
		"postfix 1MiB x1: no result",
		"BenchmarkCommitCeiling/size=1MiB-2: 100/s (median of 3, 50–200/s",
		"| 10KiB | 10 | 2.00 | — | — |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Index(out, "| 10KiB |") > strings.Index(out, "| 1MiB |") {
		t.Error("rows not ordered by size")
	}
}

func TestReportCeilingMissing(t *testing.T) {
	dir := fstest.MapFS{
		"postfix-10KiB-c1.json": result(100, 100, 0, 10240, 1, 1, 2),
		"ceiling.txt":           {Data: []byte("BenchmarkCommitCeiling: missing (no such benchmark in mailbox/)\n")},
	}
	var b bytes.Buffer
	if err := report(&b, dir); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "missing (no such benchmark") || !strings.Contains(b.String(), "| — | — | 100 |") {
		t.Fatalf("got\n%s", b.String())
	}
}

func TestCeilingWithoutSizeNamesUsesBest(t *testing.T) {
	c := ceiling{}
	for _, s := range []string{"BenchmarkCommitCeiling/batch=1-2 100 250000 ns/op", "BenchmarkCommitCeiling/batch=16-2 100 50000 ns/op"} {
		l, ok := parseBenchLine(s)
		if !ok {
			t.Fatalf("not parsed: %s", s)
		}
		c.lines = append(c.lines, l)
	}
	rate, name, ok := c.forSize(10240, "10KiB")
	if !ok || rate != 20000 || !strings.Contains(name, "batch=16") {
		t.Fatalf("got %v %q %v", rate, name, ok)
	}
}

func TestNoResults(t *testing.T) {
	if err := report(&bytes.Buffer{}, fstest.MapFS{"x.txt": {}}); err == nil {
		t.Fatal("empty directory accepted")
	}
}
