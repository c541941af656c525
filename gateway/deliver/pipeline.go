// Package deliver is the delivery pipeline: for each accepted recipient still pending in the store of
// record, it builds the copy holding only the sections the recipient may see, seals it (signed by the
// gateway, encrypted to the recipient's validated certificate) and queues it for the relay, recording
// each step and its ledger event in one transaction. It works from rows, never from memory, so a
// restart resumes where it stopped.
package deliver

import (
	"context"
	"crypto/x509"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"cafgate/certs/validate"
	"cafgate/directory"
	"cafgate/envelope/cms"
	"cafgate/envelope/smime"
	"cafgate/mailbox"
	"cafgate/policy"
)

// Store is what the pipeline needs of the store of record.
type Store interface {
	PendingDeliveries(ctx context.Context, limit int) ([]mailbox.DeliveryWork, error)
	FinishDelivery(ctx context.Context, step mailbox.DeliveryStep) (bool, error)
	FinishDeliveries(ctx context.Context, steps []mailbox.DeliveryStep) ([]bool, error)
	Message(ctx context.Context, id string) (*mailbox.Stored, error)
	MessageContent(ctx context.Context, id string) ([]byte, error)
	DecidePackage(ctx context.Context, at time.Time, sender *directory.Practitioner, to []mailbox.Addressee, p policy.Package) (*mailbox.PackageDecision, error)
	RecordDecisions(ctx context.Context, messageID string, pd *mailbox.PackageDecision) error
	SendReports(ctx context.Context, opt mailbox.ReportOptions) (int, error)
	SendOverrideNotices(ctx context.Context, hostname string) (int, error)
}

// Validator checks a recipient's certificate for encryption.
type Validator interface {
	Validate(ctx context.Context, req validate.Request) (*validate.Result, error)
}

// Options wire the pipeline.
type Options struct {
	Store     Store
	Dir       directory.Directory
	Validator Validator
	Signer    *cms.Signer   // the gateway's S/MIME identity; nil: no copy can be sealed
	Sealing   *smime.Policy // cipher choice and escrow recipients; nil: AES-256-GCM to the recipient only
	Hostname  string
	Queued    func() // told after a step queued mail (the relay's Wake)
	// Hosted reports whether a recipient's mailbox is hosted here (their copy goes into it instead of
	// the outbound queue); Delivered is told after such a copy is stored (the IMAP notifier).
	Hosted    func(mail string) bool
	Delivered func(mail string)
	// Notice builds the one-time-link notification for a recipient without a usable certificate;
	// nil: such recipients wait (state "waiting"). Link sets the links' lifetime and download limit.
	Notice mailbox.BuildNotice
	Link   mailbox.LinkRequest
	// Reports say how the senders' delivery reports are sent (Hostname defaults to the pipeline's).
	// With NoReports neither reports nor override notices are sent.
	Reports   mailbox.ReportOptions
	NoReports bool
	// CheckpointEvery is the least time between two ledger checkpoints signed so that due reports'
	// proofs are covered (a report waits for the next one); default 5s.
	CheckpointEvery time.Duration
	Log             *slog.Logger
	Now             func() time.Time
	Interval        time.Duration // how often to look for work when not kicked; default 2s
	Batch           int           // recipients taken per round; default 256
	// Workers is how many recipients' copies are built and sealed at once; default GOMAXPROCS.
	// CommitBatch is the most finished steps recorded in one transaction (group commit); default 64.
	// Workers 1 with CommitBatch 1 is the serial pipeline: seal one copy, commit it, take the next.
	Workers     int
	CommitBatch int
	// Held reports whether an operator holds delivery (`cafgate queue pause`): while it does, or
	// cannot tell, a round takes nothing and recipients stay pending. nil: never held.
	Held func(ctx context.Context) (bool, error)
	// Builder, when set, is the relay's builder of queued copies (relay.Options.Build): the packages
	// a round reads go into its cache, so the relay's attempts that follow do not read them again.
	Builder *Builder
}

// Pipeline is the delivery worker.
type Pipeline struct {
	opt    Options
	kick   chan struct{}
	lastCP time.Time // when Tell last let the reports sign a checkpoint (Run's goroutine only)
}

// New returns a pipeline; Run starts it.
func New(opt Options) *Pipeline {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Interval <= 0 {
		opt.Interval = 2 * time.Second
	}
	if opt.Batch <= 0 {
		opt.Batch = 256
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.CommitBatch <= 0 {
		opt.CommitBatch = 64
	}
	if opt.Queued == nil {
		opt.Queued = func() {}
	}
	if opt.Hosted == nil {
		opt.Hosted = func(string) bool { return false }
	}
	if opt.Delivered == nil {
		opt.Delivered = func(string) {}
	}
	if opt.CheckpointEvery <= 0 {
		opt.CheckpointEvery = 5 * time.Second
	}
	if opt.Reports.Hostname == "" {
		opt.Reports.Hostname = opt.Hostname
	}
	return &Pipeline{opt: opt, kick: make(chan struct{}, 1)}
}

// shared is the Builder's package cache, or nil.
func (p *Pipeline) shared() *packageCache {
	if p.opt.Builder == nil {
		return nil
	}
	return p.opt.Builder.packages
}

// Kick asks for a round now (after an acceptance).
func (p *Pipeline) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run works until ctx ends.
func (p *Pipeline) Run(ctx context.Context) error {
	t := time.NewTicker(p.opt.Interval)
	defer t.Stop()
	for {
		for p.Round(ctx) == p.opt.Batch && ctx.Err() == nil {
		}
		p.Tell(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-p.kick:
		}
	}
}

// Round handles up to Batch pending recipients and returns how many it took.
func (p *Pipeline) Round(ctx context.Context) int {
	if p.opt.Held != nil {
		if held, err := p.opt.Held(ctx); held || err != nil {
			return 0 // held (or the store cannot say): everything stays pending
		}
	}
	work, err := p.opt.Store.PendingDeliveries(ctx, p.opt.Batch)
	if err != nil {
		if ctx.Err() == nil {
			p.opt.Log.Warn("delivery: reading pending recipients", "err", err)
		}
		return 0
	}
	var queued bool
	if p.opt.Workers <= 1 && p.opt.CommitBatch <= 1 {
		queued = p.serial(ctx, work)
	} else {
		queued = p.concurrent(ctx, work)
	}
	if queued {
		p.opt.Queued()
	}
	return len(work)
}

// serial seals one recipient's copy and commits its step before taking the next.
func (p *Pipeline) serial(ctx context.Context, work []mailbox.DeliveryWork) (queued bool) {
	pkgs := newRoundCache(p.opt.Store, work, p.shared())
	for _, w := range work {
		if ctx.Err() != nil {
			break // stopping: the rest stays pending for the next start
		}
		step, err := p.step(ctx, w, pkgs)
		if err != nil {
			// Left pending: the next round tries again (the store or directory may be back).
			p.opt.Log.Warn("delivery: recipient left pending", "id", w.MessageID, "err", err)
			continue
		}
		done, err := p.opt.Store.FinishDelivery(ctx, step)
		if err != nil {
			p.opt.Log.Warn("delivery: recording the step", "id", w.MessageID, "err", err)
			continue
		}
		queued = p.finished(step, done) || queued
	}
	return queued
}

// concurrent builds and seals the copies in Workers goroutines while this one records the finished
// steps, up to CommitBatch of them per transaction (those that finished while the previous commit
// was on its way to the disk). Nothing is kept in memory past a commit: a step not committed (a
// crash, an error) leaves its recipient pending in the store, and the state update's "still
// pending" condition keeps a recipient from being served twice.
func (p *Pipeline) concurrent(ctx context.Context, work []mailbox.DeliveryWork) (queued bool) {
	jobs := make(chan mailbox.DeliveryWork)
	// Sealed copies wait here for their commit; bounded in number and in bytes (sealedBudget), so that
	// large packages do not pile up in memory when the store is slower than the workers (a worker then
	// waits to hand its copy over).
	steps := make(chan mailbox.DeliveryStep, p.opt.CommitBatch)
	budget := newByteBudget(sealedBudget)
	pkgs := newRoundCache(p.opt.Store, work, p.shared())
	var wg sync.WaitGroup
	for range min(p.opt.Workers, len(work)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range jobs {
				step, err := p.step(ctx, w, pkgs)
				if err != nil {
					// Left pending: the next round tries again (the store or directory may be back).
					p.opt.Log.Warn("delivery: recipient left pending", "id", w.MessageID, "err", err)
					continue
				}
				budget.acquire(stepBytes(step))
				steps <- step
			}
		}()
	}
	go func() {
		defer close(jobs)
		for _, w := range work {
			if ctx.Err() != nil {
				return // stopping: the rest stays pending for the next start
			}
			select {
			case jobs <- w:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		close(steps)
	}()
	for step := range steps {
		batch := gather(step, steps, p.opt.CommitBatch, commitBatchBytes)
		queued = p.commit(ctx, batch) || queued
		for _, st := range batch {
			budget.release(stepBytes(st))
		}
	}
	return queued
}

// commitBatchBytes ends a group commit early: sixteen 1 MiB packages' copies in one transaction held
// the store's writer for the time of writing tens of megabytes, while acceptances and the relay waited.
const commitBatchBytes = 8 << 20

// sealedBudget bounds the bytes of sealed copies waiting for their commit in one round.
const sealedBudget = 64 << 20

// byteBudget is a counting semaphore of bytes; a request larger than the whole budget takes all of it.
type byteBudget struct {
	mu         sync.Mutex
	cond       sync.Cond
	free, size int
}

func newByteBudget(size int) *byteBudget {
	b := &byteBudget{free: size, size: size}
	b.cond.L = &b.mu
	return b
}

func (b *byteBudget) acquire(n int) {
	n = min(n, b.size)
	b.mu.Lock()
	for b.free < n {
		b.cond.Wait()
	}
	b.free -= n
	b.mu.Unlock()
}

func (b *byteBudget) release(n int) {
	b.mu.Lock()
	b.free += min(n, b.size)
	b.mu.Unlock()
	b.cond.Broadcast()
}

// gather is first and the steps already waiting in steps, up to n of them or about maxBytes.
func gather(first mailbox.DeliveryStep, steps <-chan mailbox.DeliveryStep, n, maxBytes int) []mailbox.DeliveryStep {
	batch := []mailbox.DeliveryStep{first}
	size := stepBytes(first)
	for len(batch) < n && size < maxBytes {
		select {
		case s, ok := <-steps:
			if !ok {
				return batch
			}
			batch = append(batch, s)
			size += stepBytes(s)
		default:
			return batch
		}
	}
	return batch
}

// stepBytes is about what recording step writes: its copies' content.
func stepBytes(step mailbox.DeliveryStep) int {
	n := 0
	for _, o := range step.Outbound {
		n += len(o.Content)
	}
	if step.Hosted != nil {
		n += len(step.Hosted.Content)
	}
	return n
}

// commit records batch in one transaction; if that fails, each step on its own, so that one step the
// store refuses does not hold back the others.
func (p *Pipeline) commit(ctx context.Context, batch []mailbox.DeliveryStep) (queued bool) {
	if len(batch) > 1 {
		done, err := p.opt.Store.FinishDeliveries(ctx, batch)
		if err == nil {
			for i, step := range batch {
				queued = p.finished(step, done[i]) || queued
			}
			return queued
		}
		p.opt.Log.Warn("delivery: recording steps together; trying one by one", "steps", len(batch), "err", err)
	}
	for _, step := range batch {
		done, err := p.opt.Store.FinishDelivery(ctx, step)
		if err != nil {
			p.opt.Log.Warn("delivery: recording the step", "id", step.MessageID, "err", err)
			continue
		}
		queued = p.finished(step, done) || queued
	}
	return queued
}

// finished logs a committed step, tells the IMAP notifier of a hosted delivery, and reports whether
// the step queued mail for the relay.
func (p *Pipeline) finished(step mailbox.DeliveryStep, done bool) (queued bool) {
	if !done {
		return false
	}
	p.opt.Log.Info("delivery", "id", step.MessageID, "state", step.State, "event", step.EventType)
	if step.Hosted != nil || (step.Link != nil && step.LinkHosted) {
		p.opt.Delivered(step.Recipient)
	}
	return len(step.Outbound) > 0
}

// Tell sends the override notices to lead professionals and the delivery reports that are due. They
// are stored or queued from rows, so what a crash interrupts is sent on the next call.
func (p *Pipeline) Tell(ctx context.Context) {
	if p.opt.NoReports || ctx.Err() != nil {
		return
	}
	if n, err := p.opt.Store.SendOverrideNotices(ctx, p.opt.Hostname); err != nil && ctx.Err() == nil {
		p.opt.Log.Warn("delivery: override notices", "sent", n, "err", err)
	} else if n > 0 {
		p.opt.Log.Info("delivery: override notices sent", "count", n)
		p.opt.Queued()
	}
	ro := p.opt.Reports
	if now := p.opt.Now(); now.Sub(p.lastCP) < p.opt.CheckpointEvery {
		ro.NoCheckpoint = true
	} else {
		p.lastCP = now
	}
	if n, err := p.opt.Store.SendReports(ctx, ro); err != nil && ctx.Err() == nil {
		p.opt.Log.Warn("delivery: reports to senders", "sent", n, "err", err)
	} else if n > 0 {
		p.opt.Log.Info("delivery: reports to senders sent", "count", n)
		p.opt.Queued() // those to senders not hosted here wait in the queue
	}
}

func parseCerts(ders [][]byte) []*x509.Certificate {
	var out []*x509.Certificate
	for _, d := range ders {
		if c, err := x509.ParseCertificate(d); err == nil {
			out = append(out, c)
		}
	}
	return out
}
