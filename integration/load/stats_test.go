package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func TestPercentileNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 1: time.Millisecond} {
		if got := percentile(ds, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := percentile(ds[:1], 99); got != time.Millisecond {
		t.Errorf("single = %v", got)
	}
}

func TestErrorKey(t *testing.T) {
	_, dialErr := net.DialTimeout("tcp", "127.0.0.1:1", time.Second)
	cases := map[string]error{
		"451":     &smtp.SMTPError{Code: 451, Message: "try later"},
		"550":     fmt.Errorf("wrapped: %w", &smtp.SMTPError{Code: 550}),
		"timeout": &net.OpError{Op: "read", Err: timeoutErr{}},
		"net":     dialErr,
		"other":   errors.New("boom"),
		"closed":  fmt.Errorf("reading reply: %w", io.EOF),
	}
	for want, err := range cases {
		if got := errorKey(err); got != want {
			t.Errorf("errorKey(%v) = %q, want %q", err, got, want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestMerge(t *testing.T) {
	a, b := newTally(), newTally()
	a.accepted, a.latencies = 2, []time.Duration{3 * time.Millisecond, time.Millisecond}
	b.accepted, b.latencies = 1, []time.Duration{2 * time.Millisecond}
	b.fail(&smtp.SMTPError{Code: 452, Message: "full"})
	b.fail(&smtp.SMTPError{Code: 452, Message: "full again"})
	r := Result{Size: 1 << 20, Addr: "x:1"}
	r.merge([]*tally{a, b}, 2*time.Second)
	if r.Accepted != 3 || r.Failed != 2 || r.Errors["452"] != 2 || r.Rate != 1.5 || r.MiBps != 1.5 {
		t.Fatalf("merge: %+v", r)
	}
	if r.Latency.P50 != 2 || r.Latency.Max != 3 || r.Latency.Mean != 2 {
		t.Fatalf("latency: %+v", r.Latency)
	}
	if !strings.Contains(r.Samples["452"], "full") || !strings.Contains(r.Human(), "[452 x2:") {
		t.Fatalf("human: %s", r.Human())
	}
}
