package main

import (
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"testing"
)

// TestDebugListener: the profiler is off unless CAFGATE_DEBUG_LISTEN is set, refused on an address
// that is not loopback, and serves Go's profiles on a loopback one.
func TestDebugListener(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	t.Setenv(debugListenEnv, "")
	stop, err := startDebug(log)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	for _, bad := range []string{"0.0.0.0:0", ":0", "192.0.2.1:6060", "localhost:0", "127.0.0.1"} {
		t.Setenv(debugListenEnv, bad)
		if _, err := startDebug(log); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s=%q: err %v, want a refusal naming loopback", debugListenEnv, bad, err)
		}
	}
	ln := freeLoopbackAddr(t)
	t.Setenv(debugListenEnv, ln)
	stop, err = startDebug(log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + ln + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile") {
		t.Errorf("profile: %s\n%.200s", resp.Status, body)
	}
}

// freeLoopbackAddr returns a loopback address with a port free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestGCDefaults: GOGC 400 and a 1 GiB soft memory limit unless the environment sets its own.
func TestGCDefaults(t *testing.T) {
	oldPct, oldLim := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(oldPct); debug.SetMemoryLimit(oldLim) })
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	gcDefaults()
	if p := debug.SetGCPercent(100); p != 400 {
		t.Errorf("GOGC unset: percent %d, want 400", p)
	}
	if l := debug.SetMemoryLimit(math.MaxInt64); l != 1<<30 {
		t.Errorf("GOMEMLIMIT unset: limit %d, want 1 GiB", l)
	}
	t.Setenv("GOGC", "100")
	t.Setenv("GOMEMLIMIT", "2GiB")
	gcDefaults()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC set: percent changed to %d", p)
	}
	if l := debug.SetMemoryLimit(math.MaxInt64); l != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT set: limit changed to %d", l)
	}
}
