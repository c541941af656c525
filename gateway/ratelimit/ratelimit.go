// Package ratelimit counts events per client address over a sliding window, for limits such as "ten
// failed sign-ins from one address in fifteen minutes".
package ratelimit

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Key returns the address a limit applies to: the IP for IPv4 and the /64 prefix for IPv6, since one
// IPv6 client usually holds a whole /64. Addresses that are not IP addresses are keyed by their string.
func Key(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return addr.String()
		}
		ip = ap.Addr()
	}
	return KeyIP(ip)
}

// KeyIP is Key for an IP address.
func KeyIP(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return "invalid"
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// Window counts events per key over a sliding window. It keeps at most Keep events per key (enough to
// answer "at least Keep events") and at most MaxKeys keys. It is safe for concurrent use.
type Window struct {
	mu      sync.Mutex
	window  time.Duration
	keep    int
	maxKeys int
	now     func() time.Time
	events  map[string][]time.Time // oldest first, all within the window when last touched
}

// NewWindow returns a Window. keep is the largest count a caller needs to tell apart; maxKeys bounds
// memory (when full, expired keys are dropped first, then an arbitrary key). now may be nil for time.Now.
func NewWindow(window time.Duration, keep, maxKeys int, now func() time.Time) *Window {
	if now == nil {
		now = time.Now
	}
	if keep < 1 {
		keep = 1
	}
	if maxKeys < 1 {
		maxKeys = 1
	}
	return &Window{window: window, keep: keep, maxKeys: maxKeys, now: now, events: map[string][]time.Time{}}
}

// Add records an event for key and returns the number of events within the window, this one included
// (at most keep).
func (w *Window) Add(key string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	ev := w.live(key, now)
	if ev == nil {
		w.makeRoom(now)
	}
	ev = append(ev, now)
	if len(ev) > w.keep {
		ev = append(ev[:0], ev[len(ev)-w.keep:]...)
	}
	w.events[key] = ev
	return len(ev)
}

// Count returns the number of events for key within the window (at most keep).
func (w *Window) Count(key string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.live(key, w.now()))
}

// RetryAfter returns how long until key has fewer than n events within the window; 0 when it already
// has. n must not exceed keep.
func (w *Window) RetryAfter(key string, n int) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	ev := w.live(key, now)
	if n < 1 || len(ev) < n {
		return 0
	}
	// The count drops below n when the event n-th from the newest leaves the window.
	return ev[len(ev)-n].Add(w.window).Sub(now)
}

// live drops key's expired events and returns the rest.
func (w *Window) live(key string, now time.Time) []time.Time {
	ev, ok := w.events[key]
	if !ok {
		return nil
	}
	i := 0
	for i < len(ev) && !now.Before(ev[i].Add(w.window)) {
		i++
	}
	if i == len(ev) {
		delete(w.events, key)
		return nil
	}
	if i > 0 {
		ev = append(ev[:0], ev[i:]...)
		w.events[key] = ev
	}
	return ev
}

// makeRoom ensures there is space for one more key.
func (w *Window) makeRoom(now time.Time) {
	if len(w.events) < w.maxKeys {
		return
	}
	for k, ev := range w.events {
		if !now.Before(ev[len(ev)-1].Add(w.window)) {
			delete(w.events, k)
		}
	}
	for k := range w.events {
		if len(w.events) < w.maxKeys {
			return
		}
		delete(w.events, k)
	}
}

// Len returns the number of keys held, for tests and metrics.
func (w *Window) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events)
}
