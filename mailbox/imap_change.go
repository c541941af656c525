// Changing a hosted user's messages: flags, expunge, copy and move. Each is one transaction that also
// advances the folder's change counter, so other sessions on the folder see the change.

package mailbox

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// maxUIDsPerStatement bounds the UIDs bound into one IN (…) list.
const maxUIDsPerStatement = 500

// StoreFlags changes the flags of the folder's messages with the given UIDs (UIDs no longer there are
// skipped) and returns the new flags of each message whose flags changed.
func (h *HostedUser) StoreFlags(ctx context.Context, folderID int64, uids []uint32, op FlagOp, flags []string) (map[uint32][]string, error) {
	flags, err := CanonicalFlags(flags)
	if err != nil {
		return nil, err
	}
	changed := map[uint32][]string{}
	err = h.s.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := h.folderByID(ctx, tx, folderID); err != nil {
			return err
		}
		cur, err := flagsOf(ctx, tx, folderID, uids)
		if err != nil {
			return err
		}
		for _, uid := range uids {
			old, ok := cur[uid]
			if !ok {
				continue
			}
			nf := applyFlags(old, op, flags)
			if sameFlags(nf, applyFlags(old, FlagsAdd, nil)) {
				continue
			}
			if len(nf) > MaxFlagsPerMesg {
				return fmt.Errorf("%w: more than %d flags on one message", ErrMailboxLimit, MaxFlagsPerMesg)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE imap_messages SET flags = ? WHERE mailbox_id = ? AND uid = ?`,
				joinFlags(nf), folderID, uid); err != nil {
				return err
			}
			changed[uid] = nf
		}
		if len(changed) > 0 {
			return bumpFolder(ctx, tx, folderID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// flagsOf returns the flags of the folder's messages among uids, by UID.
func flagsOf(ctx context.Context, tx *sql.Tx, folderID int64, uids []uint32) (map[uint32][]string, error) {
	out := make(map[uint32][]string, len(uids))
	for start := 0; start < len(uids); start += maxUIDsPerStatement {
		chunk := uids[start:min(len(uids), start+maxUIDsPerStatement)]
		args := append([]any{folderID}, hostedUIDArgs(chunk)...)
		rows, err := tx.QueryContext(ctx, `SELECT uid, flags FROM imap_messages WHERE mailbox_id = ? AND uid IN (`+
			hostedPlaceholders(len(chunk))+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var uid uint32
			var flags string
			if err := rows.Scan(&uid, &flags); err != nil {
				rows.Close()
				return nil, err
			}
			out[uid] = splitFlags(flags)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Expunge removes the folder's messages flagged \Deleted (only those among uids when uids is not nil)
// and returns their UIDs in ascending order.
func (h *HostedUser) Expunge(ctx context.Context, folderID int64, uids []uint32) ([]uint32, error) {
	var gone []uint32
	err := h.s.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := h.folderByID(ctx, tx, folderID); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT uid FROM imap_messages WHERE mailbox_id = ?
			AND instr(' ' || flags || ' ', ' \Deleted ') > 0 ORDER BY uid`, folderID)
		if err != nil {
			return err
		}
		want := map[uint32]bool{}
		for _, u := range uids {
			want[u] = true
		}
		for rows.Next() {
			var uid uint32
			if err := rows.Scan(&uid); err != nil {
				rows.Close()
				return err
			}
			if uids == nil || want[uid] {
				gone = append(gone, uid)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(gone) == 0 {
			return nil
		}
		return h.removeMessages(ctx, tx, folderID, gone)
	})
	if err != nil {
		return nil, err
	}
	return gone, nil
}

// removeMessages deletes the folder's messages with the given UIDs (all when uids is nil), purges the
// content of stored copies no message points at any more, and advances the folder's change counter.
func (h *HostedUser) removeMessages(ctx context.Context, tx *sql.Tx, folderID int64, uids []uint32) error {
	var copies []string
	collect := func(q string, args ...any) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			copies = append(copies, id)
		}
		return rows.Err()
	}
	if uids == nil {
		if err := collect(`DELETE FROM imap_messages WHERE mailbox_id = ? RETURNING content_id`, folderID); err != nil {
			return err
		}
	}
	for start := 0; uids != nil && start < len(uids); start += maxUIDsPerStatement {
		chunk := uids[start:min(len(uids), start+maxUIDsPerStatement)]
		err := collect(`DELETE FROM imap_messages WHERE mailbox_id = ? AND uid IN (`+hostedPlaceholders(len(chunk))+`) RETURNING content_id`,
			append([]any{folderID}, hostedUIDArgs(chunk)...)...)
		if err != nil {
			return err
		}
	}
	for _, id := range copies {
		_, err := tx.ExecContext(ctx, `UPDATE imap_contents SET header_nonce = NULL, header = NULL, content_nonce = NULL,
			content = NULL WHERE id = ? AND NOT EXISTS (SELECT 1 FROM imap_messages WHERE content_id = ?)`, id, id)
		if err != nil {
			return err
		}
	}
	return bumpFolder(ctx, tx, folderID)
}

// Copied is the outcome of a copy or move: the destination's UIDVALIDITY and each source UID copied
// beside the UID its copy got, in the same order.
type Copied struct {
	FolderID    int64
	Folder      string
	UIDValidity uint32
	Source      []uint32
	Dest        []uint32
}

// Copy copies the folder's messages with the given UIDs (in ascending UID order; UIDs no longer there
// are skipped) into the folder called dest, keeping flags and internal dates and sharing the stored
// copies. With move the originals are removed in the same transaction. Copying into INBOX is allowed:
// the messages are the user's own and came through the gateway.
func (h *HostedUser) Copy(ctx context.Context, folderID int64, uids []uint32, dest string, move bool) (*Copied, error) {
	var out *Copied
	err := h.s.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := h.folderByID(ctx, tx, folderID); err != nil {
			return err
		}
		to, err := h.folderIn(ctx, tx, dest)
		if err != nil {
			return err
		}
		if move && to.ID == folderID {
			return fmt.Errorf("%w: source and destination are the same folder", ErrMailboxCannot)
		}
		out = &Copied{FolderID: to.ID, Folder: to.Name, UIDValidity: to.UIDValidity}
		if err := copyRows(ctx, tx, folderID, uids, to.ID, out); err != nil {
			return err
		}
		if move && len(out.Source) > 0 {
			return h.removeMessages(ctx, tx, folderID, out.Source)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// copyRows adds to folder to a message for each of the source folder's messages among uids.
func copyRows(ctx context.Context, tx *sql.Tx, from int64, uids []uint32, to int64, out *Copied) error {
	type src struct {
		uid           uint32
		copyID, flags string
		date          string
	}
	var srcs []src
	for start := 0; start < len(uids); start += maxUIDsPerStatement {
		chunk := uids[start:min(len(uids), start+maxUIDsPerStatement)]
		rows, err := tx.QueryContext(ctx, `SELECT uid, content_id, flags, internal_date FROM imap_messages
			WHERE mailbox_id = ? AND uid IN (`+hostedPlaceholders(len(chunk))+`) ORDER BY uid`, append([]any{from}, hostedUIDArgs(chunk)...)...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var s src
			if err := rows.Scan(&s.uid, &s.copyID, &s.flags, &s.date); err != nil {
				rows.Close()
				return err
			}
			srcs = append(srcs, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	for _, s := range srcs {
		var uid int64
		err := tx.QueryRowContext(ctx, `UPDATE imap_mailboxes SET uid_next = uid_next + 1, changes = changes + 1
			WHERE id = ? RETURNING uid_next - 1`, to).Scan(&uid)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO imap_messages (mailbox_id, uid, content_id, flags, internal_date)
			VALUES (?, ?, ?, ?, ?)`, to, uid, s.copyID, s.flags, s.date); err != nil {
			return err
		}
		out.Source = append(out.Source, s.uid)
		out.Dest = append(out.Dest, uint32(uid))
	}
	return nil
}

func bumpFolder(ctx context.Context, tx *sql.Tx, folderID int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE imap_mailboxes SET changes = changes + 1 WHERE id = ?`, folderID)
	return err
}

func hostedPlaceholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

func hostedUIDArgs(uids []uint32) []any {
	out := make([]any, len(uids))
	for i, u := range uids {
		out[i] = int64(u)
	}
	return out
}
