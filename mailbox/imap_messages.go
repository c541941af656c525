// A hosted user's messages: the state of a folder as a session sees it, message metadata, the sealed
// header and content, and APPEND.

package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// MessageFlags is one message of a folder as a session tracks it: its UID and flags.
type MessageFlags struct {
	UID   uint32
	Flags []string
}

// Snapshot is a folder's messages at one instant, in UID order, with the folder's change counter at
// that same instant.
type Snapshot struct {
	Folder   Folder
	Messages []MessageFlags
}

// MessageInfo is one message's metadata.
type MessageInfo struct {
	UID          uint32
	Flags        []string
	InternalDate time.Time
	Size         int64
}

// Snapshot returns the folder with row ID folderID and all its messages, read in one transaction.
func (h *HostedUser) Snapshot(ctx context.Context, folderID int64) (*Snapshot, error) {
	tx, err := h.s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, classify(err)
	}
	defer tx.Rollback()
	f, err := h.folderByID(ctx, tx, folderID)
	if err != nil {
		return nil, classifyHosted(err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT uid, flags FROM imap_messages WHERE mailbox_id = ? ORDER BY uid`, folderID)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	snap := &Snapshot{Folder: *f}
	for rows.Next() {
		var m MessageFlags
		var flags string
		if err := rows.Scan(&m.UID, &flags); err != nil {
			return nil, classify(err)
		}
		m.Flags = splitFlags(flags)
		snap.Messages = append(snap.Messages, m)
	}
	return snap, classify(rows.Err())
}

// Changes returns the change counter of the folder with row ID folderID: when it is the one a session
// last saw, nothing in the folder has changed since.
func (h *HostedUser) Changes(ctx context.Context, folderID int64) (int64, error) {
	var n int64
	err := h.s.rdb.QueryRowContext(ctx, `SELECT changes FROM imap_mailboxes WHERE id = ? AND user_id = ?`, folderID, h.id).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNoMailbox
	}
	return n, classify(err)
}

// MessageInfos returns the metadata of the folder's messages with UIDs from lo to hi, in UID order.
func (h *HostedUser) MessageInfos(ctx context.Context, folderID int64, lo, hi uint32) ([]MessageInfo, error) {
	rows, err := h.s.rdb.QueryContext(ctx, `SELECT m.uid, m.flags, m.internal_date, c.size
		FROM imap_messages m JOIN imap_mailboxes b ON b.id = m.mailbox_id JOIN imap_contents c ON c.id = m.content_id
		WHERE b.user_id = ? AND m.mailbox_id = ? AND m.uid BETWEEN ? AND ? ORDER BY m.uid`, h.id, folderID, lo, hi)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []MessageInfo
	for rows.Next() {
		var mi MessageInfo
		var flags, date string
		if err := rows.Scan(&mi.UID, &flags, &date, &mi.Size); err != nil {
			return nil, classify(err)
		}
		mi.Flags = splitFlags(flags)
		if mi.InternalDate, err = time.Parse(tsLayout, date); err != nil {
			return nil, fmt.Errorf("%w: internal date %q", ErrCorrupt, date)
		}
		out = append(out, mi)
	}
	return out, classify(rows.Err())
}

// Header returns the header section of one message (ErrNotFound when the folder has no such UID).
func (h *HostedUser) Header(ctx context.Context, folderID int64, uid uint32) ([]byte, error) {
	return h.open(ctx, folderID, uid, partHeader)
}

// Content returns one whole message (ErrNotFound when the folder has no such UID).
func (h *HostedUser) Content(ctx context.Context, folderID int64, uid uint32) ([]byte, error) {
	return h.open(ctx, folderID, uid, partContent)
}

func (h *HostedUser) open(ctx context.Context, folderID int64, uid uint32, part string) ([]byte, error) {
	cols := `c.header_nonce, c.header`
	if part == partContent {
		cols = `c.content_nonce, c.content`
	}
	var id string
	var nonce, sealed []byte
	err := h.s.rdb.QueryRowContext(ctx, `SELECT c.id, `+cols+`
		FROM imap_messages m JOIN imap_mailboxes b ON b.id = m.mailbox_id JOIN imap_contents c ON c.id = m.content_id
		WHERE b.user_id = ? AND m.mailbox_id = ? AND m.uid = ?`, h.id, folderID, uid).Scan(&id, &nonce, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, classify(err)
	}
	return h.s.seal.openHosted(id, part, nonce, sealed)
}

// Appended is where a new message was put.
type Appended struct {
	FolderID    int64
	Folder      string
	UIDValidity uint32
	UID         uint32
}

// Append stores content in the folder called name with flags and internal date (zero: now). It is
// for a client's own copies (Sent, Drafts…): appending to INBOX is refused with ErrMailboxCannot, since
// what arrives there must have come through the gateway.
func (h *HostedUser) Append(ctx context.Context, name string, content []byte, flags []string, date time.Time) (*Appended, error) {
	flags, err := CanonicalFlags(flags)
	if err != nil {
		return nil, err
	}
	c, err := h.s.sealCopy(content)
	if err != nil {
		return nil, err
	}
	now := h.s.opt.Now()
	if date.IsZero() {
		date = now
	}
	var out *Appended
	err = h.s.Tx(ctx, func(tx *sql.Tx) error {
		f, err := h.folderIn(ctx, tx, name)
		if err != nil {
			return err
		}
		if f.Name == Inbox {
			return fmt.Errorf("%w: messages reach INBOX only through the gateway", ErrMailboxCannot)
		}
		if err := insertCopy(ctx, tx, h.id, c, "", "", now); err != nil {
			return err
		}
		uid, err := addMessage(ctx, tx, f.ID, c.id, flags, date)
		if err != nil {
			return err
		}
		out = &Appended{FolderID: f.ID, Folder: f.Name, UIDValidity: f.UIDValidity, UID: uid}
		return nil
	})
	return out, err
}

// insertCopy inserts a sealed stored copy for user; messageID and key are set for deliveries only.
func insertCopy(ctx context.Context, tx *sql.Tx, userID int64, c *sealedCopy, messageID, key string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO imap_contents (id, user_id, message_id, header_message_id, delivery_key,
		size, header_nonce, header, content_nonce, content, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.id, userID, hostedNull(messageID), c.headerMessageID, hostedNull(key), c.size,
		c.headerNonce, c.header, c.contentNonce, c.contentData, formatTime(now))
	if isHostedUnique(err) {
		return fmt.Errorf("%w: %w", ErrDuplicate, err)
	}
	return err
}

// addMessage puts stored copy contentID into folder folderID with the folder's next UID and returns it.
func addMessage(ctx context.Context, tx *sql.Tx, folderID int64, contentID string, flags []string, date time.Time) (uint32, error) {
	var uid int64
	err := tx.QueryRowContext(ctx, `UPDATE imap_mailboxes SET uid_next = uid_next + 1, changes = changes + 1
		WHERE id = ? RETURNING uid_next - 1`, folderID).Scan(&uid)
	if err != nil {
		return 0, err
	}
	if uid <= 0 || uid >= 0xffffffff {
		return 0, fmt.Errorf("%w: folder %d has run out of UIDs", ErrMailboxLimit, folderID)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO imap_messages (mailbox_id, uid, content_id, flags, internal_date)
		VALUES (?, ?, ?, ?, ?)`, folderID, uid, contentID, joinFlags(applyFlags(nil, FlagsSet, flags)), formatTime(date))
	return uint32(uid), err
}

func hostedNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}
