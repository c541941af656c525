package ratelimit

import (
	"net"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }
func tcp(ip string) net.Addr         { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 1234} }
func mustEqual(t *testing.T, got, want any) {
	t.Helper()
	if got != want {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{tcp("192.0.2.7"), "192.0.2.7"},
		{tcp("::ffff:192.0.2.7"), "192.0.2.7"},
		{tcp("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64"},
		{tcp("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64"},
		{tcp("2001:db8:1:3::1"), "2001:db8:1:3::/64"},
		{&net.UnixAddr{Name: "/tmp/x", Net: "unix"}, "/tmp/x"},
		{nil, ""},
	} {
		if got := Key(tc.addr); got != tc.want {
			t.Errorf("Key(%v) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

func TestWindowSlides(t *testing.T) {
	c := newClock()
	w := NewWindow(15*time.Minute, 10, 100, c.now)
	for i := 1; i <= 3; i++ {
		mustEqual(t, w.Add("a"), i)
		c.add(time.Minute)
	}
	mustEqual(t, w.Count("a"), 3)
	mustEqual(t, w.Count("b"), 0)
	// At 15 minutes after the first event it leaves the window.
	c.add(12 * time.Minute)
	mustEqual(t, w.Count("a"), 2)
	c.add(2 * time.Minute)
	mustEqual(t, w.Count("a"), 0)
	mustEqual(t, w.Len(), 0)
}

func TestWindowKeepAndRetryAfter(t *testing.T) {
	c := newClock()
	w := NewWindow(15*time.Minute, 10, 100, c.now)
	for i := 0; i < 25; i++ {
		w.Add("a")
		c.add(10 * time.Second)
	}
	mustEqual(t, w.Count("a"), 10)
	// The oldest kept event is the 16th, at 150 s; it is now 250 s.
	mustEqual(t, w.RetryAfter("a", 10), 15*time.Minute-100*time.Second)
	mustEqual(t, w.RetryAfter("a", 11), time.Duration(0))
	mustEqual(t, w.RetryAfter("b", 1), time.Duration(0))
	c.add(15*time.Minute - 100*time.Second)
	mustEqual(t, w.Count("a"), 9)
	mustEqual(t, w.RetryAfter("a", 10), time.Duration(0))
}

func TestWindowBoundsKeys(t *testing.T) {
	c := newClock()
	w := NewWindow(time.Minute, 3, 4, c.now)
	for _, k := range []string{"a", "b", "c", "d"} {
		w.Add(k)
	}
	c.add(2 * time.Minute)
	w.Add("e") // all four expired: dropped
	mustEqual(t, w.Len(), 1)
	for _, k := range []string{"f", "g", "h", "i", "j"} {
		w.Add(k)
	}
	if w.Len() > 4 {
		t.Fatalf("holds %d keys, bound is 4", w.Len())
	}
	mustEqual(t, w.Count("j"), 1)
}
