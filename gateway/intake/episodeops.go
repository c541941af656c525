// Packages whose manifest changes the episode (operations) or records consent: the practitioners
// they name are looked up, and the store applies the changes, decides and accepts in one transaction.

package intake

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"cafgate/directory"
	"cafgate/envelope/pkg"
	"cafgate/gateway/fault"
	"cafgate/mailbox"
	"cafgate/policy"
)

// PackageStore is what a package that changes its episode needs of the store (mailbox.Store).
type PackageStore interface {
	AcceptPackage(ctx context.Context, m *mailbox.Incoming, plan *mailbox.PackagePlan) (*mailbox.PackageDecision, error)
	Episode(ctx context.Context, ref string) (*policy.Episode, error)
}

// decidedStore stores a package and its decisions in one transaction (mailbox.Store.AcceptDecided).
type decidedStore interface {
	AcceptDecided(ctx context.Context, m *mailbox.Incoming, pd *mailbox.PackageDecision) error
}

// changesEpisode reports whether the package asks for episode operations or records consent.
func changesEpisode(p *pkg.Package) bool {
	return len(p.Manifest.Operations) > 0 || p.Manifest.Consent != nil
}

// acceptChanges looks up what p's operations name, and has the store apply them, record the consent,
// decide and accept m, all or nothing.
func (in *Intake) acceptChanges(ctx context.Context, s *Submission, p *pkg.Package, m *mailbox.Incoming) *fault.Error {
	ps, ok := in.Store.(PackageStore)
	if !ok {
		return fault.New(fault.Internal, "", errors.New("intake: the store cannot apply episode operations"))
	}
	plan, ferr := in.plan(ctx, s, p)
	if ferr != nil {
		return ferr
	}
	pd, err := ps.AcceptPackage(ctx, m, plan)
	var refused *mailbox.RefusedError
	var perr *mailbox.PackageError
	switch {
	case err == nil:
		if p.Manifest.Opens() && pd != nil && pd.Episode != nil {
			s.Opened = pd.Episode.Ref
		}
		return nil
	case errors.As(err, &refused):
		return refusal(refused.Decision.Decisions, p)
	case errors.As(err, &perr):
		return in.operationFault(ctx, s.Sender, p, perr)
	}
	return storeFault(err)
}

// plan turns the manifest's operations and consent into the store's plan.
func (in *Intake) plan(ctx context.Context, s *Submission, p *pkg.Package) (*mailbox.PackagePlan, *fault.Error) {
	mf := &p.Manifest
	if mf.Opens() && p.EpisodeField != "" {
		return nil, fieldFault(fault.BadMessage, p.EpisodeField, "names an episode, but the package opens a new one; the gateway gives the new episode its reference, so leave the reference out")
	}
	plan := &mailbox.PackagePlan{Sender: s.Sender, ChildID: mf.Child}
	for i, op := range mf.Operations {
		at := "/operations/" + strconv.Itoa(i)
		po := mailbox.PackageOp{Op: op.Op, Field: at}
		var ferr *fault.Error
		switch op.Op {
		case pkg.OpOpen:
			if po.Lead, ferr = in.practitioner(ctx, at+"/lead", op.Lead); ferr != nil {
				return nil, ferr
			}
			for j, mail := range op.Members {
				member, ferr := in.practitioner(ctx, at+"/members/"+strconv.Itoa(j), mail)
				if ferr != nil {
					return nil, ferr
				}
				po.Team = append(po.Team, member)
			}
		case pkg.OpHandover:
			if po.Lead, ferr = in.practitioner(ctx, at+"/lead", op.Lead); ferr != nil {
				return nil, ferr
			}
		case pkg.OpTransition:
			st, err := policy.ParseState(op.State)
			if err != nil || st == policy.StateClosed {
				return nil, fieldFault(fault.BadMessage, at+"/state", "is not a state an episode can be moved to with transition (use close to close it)")
			}
			po.State = st
		case pkg.OpClose:
		default:
			return nil, fieldFault(fault.BadMessage, at+"/op", "asks for "+op.Op+", which this gateway does not apply yet; change the team with the lead professional through cafgate or its API")
		}
		plan.Ops = append(plan.Ops, po)
	}
	if c := mf.Consent; c != nil {
		pc, ferr := consentFrom(c)
		if ferr != nil {
			return nil, ferr
		}
		plan.Consent = pc
	}
	to, ferr := in.addressees(ctx, s)
	if ferr != nil {
		return nil, ferr
	}
	plan.To = to
	plan.Package = policyPackage(p)
	return plan, nil
}

// practitioner looks up a practitioner a manifest field names.
func (in *Intake) practitioner(ctx context.Context, field, mail string) (*directory.Practitioner, *fault.Error) {
	pr, err := in.Dir.Lookup(ctx, NormalizeMail(mail))
	switch {
	case err == nil:
		return pr, nil
	case errors.Is(err, directory.ErrUnavailable):
		return nil, fault.New(fault.DirectoryUnavailable, "", err)
	case errors.Is(err, directory.ErrAmbiguous):
		return nil, fieldFault(fault.NotPermitted, field, "names an address that more than one directory entry has; the agency administrator must correct it first")
	case errors.Is(err, directory.ErrNotFound):
		return nil, fieldFault(fault.NotPermitted, field, "names no practitioner known to any agency directory")
	}
	return nil, fault.New(fault.DirectoryUnavailable, "", err)
}

// consentFrom turns the manifest's consent into a consent version (a refusal of several sections is
// one refusal per section).
func consentFrom(c *pkg.ConsentRecord) (*policy.Consent, *fault.Error) {
	given, err := time.Parse(time.RFC3339Nano, c.GivenAt)
	if err != nil {
		return nil, fieldFault(fault.BadMessage, "/consent/given_at", "is not a date and time like 2026-03-01T10:30:00Z")
	}
	out := &policy.Consent{GivenBy: policy.Giver(c.GivenBy), GivenAt: given, Withdrawn: c.Withdrawn}
	for _, g := range c.Grants {
		gr := policy.Grant{To: policy.ScopeTeam}
		switch {
		case g.Agency != "":
			gr = policy.Grant{To: policy.ScopeAgency, Name: g.Agency}
		case g.Practitioner != "":
			gr = policy.Grant{To: policy.ScopePerson, Name: g.Practitioner}
		}
		for _, s := range g.Sections {
			gr.Sections = append(gr.Sections, policy.Section(s))
		}
		out.Grants = append(out.Grants, gr)
	}
	for _, r := range c.Refusals {
		of, name := policy.ScopeAgency, r.Agency
		if r.Practitioner != "" {
			of, name = policy.ScopePerson, r.Practitioner
		}
		if len(r.Sections) == 0 {
			out.Refusals = append(out.Refusals, policy.Refusal{Of: of, Name: name})
		}
		for _, s := range r.Sections {
			out.Refusals = append(out.Refusals, policy.Refusal{Of: of, Name: name, Section: policy.Section(s)})
		}
	}
	return out, nil
}

// operationFault is the answer to an operation or consent the store would not apply.
func (in *Intake) operationFault(ctx context.Context, sender *directory.Practitioner, p *pkg.Package, perr *mailbox.PackageError) *fault.Error {
	var open *mailbox.OpenEpisodeError
	err := perr.Err
	switch {
	case errors.As(err, &open):
		// The open episode's reference is named only to a member of its team (as the API does).
		if ps, ok := in.Store.(PackageStore); ok {
			if ep, e := ps.Episode(ctx, open.Ref); e == nil && ep.OnTeam(sender.Mail) {
				return withCause(fieldFault(fault.NotPermitted, perr.Field, "this child already has an open episode, "+open.Ref+"; hand it over or close it instead of opening another"), err)
			}
		}
		return withCause(fieldFault(fault.NotPermitted, perr.Field, "this child already has an open episode, and you are not on its team; ask its lead professional to add you instead of opening another"), err)
	case errors.Is(err, mailbox.ErrEpisodeNotFound):
		return withCause(fieldFault(fault.NotPermitted, episodeField(p), "no episode has the reference "+p.Manifest.Episode), err)
	case errors.Is(err, mailbox.ErrEpisodeClosed):
		return withCause(fieldFault(fault.NotPermitted, perr.Field, "episode "+p.Manifest.Episode+" is closed; this change can no longer be made to it (open a new episode instead)"), err)
	case errors.Is(err, policy.ErrInvalid), errors.Is(err, mailbox.ErrInvalid):
		return withCause(fieldFault(fault.NotPermitted, perr.Field, plainReason(err)), err)
	}
	return storeFault(err)
}

// refusal is the answer when every recipient is refused: the reasons in words, and the field at fault
// when it is the episode itself (unknown or closed) that refused them all.
func refusal(ds []policy.Decision, p *pkg.Package) *fault.Error {
	same := len(ds) > 0
	for _, d := range ds {
		same = same && d.Reason == ds[0].Reason
	}
	if same && (ds[0].Reason == policy.ReasonUnknownEpisode || ds[0].Reason == policy.ReasonEpisodeClosed) {
		reason := "no episode has the reference " + p.Manifest.Episode
		if p.Manifest.Episode == "" {
			reason = "names no episode reference this gateway knows (the form is CAF-YYYY-NNNNNN)"
		}
		if ds[0].Reason == policy.ReasonEpisodeClosed {
			reason = "episode " + p.Manifest.Episode + " is closed; nothing more is shared under it (a new episode must be opened)"
		}
		fe := fieldFault(fault.NotPermitted, episodeField(p), reason)
		fe.Message = "Not sent to anyone. " + fe.Message
		return fe
	}
	return fault.New(fault.NotPermitted, strings.TrimSpace(policy.RefusalText(ds)), nil)
}

func episodeField(p *pkg.Package) string {
	if p.EpisodeField != "" {
		return p.EpisodeField
	}
	return "/episode"
}

// fieldFault is a refusal that names the field: "The package was refused at FIELD: REASON."
func fieldFault(k fault.Kind, field, reason string) *fault.Error {
	fe := fault.New(k, (&pkg.Error{Field: field, Reason: reason}).Sentence(), nil)
	fe.Field = field
	return fe
}

func withCause(fe *fault.Error, cause error) *fault.Error {
	fe.Cause = cause
	return fe
}

// plainReason is a policy or store refusal without its package prefixes, starting lower-case to
// follow "at FIELD:". These texts name mail addresses, states and sections, never a child's identifier.
func plainReason(err error) string {
	s := err.Error()
	for _, prefix := range []string{"policy: invalid: ", "mailbox: invalid message: ", "mailbox: "} {
		s = strings.ReplaceAll(s, prefix, "")
	}
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	if s == "" {
		return "this change may not be made"
	}
	return s
}

// addressees looks up every recipient; one no directory knows is decided (refused) by the policy.
func (in *Intake) addressees(ctx context.Context, s *Submission) ([]mailbox.Addressee, *fault.Error) {
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
	return to, nil
}

// policyPackage is what the policy needs to know of p.
func policyPackage(p *pkg.Package) policy.Package {
	pp := policy.Package{EpisodeRef: p.Manifest.Episode, Sender: NormalizeMail(p.Manifest.Sender),
		Override: p.Manifest.OverrideReason != "", OverrideReason: p.Manifest.OverrideReason}
	for _, sec := range p.Manifest.AllSections() {
		pp.Sections = append(pp.Sections, policy.Section(sec))
	}
	return pp
}

// acceptDecided stores m with its decisions in one transaction when the store can, else (a store
// without AcceptDecided, in tests) the message then its decisions.
func (in *Intake) acceptDecided(ctx context.Context, m *mailbox.Incoming, pd *mailbox.PackageDecision) error {
	if ds, ok := in.Store.(decidedStore); ok {
		return ds.AcceptDecided(ctx, m, pd)
	}
	if err := in.Store.Accept(ctx, m); err != nil {
		return err
	}
	if err := in.Decider.RecordDecisions(ctx, m.ID, pd); err != nil {
		in.Log.Error("recording decisions", "id", m.ID, "err", fmt.Sprint(err))
	}
	return nil
}
