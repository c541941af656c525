package intake

import (
	"context"
	"errors"
	"strings"
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
	to := make([]mailbox.Addressee, 0, len(s.Recipients))
	for _, r := range s.Recipients {
		mail := NormalizeMail(r)
		e, err := in.Dir.Lookup(ctx, mail)
		switch {
		case errors.Is(err, directory.ErrNotFound):
			e = nil
		case err != nil:
			return nil, in.lookupFault(err, "recipient")
		}
		to = append(to, mailbox.Addressee{Mail: mail, Entry: e})
	}
	pp := policy.Package{EpisodeRef: p.Manifest.Episode, Sender: NormalizeMail(p.Manifest.Sender),
		Override: p.Manifest.OverrideReason != "", OverrideReason: p.Manifest.OverrideReason}
	for _, sec := range p.Manifest.AllSections() {
		pp.Sections = append(pp.Sections, policy.Section(sec))
	}
	pd, err := in.Decider.DecidePackage(ctx, at, s.Sender, to, pp)
	if err != nil {
		return nil, storeFault(err)
	}
	if policy.AllRefused(pd.Decisions) {
		return nil, fault.New(fault.NotPermitted, strings.TrimSpace(policy.RefusalText(pd.Decisions)), nil)
	}
	return pd, nil
}

func storeFault(err error) *fault.Error {
	if errors.Is(err, mailbox.ErrFull) {
		return fault.New(fault.StoreFull, "", err)
	}
	return fault.New(fault.StoreUnavailable, "", err)
}
