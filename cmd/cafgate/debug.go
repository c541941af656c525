package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	"time"
)

// debugListenEnv names a loopback address where `cafgate serve` offers Go's profiler (net/http/pprof:
// CPU, heap, goroutine, block and mutex profiles, execution traces) for measuring the gateway under
// load. Off unless set; refused unless loopback, since profiles can show memory holding anything.
const debugListenEnv = "CAFGATE_DEBUG_LISTEN"

// startDebug serves the profiler when CAFGATE_DEBUG_LISTEN is set.
func startDebug(log *slog.Logger) (stop func(), err error) {
	addr := os.Getenv(debugListenEnv)
	if addr == "" {
		return func() {}, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%s=%q: give a loopback address and port, such as 127.0.0.1:6060", debugListenEnv, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", debugListenEnv, err)
	}
	runtime.SetBlockProfileRate(int(100 * time.Microsecond))
	runtime.SetMutexProfileFraction(10)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Warn("profiler listening (CAFGATE_DEBUG_LISTEN)", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}

// gcDefaults has the garbage collector run less often than Go's default (GOGC=100), with a soft memory
// limit as the backstop, unless the environment sets GOGC or GOMEMLIMIT: on two cores the collector
// took about a tenth of the gateway's CPU while it delivered, and the in-process drain
// (BenchmarkDrain, P-256) sealed 3,640-3,750 copies/s at GOGC=100 against 4,980-5,060 at 400.
func gcDefaults() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(1 << 30)
	}
}
