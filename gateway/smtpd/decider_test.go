package smtpd

import (
	"context"
	"time"

	"cafgate/directory"
	"cafgate/mailbox"
	"cafgate/policy"
)

// allowAll is a consent decider that delivers everything to everyone, for tests of the SMTP door
// behind the real intake.
type allowAll struct{}

func (allowAll) DecidePackage(_ context.Context, at time.Time, _ *directory.Practitioner, to []mailbox.Addressee, p policy.Package) (*mailbox.PackageDecision, error) {
	pd := &mailbox.PackageDecision{At: at, Package: p}
	for _, a := range to {
		pd.Decisions = append(pd.Decisions, policy.Decision{Recipient: a.Mail, Result: policy.DeliverAll, Reason: policy.ReasonConsent})
	}
	return pd, nil
}

func (allowAll) RecordDecisions(context.Context, string, *mailbox.PackageDecision) error { return nil }
