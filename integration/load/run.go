package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// maxConsecutiveFailures stops a worker that keeps failing, so a dead server ends the run early.
const maxConsecutiveFailures = 50

// runner drives conns sessions against one server.
type runner struct {
	cfg config
	tls *tls.Config
	gen *generator
	now func() time.Time
}

// quota hands out message slots: until a deadline, or a fixed number in total.
type quota struct {
	deadline time.Time    // zero in -messages mode
	left     atomic.Int64 // remaining slots in -messages mode
}

func (q *quota) take() bool {
	if !q.deadline.IsZero() {
		return time.Now().Before(q.deadline)
	}
	return q.left.Add(-1) >= 0
}

// run connects every session first, then starts the clock and sends until the quota runs out.
func (r *runner) run() Result {
	res := Result{Label: r.cfg.label, Addr: r.cfg.addr, StartTLS: r.cfg.startTLS, Auth: r.cfg.user != "",
		Size: r.cfg.size, Recipients: len(r.cfg.to), Conns: r.cfg.conns, Sources: r.cfg.sources, Planned: r.planned()}
	tallies := make([]*tally, r.cfg.conns)
	for i := range tallies {
		tallies[i] = newTally()
	}
	clients := r.connectAll(tallies)
	for _, c := range clients {
		if c == nil {
			continue
		}
		res.Connected++
		if st, ok := c.TLSConnectionState(); ok && res.TLS == "" {
			res.TLS = tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)
		}
	}
	q := &quota{}
	start := time.Now()
	if r.cfg.messages > 0 {
		q.left.Store(int64(r.cfg.messages))
	} else {
		q.deadline = start.Add(r.cfg.duration)
	}
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { r.worker(i, clients[i], q, tallies[i]) })
	}
	wg.Wait()
	res.merge(tallies, time.Since(start))
	res.LoadAvg = loadAvg()
	return res
}

// connectAll opens every session in parallel; a failed one is counted in its tally and left nil.
func (r *runner) connectAll(tallies []*tally) []*smtp.Client {
	clients := make([]*smtp.Client, len(tallies))
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c, err := r.dial(i)
			if err != nil {
				tallies[i].fail(err)
				return
			}
			clients[i] = c
		})
	}
	wg.Wait()
	return clients
}

func (r *runner) planned() string {
	if r.cfg.messages > 0 {
		return fmt.Sprintf("%d messages", r.cfg.messages)
	}
	return r.cfg.duration.String()
}

// worker sends messages on one session, reconnecting after a connection-level failure.
func (r *runner) worker(id int, c *smtp.Client, q *quota, t *tally) {
	failures := 0
	for seq := 0; failures < maxConsecutiveFailures && q.take(); seq++ {
		var err error
		if c == nil {
			if c, err = r.dial(id); err != nil {
				t.fail(err)
				failures++
				time.Sleep(100 * time.Millisecond)
				continue
			}
		}
		if err = r.send(c, id, seq, t); err == nil {
			failures = 0
			continue
		}
		t.fail(err)
		failures++
		if !reusable(err) || c.Reset() != nil {
			c.Close()
			c = nil
		}
	}
	if c != nil {
		c.Quit()
	}
}

// reusable reports whether the session survives err: an SMTP reply other than 421 leaves it usable.
func reusable(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code != 421
}

// dial opens session i: TCP, optional STARTTLS (required, verified) and AUTH PLAIN.
func (r *runner) dial(i int) (*smtp.Client, error) {
	d := net.Dialer{Timeout: r.cfg.timeout, LocalAddr: r.cfg.localAddr(i)}
	conn, err := d.Dial("tcp", r.cfg.addr)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(r.cfg.timeout))
	var c *smtp.Client
	if r.cfg.startTLS {
		c, err = smtp.NewClientStartTLS(conn, r.tls)
	} else {
		c = smtp.NewClient(conn)
		err = c.Hello("localhost")
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	c.CommandTimeout, c.SubmissionTimeout = r.cfg.timeout, r.cfg.timeout
	if r.cfg.user != "" {
		if err := c.Auth(sasl.NewPlainClient("", r.cfg.user, r.cfg.pass)); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// send runs one transaction and, on 250, records the time from DATA to the final reply.
func (r *runner) send(c *smtp.Client, w, seq int, t *tally) error {
	if err := c.Mail(r.cfg.from, nil); err != nil {
		return err
	}
	for _, rcpt := range r.cfg.to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return err
		}
	}
	header, body := r.gen.message(w, seq, r.now())
	t0 := time.Now()
	wc, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := wc.Write(header); err != nil {
		return err
	}
	if _, err := wc.Write(body); err != nil {
		return err
	}
	if _, err := wc.CloseWithResponse(); err != nil {
		return err
	}
	t.accepted++
	t.latencies = append(t.latencies, time.Since(t0))
	return nil
}
