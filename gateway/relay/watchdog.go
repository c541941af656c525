// The watchdog of a batch: it closes the batch's connection before the lease lapses, and once shutdown's
// grace period is over, so no attempt outlives the lease that holds it.

package relay

import (
	"context"
	"net"
	"sync"
	"time"
)

// guard closes the batch's current connection when the lease is about to lapse or shutdown's grace
// period is over.
type guard struct {
	mu     sync.Mutex
	conn   net.Conn
	isOver bool
	timer  *time.Timer
	done   chan struct{}
}

func (r *Relay) watch(ctx context.Context) *guard {
	g := &guard{done: make(chan struct{})}
	g.timer = time.AfterFunc(r.opt.Lease-leaseMargin(r.opt.Lease), g.fire)
	go func() {
		select {
		case <-ctx.Done():
			select {
			case <-time.After(r.opt.ShutdownGrace):
				g.fire()
			case <-g.done:
			}
		case <-g.done:
		}
	}()
	return g
}

// leaseMargin is how long before a lease lapses its connection is closed at the latest.
func leaseMargin(lease time.Duration) time.Duration { return lease / 10 }

func (g *guard) set(c net.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.conn = c
	if g.isOver {
		c.Close()
	}
}

func (g *guard) fire() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.isOver = true
	if g.conn != nil {
		g.conn.Close()
	}
}

func (g *guard) fired() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.isOver
}

func (g *guard) stop() {
	g.timer.Stop()
	close(g.done)
}
