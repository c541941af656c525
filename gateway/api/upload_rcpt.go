// Recipients of an upload, checked as SMTP's RCPT checks them: a refused recipient drops out of the
// package (as a refused RCPT does) and the answer says why; only when every recipient is refused is the
// upload refused. A temporary failure (a directory that is down) refuses the whole upload, so a
// recipient is never dropped for a reason that would have passed a moment later.

package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"cafgate/directory"
	"cafgate/gateway/fault"
	"cafgate/policy"
)

// refusal is one recipient refused before the package was read: by the directory check or for a
// malformed address.
type refusal struct {
	Recipient string `json:"recipient"`
	Field     string `json:"field"`
	Decision  string `json:"decision"` // always "refuse"
	Reason    string `json:"reason"`
	Detail    string `json:"detail"`
	ID        string `json:"id"` // the ID of the log line that recorded the refusal
	kind      fault.Kind
}

// Reason codes of recipients refused before the package was read. The first three are the policy's
// own (the policy gives them when a directory entry changes between the check and the decision).
const (
	reasonRecipientUnknown      = string(policy.ReasonRecipientUnknown)
	reasonRecipientDisabled     = string(policy.ReasonRecipientDisabled)
	reasonRecipientLapsed       = string(policy.ReasonRecipientLapsed)
	reasonRecipientMalformed    = "recipient-malformed"
	reasonRecipientNotPermitted = "recipient-not-permitted"
	reasonNotAccepted           = "recipient-not-accepted"
)

// checkRecipients checks every recipient as SMTP's RCPT does. It fills up.allowed and up.refused; a
// temporary failure, or too many recipients, is a problem for the whole upload.
func (h *Handler) checkRecipients(rq *request, up *upload) *Problem {
	if len(up.recipients) > h.opt.Limits.MaxRecipients {
		return faultProblem(fault.TooManyRecipients, fmt.Sprintf("Too many recipients for one package (at most %d); send the rest in another.", h.opt.Limits.MaxRecipients),
			up.rcptField(h.opt.Limits.MaxRecipients), nil)
	}
	up.allowed, up.refused = up.allowed[:0], up.refused[:0]
	for i, rcpt := range up.recipients {
		err := h.opt.Intake.Recipient(rq.ctx, rq.actor, rcpt, rq.ic)
		if err == nil {
			up.allowed = append(up.allowed, rcpt)
			continue
		}
		fe := fault.From(err)
		if fe.Temporary() || fe.Face().HTTP >= 500 {
			p := fromFault(err)
			p.logged, p.Field = true, up.rcptField(i)
			return p
		}
		up.refused = append(up.refused, refusal{Recipient: rcpt, Field: up.rcptField(i), Decision: string(policy.Refuse),
			Reason: rcptReason(fe), Detail: fe.Sentence(), ID: fe.ID, kind: fe.Kind})
	}
	rq.note("refused_recipients", len(up.refused))
	if len(up.allowed) == 0 {
		return allRefused(up.refused)
	}
	return nil
}

// rcptReason is the reason code of a recipient refused by the directory check.
func rcptReason(fe *fault.Error) string {
	switch {
	case fe.Kind == fault.UnknownRecipient:
		return reasonRecipientUnknown
	case fe.Kind == fault.BadCommand:
		return reasonRecipientMalformed
	case errors.Is(fe.Cause, directory.ErrDisabled):
		return reasonRecipientDisabled
	case errors.Is(fe.Cause, directory.ErrVettingLapsed):
		return reasonRecipientLapsed
	}
	return reasonRecipientNotPermitted
}

// allRefused is the problem of an upload none of whose recipients may receive it: when every refusal
// is of one kind, that kind's problem (422 unknown-recipient, 403 not-permitted, 400 bad-request) with
// the first refusal's field and ID; when they are mixed, 403 not-permitted. Either way the problem
// lists every recipient's refusal.
func allRefused(rs []refusal) *Problem {
	first := rs[0]
	same := !slices.ContainsFunc(rs, func(r refusal) bool { return r.kind != first.kind })
	var p *Problem
	if same {
		detail := first.Detail
		if len(rs) > 1 {
			detail = "No recipient may receive this package: " + first.Detail
		}
		p = faultProblem(first.kind, detail, first.Field, nil)
		p.ID = first.ID
	} else {
		p = faultProblem(fault.NotPermitted, "No recipient may receive this package; each recipient's reason is listed.", first.Field, nil)
	}
	p.logged = true
	p.Recipients = rs
	return p
}

// withRefusals adds the recipients refused before the package was read to a refusal of the package
// itself (every other recipient refused by consent, say), so the answer names every recipient.
func withRefusals(p *Problem, up *upload) *Problem {
	if len(up.refused) > 0 && p.Status == http.StatusForbidden && p.slug() == "not-permitted" {
		p.Recipients = up.refused
	}
	return p
}
