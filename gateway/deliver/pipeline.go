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
	Message(ctx context.Context, id string) (*mailbox.Stored, error)
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
	Batch           int           // recipients taken per round; default 64
	// Held reports whether an operator holds delivery (`cafgate queue pause`): while it does, or
	// cannot tell, a round takes nothing and recipients stay pending. nil: never held.
	Held func(ctx context.Context) (bool, error)
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
		opt.Batch = 64
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
	queued := false
	for _, w := range work {
		if ctx.Err() != nil {
			break // stopping: the rest stays pending for the next start
		}
		step, err := p.step(ctx, w)
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
		if done {
			p.opt.Log.Info("delivery", "id", w.MessageID, "state", step.State, "event", step.EventType)
			queued = queued || len(step.Outbound) > 0
			if step.Hosted != nil || (step.Link != nil && step.LinkHosted) {
				p.opt.Delivered(w.Recipient)
			}
		}
	}
	if queued {
		p.opt.Queued()
	}
	return len(work)
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
