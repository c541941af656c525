package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
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
