package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrashRecovery kills the gateway with SIGKILL at random moments while several clients submit,
// restarts it each time, and then checks the store of record against what the clients saw:
//   - every message answered 250 is stored exactly once, under the ID of its 250, with its digest;
//   - every stored message is one a client sent completely (a commit whose 250 was lost in the crash
//     is allowed, and counted);
//   - no message whose DATA was cut off, and none answered with a refusal, is stored;
//   - message verify decrypts everything and finds no fault.
//
// It runs in CI (about a minute); -short skips it. CAFGATE_CRASH_KILLS sets the number of kills (50).
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	t.Parallel()
	kills := envCount(t, "CAFGATE_CRASH_KILLS", 50)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d kills", seed, kills)
	rng := rand.New(rand.NewPCG(seed, 1))

	g := startGateway(t)
	info := g.Info()
	sender := info.accountWith(t, "active")
	rcpt := info.accountWith(t, "active", sender.Mail)
	conf := tlsConfig(t, info)
	var cur atomic.Pointer[devInfo]
	cur.Store(info)

	led := newCrashLedger()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	const workers = 6
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := crashClient{id: w, cur: &cur, conf: conf, from: sender, to: rcpt.Mail, led: led,
				rng: rand.New(rand.NewPCG(seed, uint64(w)+2))}
			c.run(ctx)
		}()
	}

	start := time.Now()
	for i := 0; i < kills; i++ {
		time.Sleep(time.Duration(50+rng.IntN(451)) * time.Millisecond)
		g.kill()
		cur.Store(g.start())
	}
	time.Sleep(time.Second) // a last stretch on a server left running
	cancel()
	wg.Wait()
	t.Logf("%d kills in %v", kills, time.Since(start).Round(time.Millisecond))

	if ms := g.messages(); len(ms) == 0 { // message list works beside the running daemon
		t.Errorf("message list beside the running daemon shows nothing")
	}
	g.stop()
	stored := g.messages()
	faults, summary := led.check(stored, sender.Mail, rcpt.Mail)
	t.Log(summary)
	for _, f := range faults {
		t.Error(f)
	}
	if n := len(led.acked); n < 50 {
		t.Errorf("only %d messages were answered 250: the test proved little", n)
	}
	if len(led.aborted) == 0 {
		t.Errorf("no DATA was cut off: the test did not check partial messages")
	}
	g.requireVerifyClean(len(stored))
}

// crashLedger is what the clients saw, keyed by message digest.
type crashLedger struct {
	mu       sync.Mutex
	complete map[string]bool   // whole message and terminator written
	aborted  map[string]bool   // DATA deliberately cut off half way
	acked    map[string]string // digest -> ID from the 250
	refused  map[string]string // digest -> the refusal reply at end of data
	badOK    []string          // 250 replies without "Accepted as <ID>"
	sessions atomic.Int64
	dialErrs atomic.Int64
}

func newCrashLedger() *crashLedger {
	return &crashLedger{complete: map[string]bool{}, aborted: map[string]bool{}, acked: map[string]string{},
		refused: map[string]string{}}
}

func (l *crashLedger) note(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f()
}

// check compares the store with the ledger and returns every fault found and a summary line.
func (l *crashLedger) check(stored []storedMessage, from, to string) (faults []string, summary string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fault := func(format string, args ...any) { faults = append(faults, fmt.Sprintf(format, args...)) }
	byID := map[string]storedMessage{}
	bySHA := map[string]int{}
	for _, m := range stored {
		byID[m.ID] = m
		bySHA[m.SHA256]++
	}
	for _, r := range l.badOK {
		fault("250 reply without 'Accepted as <ID>': %q", r)
	}
	for sha, id := range l.acked {
		m, ok := byID[id]
		switch {
		case !ok:
			fault("message %s was answered 250 but is not stored (lost after acknowledgement)", id)
		case m.SHA256 != sha:
			fault("message %s: stored digest %s, sent %s", id, m.SHA256, sha)
		}
	}
	lostAcks := 0
	for sha, n := range bySHA {
		if n > 1 {
			fault("a message (sha256 %s) is stored %d times", sha, n)
		}
		switch {
		case l.aborted[sha]:
			fault("a message whose DATA was cut off half way is stored (sha256 %s)", sha)
		case l.refused[sha] != "":
			fault("a message answered %q is stored (sha256 %s)", l.refused[sha], sha)
		case !l.complete[sha]:
			fault("a stored message (sha256 %s) is not one any client sent completely", sha)
		case l.acked[sha] == "":
			lostAcks++
		}
	}
	for _, m := range stored {
		if !strings.EqualFold(m.Sender, from) || len(m.Recipients) != 1 || !strings.EqualFold(m.Recipients[0], to) {
			fault("message %s: sender %q recipients %v, want %s -> %s", m.ID, m.Sender, m.Recipients, from, to)
		}
	}
	summary = fmt.Sprintf("sessions %d (dial/sign-in failures %d); fully sent %d, answered 250 %d, refused %d, cut off %d; "+
		"stored %d, of which committed but 250 lost in a crash: %d",
		l.sessions.Load(), l.dialErrs.Load(), len(l.complete), len(l.acked), len(l.refused), len(l.aborted),
		len(stored), lostAcks)
	return faults, summary
}

// crashClient submits unique messages in a loop, reconnecting to the current ports after each failure.
type crashClient struct {
	id   int
	cur  *atomic.Pointer[devInfo]
	conf *tls.Config
	from account
	to   string
	led  *crashLedger
	rng  *rand.Rand
	seq  int
}

func (c *crashClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		via := []string{"submission", "submissions"}[c.rng.IntN(2)]
		s, _ := openSession(c.cur.Load(), via, c.conf, c.from, 10*time.Second)
		if s == nil {
			c.led.dialErrs.Add(1)
			time.Sleep(time.Duration(10+c.rng.IntN(30)) * time.Millisecond)
			continue
		}
		c.led.sessions.Add(1)
		for ctx.Err() == nil && c.sendOne(s) {
		}
		s.c.close()
	}
}

// sendOne sends one message (or cuts one off) and reports whether the session is still usable.
func (c *crashClient) sendOne(s *session) bool {
	c.seq++
	pad := strings.Repeat("padding line "+strings.Repeat("x", 25)+"\r\n", c.rng.IntN(200))
	body := newMessage(c.from.Mail, c.to, fmt.Sprintf("crash test %d-%d", c.id, c.seq),
		fmt.Sprintf("worker %d message %d token %s", c.id, c.seq, randomToken(16)), strings.TrimSuffix(pad, "\r\n"))
	sha := digest(body)
	if c.rng.IntN(12) == 0 {
		c.cutOff(s, body, sha)
		return false
	}
	r := s.send([]string{c.to}, body)
	c.led.note(func() {
		if r.SentAll {
			c.led.complete[sha] = true
		}
		switch {
		case r.Stage == "":
			if id := r.Reply.AcceptedID(); id != "" {
				c.led.acked[sha] = id
			} else {
				c.led.badOK = append(c.led.badOK, r.Reply.String())
			}
		case r.Stage == "data" && r.Err == nil && r.Reply.Code >= 400:
			c.led.refused[sha] = r.Reply.String()
		}
	})
	return r.Stage == ""
}

// cutOff starts a transaction, writes half the message and drops the connection.
func (c *crashClient) cutOff(s *session, body []byte, sha string) {
	if r, err := s.c.cmd("MAIL FROM:<" + s.from + ">"); err != nil || r.Code != 250 {
		return
	}
	if r, err := s.c.cmd("RCPT TO:<" + c.to + ">"); err != nil || r.Code != 250 {
		return
	}
	if r, err := s.c.cmd("DATA"); err != nil || r.Code != 354 {
		return
	}
	wire := dotStuff(body)
	c.led.note(func() { c.led.aborted[sha] = true })
	_ = s.c.write(wire[:len(wire)/2])
}

// envCount is the positive whole number in the environment variable name, or def when it is unset.
func envCount(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive whole number", name, s)
	}
	return n
}
