package deliver

import (
	"context"
	"crypto/x509"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"cafgate/certs/validate"
	"cafgate/envelope/cms"
	"cafgate/envelope/smime"
	"cafgate/mailbox"
)

// readCounter is the store with its package reads counted.
type readCounter struct {
	Store
	reads atomic.Int64
}

func (c *readCounter) MessageContent(ctx context.Context, id string) ([]byte, error) {
	c.reads.Add(1)
	return c.Store.MessageContent(ctx, id)
}

func (c *readCounter) Certificate(ctx context.Context, sum []byte) ([]byte, error) {
	return c.Store.(PackageReader).Certificate(ctx, sum)
}

// validationCounter is acceptAll with its validations counted.
type validationCounter struct{ n atomic.Int64 }

func (v *validationCounter) Validate(ctx context.Context, req validate.Request) (*validate.Result, error) {
	v.n.Add(1)
	return acceptAll{}.Validate(ctx, req)
}

// TestPackageReadOncePerRound: a round reads, decrypts and parses each package once for all of its
// recipients, and validates each recipient's certificate once for all of their packages, serial and
// concurrent alike, and every copy is still sealed.
func TestPackageReadOncePerRound(t *testing.T) {
	for _, c := range []struct {
		name                 string
		workers, commitBatch int
	}{{"serial", 1, 1}, {"concurrent", 0, 0}} {
		t.Run(c.name, func(t *testing.T) {
			const packages = 5
			r := newDrainRig(t, packages)
			rc := &readCounter{Store: r.opt.Store}
			vc := &validationCounter{}
			r.opt.Store, r.opt.Validator, r.opt.Workers, r.opt.CommitBatch = rc, vc, c.workers, c.commitBatch
			n, ok := drain(New(r.opt))
			if !ok || n != packages*3 {
				t.Fatalf("drained %d copies (settled %v), want %d", n, ok, packages*3)
			}
			if got := rc.reads.Load(); got != packages {
				t.Errorf("%d package reads for %d packages of 3 recipients, want one each", got, packages)
			}
			if got := vc.n.Load(); got != 3 {
				t.Errorf("%d certificate validations for 3 recipients of %d packages in one round, want 3", got, packages)
			}
		})
	}
}

// TestParsedPackagesLetGo: an entry is dropped once every recipient of the round is done with it,
// and each caller gets a copy of its own to change.
func TestParsedPackagesLetGo(t *testing.T) {
	r := newDrainRig(t, 1)
	work, err := r.store.PendingDeliveries(context.Background(), 10)
	if err != nil || len(work) != 3 {
		t.Fatalf("pending: %d, %v", len(work), err)
	}
	c := newRoundCache(r.store, work, nil)
	a, doneA, err := c.get(context.Background(), work[0].MessageID)
	if err != nil {
		t.Fatal(err)
	}
	b, doneB, _ := c.get(context.Background(), work[1].MessageID)
	a.Manifest.Child = "changed"
	if b.Manifest.Child == "changed" {
		t.Error("two callers share one manifest")
	}
	doneA()
	doneB()
	if len(c.m) != 1 {
		t.Fatalf("entry dropped before its last recipient was done: %d entries", len(c.m))
	}
	_, doneC, _ := c.get(context.Background(), work[2].MessageID)
	doneC()
	if len(c.m) != 0 {
		t.Errorf("%d entries left after every recipient was done", len(c.m))
	}
}

// TestGatherCapsAGroupByCountAndBytes: a group commit takes the steps already waiting, up to the count,
// and stops once it holds about the byte budget, so a few large copies make a group of their own.
func TestGatherCapsAGroupByCountAndBytes(t *testing.T) {
	step := func(n int) mailbox.DeliveryStep {
		return mailbox.DeliveryStep{Outbound: []*mailbox.Outbound{{Content: make([]byte, n)}}}
	}
	ch := make(chan mailbox.DeliveryStep, 10)
	for range 5 {
		ch <- step(100)
	}
	if got := len(gather(step(100), ch, 4, 1<<20)); got != 4 {
		t.Errorf("count cap: a group of %d, want 4", got)
	}
	if got := len(gather(step(100), ch, 16, 1<<20)); got != 3 { // the 2 left waiting, and no wait for more
		t.Errorf("what was waiting: a group of %d, want 3", got)
	}
	for range 5 {
		ch <- step(3 << 20)
	}
	if got := len(gather(step(3<<20), ch, 16, 8<<20)); got != 3 { // 9 MiB reached with the third
		t.Errorf("byte cap: a group of %d, want 3", got)
	}
	close(ch)
	if got := len(gather(step(1), ch, 16, 32<<20)); got != 4 { // the 3 left, then the closed channel
		t.Errorf("closed channel: a group of %d, want 4", got)
	}
}

// TestByteBudget: acquiring waits while the bytes are out, a request above the whole budget takes all
// of it, and a release lets the waiter go on.
func TestByteBudget(t *testing.T) {
	b := newByteBudget(100)
	b.acquire(60)
	b.release(60)
	b.acquire(1000) // more than the budget: takes all of it
	got := make(chan struct{})
	go func() { b.acquire(1); close(got) }()
	select {
	case <-got:
		t.Fatal("acquired although everything was out")
	case <-time.After(20 * time.Millisecond):
	}
	b.release(1000)
	<-got
	if b.free != 99 {
		t.Errorf("free %d after release, want 99", b.free)
	}
}

// TestPlanOncePerRound: a round works out the encryption plan once for the same address, agency and
// certificate (whatever the spelling of the address), again for another certificate, and does not
// keep a plan that failed.
func TestPlanOncePerRound(t *testing.T) {
	rc := newRoundCache(nil, nil, nil)
	a, b := &x509.Certificate{Raw: []byte("certificate a")}, &x509.Certificate{Raw: []byte("certificate b")}
	var made int
	work := func(c cms.Cipher) func() (smime.Plan, error) {
		return func() (smime.Plan, error) { made++; return smime.Plan{Cipher: c}, nil }
	}
	for _, mail := range []string{"bob@council.example", "Bob@Council.example"} {
		pl, err := rc.plan(mail, "council", a, work(cms.AES256GCM))
		if err != nil || pl.Cipher != cms.AES256GCM {
			t.Fatalf("plan = %+v, %v", pl, err)
		}
	}
	if pl, _ := rc.plan("bob@council.example", "council", b, work(cms.AES256CBC)); pl.Cipher != cms.AES256CBC {
		t.Fatalf("another certificate's plan = %+v", pl)
	}
	if made != 2 {
		t.Fatalf("made %d plans, want 2 (one per certificate)", made)
	}
	down := errors.New("store down")
	if _, err := rc.plan("carol@council.example", "council", a, func() (smime.Plan, error) { return smime.Plan{}, down }); !errors.Is(err, down) {
		t.Fatalf("failed plan: %v", err)
	}
	if _, err := rc.plan("carol@council.example", "council", a, work(cms.AES256GCM)); err != nil || made != 3 {
		t.Fatalf("after a failure the plan is made again: %v, made %d", err, made)
	}
}
