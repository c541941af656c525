package ldap

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// pool keeps up to size service connections, bound and idle, for reuse. A connection is taken for one
// request at a time and given back only when the request left it healthy; a connection the server
// closed is dropped when found. With size 0 every request dials its own connection.
type pool struct {
	dial  func(ctx context.Context) (*conn, error)
	size  int
	idle  chan *conn    // bound connections not in use
	slots chan struct{} // one token per open connection (idle or in use)

	mu     sync.Mutex
	closed bool

	dials atomic.Int64 // connections dialled, for tests and benchmarks
}

var errPoolClosed = errors.New("the directory has been closed")

func newPool(size int, dial func(ctx context.Context) (*conn, error)) *pool {
	return &pool{dial: dial, size: size, idle: make(chan *conn, size), slots: make(chan struct{}, size)}
}

// get returns a healthy idle connection or dials one, waiting for a free slot until wait has passed
// or ctx ends.
func (p *pool) get(ctx context.Context, wait time.Duration) (*conn, error) {
	if p.isClosed() {
		return nil, errPoolClosed
	}
	if p.size == 0 {
		return p.dialNew(ctx)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select { // an idle connection first, when there is one
		case c := <-p.idle:
			if p.usable(c) {
				return c, nil
			}
			continue
		default:
		}
		select {
		case c := <-p.idle:
			if p.usable(c) {
				return c, nil
			}
		case p.slots <- struct{}{}:
			c, err := p.dialNew(ctx)
			if err != nil {
				<-p.slots
			}
			return c, err
		case <-timer.C:
			return nil, errors.New("every pooled connection stayed busy past the timeout")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// usable marks an idle connection as reused, or closes it and frees its slot when the server has
// closed it (its reader saw the end of the stream).
func (p *pool) usable(c *conn) bool {
	if c.IsClosing() {
		c.Close()
		<-p.slots
		return false
	}
	c.reused = true
	return true
}

func (p *pool) dialNew(ctx context.Context) (*conn, error) {
	p.dials.Add(1)
	return p.dial(ctx)
}

// put gives c back: kept when healthy and the pool is open, else closed.
func (p *pool) put(c *conn, healthy bool) {
	c.reused = false
	if p.size == 0 {
		c.Close()
		return
	}
	p.mu.Lock()
	keep := healthy && !p.closed && !c.IsClosing()
	if keep {
		p.idle <- c // never blocks: each connection holds a slot, and idle has one place per slot
	}
	p.mu.Unlock()
	if !keep {
		c.Close()
		<-p.slots
	}
}

func (p *pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// close closes the idle connections; connections in use are closed when they come back.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for {
		select {
		case c := <-p.idle:
			c.Close()
			<-p.slots
		default:
			return
		}
	}
}
