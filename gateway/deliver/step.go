package deliver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"cafgate/certs/validate"
	"cafgate/directory"
	"cafgate/envelope/pkg"
	"cafgate/envelope/smime"
	"cafgate/mailbox"
	"cafgate/mailbox/ledger"
	"cafgate/policy"
)

// step decides what to do for one pending recipient. An error leaves the recipient pending.
func (p *Pipeline) step(ctx context.Context, w mailbox.DeliveryWork, rc *roundCache) (mailbox.DeliveryStep, error) {
	now := p.opt.Now().UTC()
	step := mailbox.DeliveryStep{MessageID: w.MessageID, Recipient: w.Recipient, At: now}
	pk, done, err := rc.get(ctx, w.MessageID)
	defer done()
	if err != nil {
		return step, err
	}
	if !w.Decided {
		if w.Decision, err = p.redecide(ctx, w, pk); err != nil {
			return step, err
		}
	}
	if !w.Decision.Delivers() {
		step.State = mailbox.StateRefused
		return step, nil
	}
	entry, err := p.opt.Dir.Lookup(ctx, w.Recipient)
	switch {
	case errors.Is(err, directory.ErrUnavailable):
		return step, err
	case err != nil:
		step.State = mailbox.StateRefused // gone from the directory since acceptance
		notDelivered(&step, "directory-gone")
		return step, nil
	}
	if entry.Standing(now) != nil {
		step.State = mailbox.StateRefused // lapsed or disabled since acceptance: receives nothing
		notDelivered(&step, "standing")
		return step, nil
	}
	// The copy itself is built here only for a hosted mailbox; a remote one is built when sent.
	size, err := copySize(pk, w.Decision.Allowed)
	if errors.Is(err, pkg.ErrNothingAllowed) {
		step.State = mailbox.StateRefused // consent lets none of this package's documents go to them
		notDelivered(&step, "nothing-allowed")
		return step, nil
	}
	if err != nil {
		return step, fmt.Errorf("building the copy: %w", err)
	}
	cert := rc.usable(entry, func() *x509.Certificate { return p.usableCertificate(ctx, entry) })
	if cert == nil || p.opt.Signer == nil {
		if p.opt.Notice == nil {
			step.State = mailbox.StateWaiting // no pickup page configured: nothing can reach them yet
			return step, nil
		}
		// No usable certificate: a notification with a one-time link to the pickup page, which
		// shows only the sections the decision allows.
		req := p.opt.Link
		req.MessageID, req.Recipient = w.MessageID, w.Recipient
		step.State, step.Link, step.Notice = mailbox.StateNotified, &req, p.opt.Notice
		step.LinkHosted = p.opt.Hosted(w.Recipient)
		return step, nil
	}
	plan, err := rc.plan(w.Recipient, entry.Agency, cert, func() (smime.Plan, error) {
		return p.opt.Sealing.Plan(ctx, w.Recipient, entry.Agency, cert)
	})
	if err != nil {
		return step, fmt.Errorf("choosing the encryption: %w", err)
	}
	fp := sha256.Sum256(cert.Raw)
	step.EventType = "encrypted"
	step.EventData = mailbox.SealedEvent(mailbox.EncryptedEvent(w.Recipient, hex.EncodeToString(fp[:]), w.Decision.Allowed),
		plan.Cipher.String(), plan.Why, plan.Escrow)
	headerID := fmt.Sprintf("<%s.%s@%s>", w.MessageID, shortHash(w.Recipient), p.opt.Hostname)
	header := copyHeader(w.Sender, entry.Mail, pk.Manifest.Episode, now, headerID)
	if !p.opt.Hosted(w.Recipient) {
		// Sealed by the relay when it sends it (recipe.go); the event above is the plan it seals by.
		rcp, certs := newRecipe(w, entry.Mail, pk.Manifest.Episode, now, headerID, plan)
		rb, err := json.Marshal(rcp)
		if err != nil {
			return step, fmt.Errorf("recording the copy's recipe: %w", err)
		}
		step.State = mailbox.StateQueued
		step.Outbound = []*mailbox.Outbound{{MessageID: w.MessageID, From: w.Sender, Recipient: w.Recipient,
			Recipe: rb, HeaderMessageID: headerID, Size: len(header) + size, Certificates: certs}}
		return step, nil
	}
	body, err := copyBody(pk, w.Decision.Allowed)
	if err != nil {
		return step, fmt.Errorf("building the copy: %w", err)
	}
	var sealed bytes.Buffer
	err = smime.Seal(&sealed, append([]byte(header), body...), smime.SealOptions{Signer: p.opt.Signer, Encrypt: &plan.Encrypt})
	if err != nil {
		return step, fmt.Errorf("sealing: %w", err)
	}
	step.State = mailbox.StateDelivered
	step.Hosted = &mailbox.Delivery{MessageID: w.MessageID, Recipient: w.Recipient, Content: sealed.Bytes()}
	return step, nil
}

// usableCertificate returns the first of the recipient's directory certificates that passes every
// check for encryption (usage, dates, the agency's anchor, mail address, revocation), or nil.
func (p *Pipeline) usableCertificate(ctx context.Context, e *directory.Practitioner) *x509.Certificate {
	if p.opt.Validator == nil {
		return nil
	}
	for _, c := range parseCerts(e.Certificates) {
		vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := p.opt.Validator.Validate(vctx, validate.Request{Cert: c, Mail: e.Mail, Agency: e.Agency, Usage: validate.ForEncryption})
		cancel()
		if err == nil {
			return c
		}
		p.opt.Log.Info("delivery: certificate not used", "recipient_dn", e.DN, "reason", string(validate.ReasonOf(err)))
	}
	return nil
}

// redecide makes the decision that a crash kept from being recorded at acceptance, as it would have
// been then (consent in force at the acceptance time), and records it.
func (p *Pipeline) redecide(ctx context.Context, w mailbox.DeliveryWork, pk *pkg.Package) (policy.Decision, error) {
	sender, err := p.opt.Dir.Lookup(ctx, w.Sender)
	if err != nil {
		return policy.Decision{}, fmt.Errorf("re-deciding: sender: %w", err)
	}
	entry, err := p.opt.Dir.Lookup(ctx, w.Recipient)
	if errors.Is(err, directory.ErrUnavailable) {
		return policy.Decision{}, err
	}
	pp := policy.Package{EpisodeRef: pk.Manifest.Episode, Sender: strings.ToLower(pk.Manifest.Sender),
		Override: pk.Manifest.OverrideReason != "", OverrideReason: pk.Manifest.OverrideReason}
	for _, s := range pk.Manifest.AllSections() {
		pp.Sections = append(pp.Sections, policy.Section(s))
	}
	pd, err := p.opt.Store.DecidePackage(ctx, w.ReceivedAt, sender, []mailbox.Addressee{{Mail: w.Recipient, Entry: entry}}, pp)
	if err != nil {
		return policy.Decision{}, err
	}
	if err := p.opt.Store.RecordDecisions(ctx, w.MessageID, pd); err != nil {
		p.opt.Log.Warn("delivery: recording a re-made decision", "id", w.MessageID, "err", err)
	}
	return pd.Decisions[0], nil
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:6])
}

// notDelivered records, with the step's state change, why a recipient the acceptance allowed gets
// nothing (the acceptance's own refusals are in its "decisions" event already).
func notDelivered(step *mailbox.DeliveryStep, reason string) {
	step.EventType = ledger.NotDelivered
	step.EventData = ledger.NotDeliveredData{Recipient: step.Recipient, Reason: reason}
}
