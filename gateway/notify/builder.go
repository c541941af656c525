// Builder turns a newly issued link into its queued notification, as mailbox.Store.Notify asks.

package notify

import (
	"time"

	"cafgate/gateway/pickup"
	"cafgate/mailbox"
)

// Builder holds the gateway's side of every notification.
type Builder struct {
	From     string // header From: the gateway's address (e.g. no-reply@gw.example)
	FromName string // its display name; default "CAF secure gateway"
	// EnvelopeFrom is the SMTP envelope sender, which delivery reports go to; default From.
	EnvelopeFrom string
	Report       string // where to report a notification received by mistake
	Hostname     string // for Message-IDs; default the domain of From
	BaseURL      string // the pickup page's base, e.g. https://gw.example/pickup/
	Location     *time.Location
	Now          func() time.Time // default time.Now
}

// Build is a mailbox.BuildNotice: the notification for l, addressed to its recipient.
func (b *Builder) Build(l *mailbox.IssuedLink) (*mailbox.Outbound, error) {
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	content, err := Build(Notice{From: b.From, FromName: b.FromName, To: l.Recipient, Agency: l.Agency,
		Link: pickup.LinkURL(b.BaseURL, l.Token), Expires: l.Expires, Report: b.Report, Hostname: b.Hostname,
		Date: now(), Location: b.Location})
	if err != nil {
		return nil, err
	}
	from := b.EnvelopeFrom
	if from == "" {
		from = b.From
	}
	return &mailbox.Outbound{From: from, Recipient: l.Recipient, Content: content}, nil
}

var _ mailbox.BuildNotice = (*Builder)(nil).Build
