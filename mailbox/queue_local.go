// The local route: mail the gateway itself originates (DSNs, link notifications, delivery reports,
// override notices) for a practitioner whose mailbox is hosted here is stored in that mailbox's INBOX
// inside the transaction that would have queued it, instead of being handed to the relay, which would
// only send it back to this gateway (or, with no MX for a hosted domain, bounce it).

package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"time"
)

// localRoute is the store's local route: which addresses are hosted, whom to tell of a delivery after
// its transaction commits, and the recipients delivered to in the transaction under way.
type localRoute struct {
	mu       sync.Mutex
	hosted   func(mail string) bool
	notify   func(mail string)
	notified []string // delivered in the current writer transaction; told after it commits
}

// RouteLocally makes the store deliver the mail it queues for an address hosted here (as hosted
// reports) into that address's hosted INBOX, and tell notify (the IMAP notifier) after the
// transaction commits. Package copies (kind message without About) are left alone: the delivery
// pipeline routes them itself. Call it once, before the store is used; nil hosted turns the route off.
func (s *Store) RouteLocally(hosted func(mail string) bool, notify func(mail string)) {
	s.local.mu.Lock()
	defer s.local.mu.Unlock()
	s.local.hosted, s.local.notify = hosted, notify
}

// routeLocal reports whether o goes to a hosted mailbox rather than the queue.
func (s *Store) routeLocal(o *Outbound) bool {
	s.local.mu.Lock()
	hosted := s.local.hosted
	s.local.mu.Unlock()
	if hosted == nil || o == nil || (o.Kind != KindDSN && o.About == "") {
		return false
	}
	return hosted(strings.ToLower(o.Recipient))
}

// deliverLocal stores o in its recipient's hosted INBOX inside tx, with the "delivered" event. The
// delivery key (message, kind, About) makes a second delivery of the same notice ErrDuplicate, or,
// with ifAbsent, a no-op, as a second queue entry would be.
func (s *Store) deliverLocal(ctx context.Context, tx *sql.Tx, at time.Time, o *Outbound, ifAbsent bool) error {
	if _, err := checkOutbound(o); err != nil {
		return err
	}
	kind := o.Kind
	if kind == "" {
		kind = KindMessage
	}
	notice := o.About
	if notice == "" {
		notice = kind
	}
	d := &Delivery{MessageID: o.MessageID, Recipient: o.Recipient, Content: o.Content, Notice: notice,
		Key: "gateway/" + o.MessageID + "/" + kind + "/" + o.About}
	_, err := s.DeliverToMailboxTx(ctx, tx, at, d)
	if errors.Is(err, ErrDuplicate) && ifAbsent {
		return nil
	}
	if err != nil {
		return err
	}
	s.local.mu.Lock()
	s.local.notified = append(s.local.notified, strings.ToLower(o.Recipient))
	s.local.mu.Unlock()
	return nil
}

// tellLocal tells the watchers of the mailboxes delivered to since the last call (after a commit; after
// a rollback the watchers look and find nothing new, which is harmless).
func (s *Store) tellLocal() {
	s.local.mu.Lock()
	who, notify := s.local.notified, s.local.notify
	s.local.notified = nil
	s.local.mu.Unlock()
	if notify == nil {
		return
	}
	for _, m := range who {
		notify(m)
	}
}
