// A hosted user's folders: list, look up, status, create, delete, rename, subscribe.

package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Folder is one folder of a hosted user.
type Folder struct {
	ID          int64
	Name        string
	SpecialUse  string // SpecialSent… or ""
	UIDValidity uint32
	UIDNext     uint32
	Subscribed  bool
	Changes     int64 // grows with every change of the folder or its messages
}

// FolderStatus is a folder with its counts.
type FolderStatus struct {
	Folder
	Messages uint32
	Unseen   uint32
	Deleted  uint32
	Size     int64 // bytes of all its messages
}

const folderColumns = `id, name, special_use, uid_validity, uid_next, subscribed, changes`

func scanFolder(sc interface{ Scan(...any) error }) (*Folder, error) {
	var f Folder
	var validity, next int64
	if err := sc.Scan(&f.ID, &f.Name, &f.SpecialUse, &validity, &next, &f.Subscribed, &f.Changes); err != nil {
		return nil, err
	}
	f.UIDValidity, f.UIDNext = uint32(validity), uint32(next)
	return &f, nil
}

// Folders returns the user's folders ordered by name.
func (h *HostedUser) Folders(ctx context.Context) ([]Folder, error) {
	rows, err := h.s.rdb.QueryContext(ctx, `SELECT `+folderColumns+` FROM imap_mailboxes WHERE user_id = ? ORDER BY name`, h.id)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []Folder
	for rows.Next() {
		f, err := scanFolder(rows)
		if err != nil {
			return nil, classify(err)
		}
		out = append(out, *f)
	}
	return out, classify(rows.Err())
}

// Folder returns the folder called name (any case of INBOX); ErrNoMailbox when there is none.
func (h *HostedUser) Folder(ctx context.Context, name string) (*Folder, error) {
	return h.folderIn(ctx, h.s.rdb, name)
}

type hostedQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (h *HostedUser) folderIn(ctx context.Context, q hostedQueryer, name string) (*Folder, error) {
	name, err := CanonicalFolderName(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoMailbox, err)
	}
	f, err := scanFolder(q.QueryRowContext(ctx, `SELECT `+folderColumns+` FROM imap_mailboxes WHERE user_id = ? AND name = ?`, h.id, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoMailbox
	}
	if err != nil {
		return nil, classify(err)
	}
	return f, nil
}

// folderByID returns the user's folder with row ID id; ErrNoMailbox when it is not theirs or gone.
func (h *HostedUser) folderByID(ctx context.Context, q hostedQueryer, id int64) (*Folder, error) {
	f, err := scanFolder(q.QueryRowContext(ctx, `SELECT `+folderColumns+` FROM imap_mailboxes WHERE user_id = ? AND id = ?`, h.id, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoMailbox
	}
	return f, err
}

// FolderStatus returns the folder called name with its message counts.
func (h *HostedUser) FolderStatus(ctx context.Context, name string) (*FolderStatus, error) {
	f, err := h.Folder(ctx, name)
	if err != nil {
		return nil, err
	}
	st := &FolderStatus{Folder: *f}
	err = h.s.rdb.QueryRowContext(ctx, `SELECT count(*),
		coalesce(sum(instr(' ' || m.flags || ' ', ' \Seen ') = 0), 0),
		coalesce(sum(instr(' ' || m.flags || ' ', ' \Deleted ') > 0), 0),
		coalesce(sum(c.size), 0)
		FROM imap_messages m JOIN imap_contents c ON c.id = m.content_id WHERE m.mailbox_id = ?`, f.ID).
		Scan(&st.Messages, &st.Unseen, &st.Deleted, &st.Size)
	if err != nil {
		return nil, classify(err)
	}
	return st, nil
}

// CreateFolder creates a folder (and any missing parent) with an optional special use, which must be
// one no other folder of the user has.
func (h *HostedUser) CreateFolder(ctx context.Context, name, specialUse string) error {
	name, err := CanonicalFolderName(name)
	if err != nil {
		return err
	}
	if name == Inbox {
		return ErrMailboxExists
	}
	switch specialUse {
	case "", SpecialSent, SpecialDrafts, SpecialTrash, SpecialJunk, SpecialArchive:
	default:
		return fmt.Errorf("%w: special use %q not supported", ErrMailboxCannot, specialUse)
	}
	return h.s.Tx(ctx, func(tx *sql.Tx) error {
		if err := h.checkFolderRoom(ctx, tx, strings.Count(name, folderSeparator)+1); err != nil {
			return err
		}
		if err := h.createParents(ctx, tx, name); err != nil {
			return err
		}
		if err := insertFolder(ctx, tx, h.id, name, specialUse, h.s.opt.Now()); err != nil {
			if isHostedUnique(errors.Unwrap(err)) && specialUse != "" && !errors.Is(err, ErrMailboxExists) {
				return fmt.Errorf("%w: another folder is already %s", ErrMailboxCannot, specialUse)
			}
			return err
		}
		return nil
	})
}

// checkFolderRoom refuses when the user cannot have n more folders.
func (h *HostedUser) checkFolderRoom(ctx context.Context, tx *sql.Tx, n int) error {
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM imap_mailboxes WHERE user_id = ?`, h.id).Scan(&have); err != nil {
		return err
	}
	if have+n > MaxFolders {
		return fmt.Errorf("%w: at most %d folders", ErrMailboxLimit, MaxFolders)
	}
	return nil
}

// createParents creates the missing superiors of name ("a" and "a/b" for "a/b/c").
func (h *HostedUser) createParents(ctx context.Context, tx *sql.Tx, name string) error {
	levels := strings.Split(name, folderSeparator)
	for i := 1; i < len(levels); i++ {
		parent := strings.Join(levels[:i], folderSeparator)
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM imap_mailboxes WHERE user_id = ? AND name = ?`, h.id, parent).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if err := insertFolder(ctx, tx, h.id, parent, "", h.s.opt.Now()); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteFolder deletes a folder and its messages. INBOX, special-use folders and folders with
// subfolders cannot be deleted (ErrMailboxCannot).
func (h *HostedUser) DeleteFolder(ctx context.Context, name string) error {
	return h.s.Tx(ctx, func(tx *sql.Tx) error {
		f, err := h.folderIn(ctx, tx, name)
		if err != nil {
			return err
		}
		if f.Name == Inbox || f.SpecialUse != "" {
			return fmt.Errorf("%w: INBOX and special-use folders stay", ErrMailboxCannot)
		}
		names, err := h.folderNames(ctx, tx)
		if err != nil {
			return err
		}
		for _, n := range names {
			if strings.HasPrefix(n, f.Name+folderSeparator) {
				return fmt.Errorf("%w: the folder has subfolders", ErrMailboxCannot)
			}
		}
		if err := h.removeMessages(ctx, tx, f.ID, nil); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM imap_mailboxes WHERE id = ?`, f.ID)
		return err
	})
}

// RenameFolder renames a folder and its subfolders; missing parents of the new name are created.
// INBOX cannot be renamed (ErrMailboxCannot); the new name must be free (ErrMailboxExists).
func (h *HostedUser) RenameFolder(ctx context.Context, from, to string) error {
	to, err := CanonicalFolderName(to)
	if err != nil {
		return err
	}
	return h.s.Tx(ctx, func(tx *sql.Tx) error {
		f, err := h.folderIn(ctx, tx, from)
		if err != nil {
			return err
		}
		switch {
		case f.Name == Inbox || to == Inbox:
			return fmt.Errorf("%w: INBOX cannot be renamed", ErrMailboxCannot)
		case to == f.Name:
			return ErrMailboxExists
		case strings.HasPrefix(to, f.Name+folderSeparator):
			return fmt.Errorf("%w: a folder cannot move inside itself", ErrMailboxCannot)
		}
		if _, err := h.folderIn(ctx, tx, to); err == nil {
			return ErrMailboxExists
		} else if !errors.Is(err, ErrNoMailbox) {
			return err
		}
		if err := h.checkFolderRoom(ctx, tx, strings.Count(to, folderSeparator)); err != nil {
			return err
		}
		if err := h.createParents(ctx, tx, to); err != nil {
			return err
		}
		names, err := h.folderNames(ctx, tx)
		if err != nil {
			return err
		}
		for _, n := range names {
			if n != f.Name && !strings.HasPrefix(n, f.Name+folderSeparator) {
				continue
			}
			_, err := tx.ExecContext(ctx, `UPDATE imap_mailboxes SET name = ?, changes = changes + 1 WHERE user_id = ? AND name = ?`,
				to+strings.TrimPrefix(n, f.Name), h.id, n)
			if isHostedUnique(err) {
				return fmt.Errorf("%w: a subfolder's new name is taken", ErrMailboxExists)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// folderNames returns the names of all the user's folders.
func (h *HostedUser) folderNames(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM imap_mailboxes WHERE user_id = ?`, h.id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// SetSubscribed subscribes to or unsubscribes from a folder.
func (h *HostedUser) SetSubscribed(ctx context.Context, name string, on bool) error {
	name, err := CanonicalFolderName(name)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoMailbox, err)
	}
	return h.s.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE imap_mailboxes SET subscribed = ? WHERE user_id = ? AND name = ?`, on, h.id, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNoMailbox
		}
		return nil
	})
}
