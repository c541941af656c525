package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

// tally is one worker's counts; workers own theirs, so no locking until merge.
type tally struct {
	accepted  int
	latencies []time.Duration // DATA sent → 250 received, accepted messages only
	errors    map[string]int
	samples   map[string]string
}

func newTally() *tally {
	return &tally{errors: map[string]int{}, samples: map[string]string{}}
}

// fail counts err under its reply code (or a network class) and keeps the first text seen for it.
func (t *tally) fail(err error) {
	k := errorKey(err)
	t.errors[k]++
	if _, ok := t.samples[k]; !ok {
		t.samples[k] = oneLine(err.Error())
	}
}

// errorKey is the SMTP reply code ("451") or, for failures without one, a short class: timeout, closed
// (the server hung up), tls, net or other.
func errorKey(err error) string {
	var se *smtp.SMTPError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return strconv.Itoa(se.Code)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "closed"
	case strings.Contains(err.Error(), "tls:"), strings.Contains(err.Error(), "x509:"):
		return "tls"
	case errors.As(err, &ne):
		return "net"
	default:
		return "other"
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// Result is what one run reports; it is also the -json output.
type Result struct {
	Label      string            `json:"label,omitempty"`
	Addr       string            `json:"addr"`
	StartTLS   bool              `json:"starttls"`
	Auth       bool              `json:"auth"`
	TLS        string            `json:"tls,omitempty"` // version and cipher suite of the first session
	Size       int               `json:"size_bytes"`
	Recipients int               `json:"recipients"`
	Conns      int               `json:"conns"`
	Connected  int               `json:"connected"`
	Sources    int               `json:"sources"` // client addresses the connections came from
	Planned    string            `json:"planned"` // "15s" or "1000 messages"
	ElapsedS   float64           `json:"elapsed_s"`
	Accepted   int               `json:"accepted"`
	Failed     int               `json:"failed"`
	Rate       float64           `json:"rate_msgs_per_s"`
	MiBps      float64           `json:"mib_per_s"`
	Latency    Latency           `json:"latency_ms"`
	Errors     map[string]int    `json:"errors"`
	Samples    map[string]string `json:"error_samples,omitempty"`
	// LoadAvg is the machine's 1-minute load average when the run ended (Linux), to spot a busy machine.
	LoadAvg float64 `json:"loadavg_1m,omitempty"`
}

// Latency summarises acceptance latencies in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// merge folds the workers' tallies into r and computes rate and percentiles over elapsed.
func (r *Result) merge(ts []*tally, elapsed time.Duration) {
	r.Errors, r.Samples = map[string]int{}, map[string]string{}
	var all []time.Duration
	for _, t := range ts {
		r.Accepted += t.accepted
		all = append(all, t.latencies...)
		for k, n := range t.errors {
			r.Errors[k] += n
			r.Failed += n
			if _, ok := r.Samples[k]; !ok {
				r.Samples[k] = t.samples[k]
			}
		}
	}
	r.ElapsedS = elapsed.Seconds()
	if r.ElapsedS > 0 {
		r.Rate = float64(r.Accepted) / r.ElapsedS
		r.MiBps = r.Rate * float64(r.Size) / (1 << 20)
	}
	r.Latency = summarise(all)
}

// summarise sorts ds and returns nearest-rank percentiles in milliseconds.
func summarise(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Latency{
		P50:  ms(percentile(ds, 50)),
		P90:  ms(percentile(ds, 90)),
		P99:  ms(percentile(ds, 99)),
		Max:  ms(ds[len(ds)-1]),
		Mean: ms(sum / time.Duration(len(ds))),
	}
}

// percentile is the nearest-rank percentile of sorted ds (p in 0..100).
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(p/100*float64(len(sorted)) + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Human is the one-line summary printed without -json.
func (r *Result) Human() string {
	var b strings.Builder
	if r.Label != "" {
		fmt.Fprintf(&b, "%s: ", r.Label)
	}
	if r.TLS != "" {
		fmt.Fprintf(&b, "[%s] ", r.TLS)
	}
	fmt.Fprintf(&b, "%s size=%d conns=%d/%d accepted=%d in %.2fs = %.1f msg/s (%.2f MiB/s) p50=%.2fms p99=%.2fms max=%.2fms failed=%d",
		r.Addr, r.Size, r.Connected, r.Conns, r.Accepted, r.ElapsedS, r.Rate, r.MiBps,
		r.Latency.P50, r.Latency.P99, r.Latency.Max, r.Failed)
	keys := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " [%s x%d: %s]", k, r.Errors[k], r.Samples[k])
	}
	return b.String()
}

// loadAvg reads the 1-minute load average from /proc/loadavg; 0 where there is none.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
