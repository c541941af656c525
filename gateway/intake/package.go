package intake

import (
	"context"
	"errors"
	"time"

	"cafgate/directory"
	"cafgate/envelope/pkg"
	"cafgate/gateway/fault"
	"cafgate/mailbox"
	"cafgate/policy"
)

// Decider decides per recipient from the episode and the consent in force, and records the decisions.
type Decider interface {
	DecidePackage(ctx context.Context, at time.Time, sender *directory.Practitioner, to []mailbox.Addressee, p policy.Package) (*mailbox.PackageDecision, error)
	RecordDecisions(ctx context.Context, messageID string, pd *mailbox.PackageDecision) error
}

// readPackage parses the content as a CAF package and checks that it is the sender's own.
func (in *Intake) readPackage(s *Submission) (*pkg.Package, *fault.Error) {
	p, err := pkg.ParseBytes(s.Content, in.Limits)
	if err != nil {
		var pe *pkg.Error
		if errors.As(err, &pe) {
			fe := fault.New(fault.BadMessage, pe.Sentence(), err)
			fe.Field = pe.Field
			return nil, fe
		}
		return nil, fault.New(fault.BadMessage, "", err)
	}
	if m := p.Manifest.Sender; m != "" && NormalizeMail(m) != s.Sender.Mail {
		return nil, fault.New(fault.SenderMismatch, "The package names another practitioner as its sender; you may only send as yourself.", nil)
	}
	return p, nil
}

// decide asks the policy for every recipient's decision; a refusal of every recipient is a 550 5.7.1
// that names the reasons, and nothing is stored.
func (in *Intake) decide(ctx context.Context, s *Submission, p *pkg.Package, at time.Time) (*mailbox.PackageDecision, *fault.Error) {
	to, ferr := in.addressees(ctx, s)
	if ferr != nil {
		return nil, ferr
	}
	pd, err := in.Decider.DecidePackage(ctx, at, s.Sender, to, policyPackage(p))
	if err != nil {
		return nil, storeFault(err)
	}
	if policy.AllRefused(pd.Decisions) {
		return nil, refusal(pd.Decisions, p)
	}
	return pd, nil
}

func storeFault(err error) *fault.Error {
	if errors.Is(err, mailbox.ErrFull) {
		return fault.New(fault.StoreFull, "", err)
	}
	return fault.New(fault.StoreUnavailable, "", err)
}
