// Command load is the acceptance benchmark's SMTP load generator: it opens -conns sessions (optionally
// STARTTLS and AUTH PLAIN), then sends messages of -size bytes on each, one after another on the same
// session, for -duration or until -messages are sent, and reports accepted messages per second and the
// p50/p99 acceptance latency (from the DATA command to the 250 reply after the final dot).
//
//	go run ./integration/load -addr 127.0.0.1:2525 -from a@x -to b@x -size 10KiB -conns 10 -duration 15s -json
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status (0 when anything was accepted).
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return 2
	}
	tc, err := cfg.tlsConfig()
	if err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return 2
	}
	r := &runner{cfg: cfg, tls: tc, gen: newGenerator(cfg.from, cfg.to, cfg.size, runID(), cfg.episode), now: time.Now}
	res := r.run()
	if cfg.json {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(stderr, "load:", err)
			return 1
		}
	} else {
		fmt.Fprintln(stdout, res.Human())
	}
	if res.Accepted == 0 {
		return 1
	}
	return 0
}

// runID is random so that Message-IDs differ between runs against the same server.
func runID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
