package deliver

import (
	"context"
	"fmt"
	"strings"

	"cafgate/envelope/pkg"
	"cafgate/gateway/pickup"
	"cafgate/mailbox"
	"cafgate/policy"
)

// PickupContents is the pickup page's package source: the documents recipient may see of message
// messageID, decided afresh with the consent in force now (a withdrawal since the link was issued
// takes effect at once).
func (p *Pipeline) PickupContents(ctx context.Context, messageID, recipient string) (*pickup.Contents, error) {
	msg, err := p.opt.Store.Message(ctx, messageID)
	if err != nil {
		return nil, err
	}
	pk, err := pkg.ParseBytes(msg.Content, pkg.DefaultLimits())
	if err != nil {
		return nil, fmt.Errorf("the stored package no longer parses: %w", err)
	}
	if pk.Manifest.Child == "" {
		pk.Manifest.Child = pk.Manifest.Episode
	}
	sender, err := p.opt.Dir.Lookup(ctx, msg.Sender)
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	entry, err := p.opt.Dir.Lookup(ctx, recipient)
	if err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	pp := policy.Package{EpisodeRef: pk.Manifest.Episode, Sender: strings.ToLower(pk.Manifest.Sender),
		Override: pk.Manifest.OverrideReason != "", OverrideReason: pk.Manifest.OverrideReason}
	for _, s := range pk.Manifest.AllSections() {
		pp.Sections = append(pp.Sections, policy.Section(s))
	}
	pd, err := p.opt.Store.DecidePackage(ctx, p.opt.Now(), sender, []mailbox.Addressee{{Mail: recipient, Entry: entry}}, pp)
	if err != nil {
		return nil, err
	}
	d := pd.Decisions[0]
	if !d.Delivers() {
		return nil, pickup.ErrNotAllowed
	}
	allowed := make([]pkg.Section, 0, len(d.Allowed))
	for _, s := range d.Allowed {
		allowed = append(allowed, pkg.Section(s))
	}
	if len(allowed) == 0 {
		allowed = pk.Manifest.AllSections()
	}
	return pickup.FromPackage(pk, allowed)
}
