package relay

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"cafgate/mailbox"
)

// enqueueRecipe queues a copy by recipe for rcpt (the relay builds it with Options.Build).
func (r *rig) enqueueRecipe(t *testing.T, rcpt string) string {
	t.Helper()
	ids, err := r.store.Enqueue(context.Background(), &mailbox.Outbound{MessageID: "m1", From: "alice@agency.test",
		Recipient: rcpt, Recipe: []byte("recipe for " + rcpt), HeaderMessageID: "<pkg." + strings.ReplaceAll(rcpt, "@", ".") + "@gw.test>", Size: 100})
	if err != nil {
		t.Fatal(err)
	}
	return ids[0]
}

// TestRecipeBuiltAtEachAttempt: an entry queued by recipe is built by Options.Build at each attempt
// (after a 4xx, again), and what it built is what the MTA receives; a build the store cannot do now
// defers the entry; one that can never be done fails it at once with the sender told.
func TestRecipeBuiltAtEachAttempt(t *testing.T) {
	r := newRig(t)
	m := startMTA(t, mtaOpts{tls: r.serverTLS(), answer: func(rcpt string, try int) *smtp.SMTPError {
		if rcpt == "bob@council.test" && try == 1 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted, come back later"}
		}
		return nil
	}})
	r.mx(m)
	var builds atomic.Int32
	var storeDown atomic.Bool
	r.opt.Build = func(_ context.Context, c *mailbox.Claimed) ([]byte, error) {
		n := builds.Add(1)
		switch {
		case string(c.Recipe) == "recipe for carol@council.test":
			return nil, fmt.Errorf("%w: the stored package does not authenticate", mailbox.ErrCorrupt)
		case storeDown.Load():
			return nil, mailbox.ErrUnavailable
		}
		return append(pkg(c.Recipient), fmt.Sprintf("built %d from %s\r\n", n, c.Recipe)...), nil
	}
	bob, carol := r.enqueueRecipe(t, "bob@council.test"), r.enqueueRecipe(t, "carol@council.test")
	rl := r.relay(t)
	r.flush(t, rl)
	if e := r.entry(t, bob); e.State != mailbox.QueueQueued || !strings.HasPrefix(e.LastAnswer, "451 ") {
		t.Fatalf("bob after the 451: %+v", e)
	}
	if e := r.entry(t, carol); e.State != mailbox.QueueFailed || !strings.Contains(e.LastAnswer, "could not build") {
		t.Fatalf("carol, whose copy cannot be built: %+v", e)
	}
	if len(r.dsns(t, carol)) != 1 {
		t.Fatal("no failure report for the copy that cannot be built")
	}

	storeDown.Store(true)
	r.clock.Advance(5 * time.Minute)
	r.flush(t, rl)
	if e := r.entry(t, bob); e.State != mailbox.QueueQueued || !strings.Contains(e.LastAnswer, "could not read the stored package") {
		t.Fatalf("bob with the store down: %+v", e)
	}

	storeDown.Store(false)
	r.clock.Advance(time.Hour)
	r.flush(t, rl)
	got := to(m, "bob@council.test")
	if len(got) != 1 || !bytes.Contains(got[0].data, []byte("from recipe for bob@council.test")) {
		t.Fatalf("bob received %d messages", len(got))
	}
	if e := r.entry(t, bob); e.State != mailbox.QueueDelivered || e.Attempts != 3 {
		t.Fatalf("bob at the end: %+v", e)
	}
	if n := builds.Load(); n != 4 {
		t.Errorf("%d builds, want 4 (bob three times, carol once)", n)
	}
}

// TestRecipeWithoutBuilderFails: with no Build configured an entry queued by recipe fails as corrupt
// instead of being sent empty.
func TestRecipeWithoutBuilderFails(t *testing.T) {
	r := newRig(t)
	m := startMTA(t, mtaOpts{tls: r.serverTLS()})
	r.mx(m)
	id := r.enqueueRecipe(t, "bob@council.test")
	r.flush(t, r.relay(t))
	if e := r.entry(t, id); e.State != mailbox.QueueFailed || len(to(m, "bob@council.test")) != 0 || len(r.dsns(t, id)) != 1 {
		t.Fatalf("entry %+v, %d messages sent to bob, %d reports", e, len(to(m, "bob@council.test")), len(r.dsns(t, id)))
	}
}

// to is what m received for rcpt.
func to(m *mta, rcpt string) []received {
	var out []received
	for _, g := range m.messages() {
		if g.rcpt == rcpt {
			out = append(out, g)
		}
	}
	return out
}

// TestStoppingGivesBackTheWaitingGroup: when the gateway starts stopping while copies wait in a group
// not yet sent, they are given back unattempted with the rest of the batch (queued again, no attempt
// counted, nothing on the wire), not sent on a connection that may be closing.
func TestStoppingGivesBackTheWaitingGroup(t *testing.T) {
	r := newRig(t)
	r.opt.MaxConnections = 1
	m := startMTA(t, mtaOpts{tls: r.serverTLS()})
	r.mx(m)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var builds atomic.Int32
	r.opt.Build = func(_ context.Context, c *mailbox.Claimed) ([]byte, error) {
		if builds.Add(1) == 2 {
			cancel() // shutdown begins while the second copy is built
		}
		return pkg(c.Recipient), nil
	}
	ids := []string{r.enqueueRecipe(t, "a@council.test"), r.enqueueRecipe(t, "b@council.test"), r.enqueueRecipe(t, "c@council.test")}
	rl := r.relay(t)
	rl.Flush(ctx)
	if n := len(m.messages()); n != 0 {
		t.Fatalf("the MTA got %d messages after shutdown began before the group was sent", n)
	}
	for _, id := range ids {
		if e := r.entry(t, id); e.State != mailbox.QueueQueued || e.Attempts != 0 {
			t.Errorf("%s: %s after %d attempts, want queued and unattempted", id, e.State, e.Attempts)
		}
	}
}
