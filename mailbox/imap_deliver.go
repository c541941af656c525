// Delivery into hosted mailboxes: a per-recipient copy lands in the recipient's INBOX with its
// "delivered" ledger event in the same transaction, which may be the caller's (so the pipeline's state
// change, the queue and the delivery commit together). A read receipt (MDN) delivered from a
// recipient also records "read" against the package it answers.

package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"cafgate/mailbox/ledger"
)

// Delivery is one copy for one hosted recipient.
type Delivery struct {
	// MessageID is the accepted message (messages.id) this copy is of; the "delivered" event names it.
	// It may be empty for mail that is not a package.
	MessageID string
	// Recipient is the hosted practitioner's mail address.
	Recipient string
	// From is the authenticated sender of the content. When the content is a read receipt (RFC 8098
	// MDN, disposition "displayed") from From about a package From received, a "read" event is recorded.
	From string
	// Content is the whole RFC 5322 message (for a package, the per-recipient S/MIME message).
	Content []byte
	// Flags are the new message's flags (usually none).
	Flags []string
	// Notice, for mail the gateway wrote about MessageID rather than a copy of it, says what it is; it
	// goes into the "delivered" event (ledger.DeliveredData.Notice).
	Notice string
	// Key makes the delivery unique for the recipient: a second delivery with the same Key is refused
	// with ErrDuplicate and stores nothing. Default: the content's Message-ID header, else MessageID;
	// with neither, deliveries are not deduplicated.
	Key string
}

// Delivered is where a delivery landed.
type Delivered struct {
	Recipient   string
	Folder      string // always INBOX
	UIDValidity uint32
	UID         uint32
	Read        bool // the content was a read receipt and a "read" event was recorded
}

// DeliverToMailbox delivers d in a transaction of its own at the store's clock. Notify the recipient's
// watchers (Notifier.Notify(d.Recipient)) once it returns without error.
func (s *Store) DeliverToMailbox(ctx context.Context, d *Delivery) (*Delivered, error) {
	var out *Delivered
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = s.DeliverToMailboxTx(ctx, tx, s.opt.Now(), d)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeliverToMailboxTx delivers d inside tx (a write transaction from Tx) at time at: the recipient and
// their default folders are created if needed, the content is sealed, the message gets INBOX's next UID,
// and the "delivered" event (and "read" for a receipt) is appended. Nothing is visible until tx commits;
// notify the recipient's watchers after the commit. Errors: ErrInvalid (no recipient or content),
// ErrDuplicate (Key delivered before; tx remains usable), ErrMailboxLimit, or a database error.
func (s *Store) DeliverToMailboxTx(ctx context.Context, tx *sql.Tx, at time.Time, d *Delivery) (*Delivered, error) {
	rcpt := strings.ToLower(strings.TrimSpace(d.Recipient))
	if !plausibleMail(rcpt) || len(d.Content) == 0 {
		return nil, fmt.Errorf("%w: hosted delivery needs a recipient address and content", ErrInvalid)
	}
	flags, err := CanonicalFlags(d.Flags)
	if err != nil {
		return nil, err
	}
	c, err := s.sealCopy(d.Content)
	if err != nil {
		return nil, err
	}
	key := hostedFirst(d.Key, c.headerMessageID, d.MessageID)
	h, inbox, err := s.hostedInbox(ctx, tx, rcpt, at)
	if err != nil {
		return nil, err
	}
	userID := h.id
	if err := checkNotDelivered(ctx, tx, userID, key); err != nil {
		return nil, err
	}
	if err := insertCopy(ctx, tx, userID, c, d.MessageID, key, at); err != nil {
		return nil, err
	}
	uid, err := addMessage(ctx, tx, inbox.ID, c.id, flags, at)
	if err != nil {
		return nil, err
	}
	err = appendEvent(ctx, tx, event{At: at, Type: ledger.Delivered, MessageID: d.MessageID,
		Data: ledger.DeliveredData{Recipient: rcpt, Mailbox: Inbox, Notice: d.Notice}})
	if err != nil {
		return nil, err
	}
	out := &Delivered{Recipient: rcpt, Folder: Inbox, UIDValidity: inbox.UIDValidity, UID: uid}
	if d.From != "" {
		if mdn, ok := ParseMDN(d.Content); ok {
			if out.Read, err = recordRead(ctx, tx, at, d.From, mdn); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// hostedInbox returns the recipient and their INBOX, creating the user and default folders on the first
// delivery (the usual case, a known user, costs one query).
func (s *Store) hostedInbox(ctx context.Context, tx *sql.Tx, rcpt string, at time.Time) (*HostedUser, *Folder, error) {
	var f Folder
	var userID, validity, next int64
	err := tx.QueryRowContext(ctx, `SELECT u.id, b.id, b.name, b.special_use, b.uid_validity, b.uid_next, b.subscribed, b.changes
		FROM imap_users u JOIN imap_mailboxes b ON b.user_id = u.id WHERE u.mail = ? AND b.name = ?`, rcpt, Inbox).
		Scan(&userID, &f.ID, &f.Name, &f.SpecialUse, &validity, &next, &f.Subscribed, &f.Changes)
	if err == nil {
		f.UIDValidity, f.UIDNext = uint32(validity), uint32(next)
		return &HostedUser{s: s, id: userID, mail: rcpt}, &f, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, nil, err
	}
	id, err := ensureHostedUser(ctx, tx, rcpt, at)
	if err != nil {
		return nil, nil, err
	}
	h := &HostedUser{s: s, id: id, mail: rcpt}
	inbox, err := h.folderIn(ctx, tx, Inbox)
	return h, inbox, err
}

// checkNotDelivered refuses a delivery whose key the user already has.
func checkNotDelivered(ctx context.Context, tx *sql.Tx, userID int64, key string) error {
	if key == "" {
		return nil
	}
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM imap_contents WHERE user_id = ? AND delivery_key = ?`, userID, key).Scan(&n)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%w: already delivered to this hosted mailbox", ErrDuplicate)
	}
	return nil
}

// RecordReadTx records the read receipt mdn, submitted by the authenticated practitioner from, inside tx
// (for a receipt relayed to a sender who is not hosted; DeliverToMailboxTx does this itself for hosted
// ones). See recordRead for when an event is written; it reports whether one was.
func (s *Store) RecordReadTx(ctx context.Context, tx *sql.Tx, at time.Time, from string, mdn *MDN) (bool, error) {
	return recordRead(ctx, tx, at, from, mdn)
}

// recordRead appends a "read" event for the package mdn answers when it is a "displayed" receipt from
// from (its Final-Recipient, when given, must be from as well) about a copy from received, through the
// queue or a hosted mailbox. It reports whether an event was written; a receipt that matches nothing is
// delivered like any message and recorded nowhere.
func recordRead(ctx context.Context, tx *sql.Tx, at time.Time, from string, mdn *MDN) (bool, error) {
	from = strings.ToLower(strings.TrimSpace(from))
	if mdn.Type != "displayed" || mdn.OriginalMessageID == "" {
		return false, nil
	}
	if mdn.FinalRecipient != "" && !strings.EqualFold(mdn.FinalRecipient, from) {
		return false, nil
	}
	pkg, err := packageSentTo(ctx, tx, mdn.OriginalMessageID, from)
	if err != nil || pkg == "" {
		return false, err
	}
	err = appendEvent(ctx, tx, event{At: at, Type: ledger.Read, MessageID: pkg,
		Data: ledger.ReadData{Recipient: from, Disposition: mdn.Disposition}})
	return err == nil, err
}

// packageSentToQueueQuery finds the package of a copy sent through the queue (index queue_header_id).
const packageSentToQueueQuery = `SELECT message_id FROM queue WHERE header_message_id = ? AND kind = 'message'
		AND lower(recipient) = ? ORDER BY first_queued_at LIMIT 1`

// packageSentTo returns the accepted message whose copy with Message-ID headerID went to rcpt, through
// the outbound queue or into rcpt's hosted mailbox; "" when there is none.
func packageSentTo(ctx context.Context, tx *sql.Tx, headerID, rcpt string) (string, error) {
	var pkg string
	err := tx.QueryRowContext(ctx, packageSentToQueueQuery, headerID, rcpt).Scan(&pkg)
	if err == nil || !errors.Is(err, sql.ErrNoRows) {
		return pkg, err
	}
	err = tx.QueryRowContext(ctx, `SELECT c.message_id FROM imap_contents c JOIN imap_users u ON u.id = c.user_id
		WHERE c.header_message_id = ? AND u.mail = ? AND c.message_id IS NOT NULL ORDER BY c.created_at LIMIT 1`,
		headerID, rcpt).Scan(&pkg)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return pkg, err
}

func hostedFirst(xs ...string) string {
	for _, x := range xs {
		if x != "" {
			return x
		}
	}
	return ""
}
