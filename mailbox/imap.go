// Hosted mailboxes: the folders and messages of practitioners whose mail the gateway hosts, read and
// changed by the IMAP front door (gateway/imapd) and filled by delivery (imap_deliver.go). Everything a
// hosted user does goes through a HostedUser, whose every query is scoped to that user's rows.

package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors of the hosted mailboxes, tested with errors.Is.
var (
	// ErrNoMailbox: the user has no folder with that name.
	ErrNoMailbox = errors.New("mailbox: no such folder")
	// ErrMailboxExists: a folder with that name exists already.
	ErrMailboxExists = errors.New("mailbox: folder exists")
	// ErrMailboxName: the folder name is not allowed (empty, too long, control characters, wildcards,
	// empty levels).
	ErrMailboxName = errors.New("mailbox: folder name not allowed")
	// ErrMailboxCannot: the operation is refused for that folder (deleting or renaming INBOX or a
	// special-use folder, deleting a folder with subfolders, delivering into a folder that is not INBOX).
	ErrMailboxCannot = errors.New("mailbox: operation not allowed on this folder")
	// ErrMailboxLimit: the user has as many folders, or a message as many keywords, as allowed.
	ErrMailboxLimit = errors.New("mailbox: limit reached")
)

// Special-use attributes of folders (RFC 6154).
const (
	SpecialSent    = `\Sent`
	SpecialDrafts  = `\Drafts`
	SpecialTrash   = `\Trash`
	SpecialJunk    = `\Junk`
	SpecialArchive = `\Archive`
)

// Inbox is the name of every user's inbox.
const Inbox = "INBOX"

// DefaultFolders are the folders every hosted user has from the first sign-in or delivery: INBOX and
// the special-use folders, by name.
var DefaultFolders = []struct{ Name, SpecialUse string }{
	{Inbox, ""},
	{"Sent", SpecialSent},
	{"Drafts", SpecialDrafts},
	{"Trash", SpecialTrash},
	{"Junk", SpecialJunk},
	{"Archive", SpecialArchive},
}

// Limits of the hosted mailboxes.
const (
	MaxFolders        = 500 // folders per user
	MaxFolderNameLen  = 200 // bytes of a folder's full name
	MaxFlagsPerMesg   = 40  // flags and keywords on one message
	maxKeywordLen     = 100
	folderSeparator   = "/"
	mailboxTxDeadline = 30 * time.Second
)

// FolderSeparator separates the levels of a folder name.
const FolderSeparator = '/'

// HostedUser is one hosted practitioner's view of the store: every method reads or changes only that
// user's folders and messages. It is cheap to keep for the length of an IMAP session.
type HostedUser struct {
	s    *Store
	id   int64
	mail string
}

// Mail returns the user's mail address (lower case).
func (h *HostedUser) Mail() string { return h.mail }

// HostedUser returns the hosted mailbox of mail, creating the user with the default folders on first
// use and re-creating any special-use folder that is missing. mail must be a plausible address.
func (s *Store) HostedUser(ctx context.Context, mail string) (*HostedUser, error) {
	mail = strings.ToLower(strings.TrimSpace(mail))
	if !plausibleMail(mail) {
		return nil, fmt.Errorf("%w: hosted user %q is not a mail address", ErrInvalid, mail)
	}
	var id int64
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = ensureHostedUser(ctx, tx, mail, s.opt.Now())
		return err
	})
	if err != nil {
		return nil, err
	}
	return &HostedUser{s: s, id: id, mail: mail}, nil
}

// Tx runs fn in one write transaction on the writer connection (BEGIN IMMEDIATE) and commits it; fn's
// error, or a failed commit, rolls everything back. Callers use it to make several changes of the
// store (a hosted delivery, the queue state and their ledger events) one atomic step. Errors wrap
// ErrFull, ErrUnavailable or ErrDuplicate where they apply; the mailbox package's own sentinels
// returned by fn are kept as they are.
func (s *Store) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.wdb == nil {
		return fmt.Errorf("%w: store opened read-only", ErrUnavailable)
	}
	select {
	case <-s.closed:
		return fmt.Errorf("%w: store closed", ErrUnavailable)
	default:
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return classifyHosted(err)
	}
	return classify(tx.Commit())
}

// classifyHosted is classify for errors that may already be one of this package's sentinels.
func classifyHosted(err error) error {
	for _, known := range []error{ErrNoMailbox, ErrMailboxExists, ErrMailboxName, ErrMailboxCannot,
		ErrMailboxLimit, ErrNotFound, ErrInvalid, ErrCorrupt, ErrDuplicate, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, known) {
			return err
		}
	}
	return classify(err)
}

// ensureHostedUser returns the user's row ID, creating the user, and any missing default folder, in tx.
func ensureHostedUser(ctx context.Context, tx *sql.Tx, mail string, now time.Time) (int64, error) {
	_, err := tx.ExecContext(ctx, `INSERT INTO imap_users (mail, created_at) VALUES (?, ?) ON CONFLICT (mail) DO NOTHING`,
		mail, formatTime(now))
	if err != nil {
		return 0, err
	}
	var id int64
	if err := tx.QueryRowContext(ctx, `SELECT id FROM imap_users WHERE mail = ?`, mail).Scan(&id); err != nil {
		return 0, err
	}
	return id, ensureDefaultFolders(ctx, tx, id, now)
}

// ensureDefaultFolders creates INBOX and each special-use folder the user lacks. A special-use folder
// whose default name is taken by a folder without a special use gives that folder the special use.
func ensureDefaultFolders(ctx context.Context, tx *sql.Tx, userID int64, now time.Time) error {
	have := map[string]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT name, special_use FROM imap_mailboxes WHERE user_id = ?`, userID)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for rows.Next() {
		var name, use string
		if err := rows.Scan(&name, &use); err != nil {
			rows.Close()
			return err
		}
		names[name] = use
		if use != "" {
			have[use] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, f := range DefaultFolders {
		use, exists := names[f.Name]
		switch {
		case f.SpecialUse == "" && exists, f.SpecialUse != "" && have[f.SpecialUse]:
			continue
		case exists && use == "":
			_, err = tx.ExecContext(ctx, `UPDATE imap_mailboxes SET special_use = ? WHERE user_id = ? AND name = ?`,
				f.SpecialUse, userID, f.Name)
		case exists:
			continue // the name holds another special use: leave the user's arrangement alone
		default:
			err = insertFolder(ctx, tx, userID, f.Name, f.SpecialUse, now)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// insertFolder creates one folder with a fresh UIDVALIDITY, larger than any the user had before, so a
// folder deleted and created again is never mistaken for the old one by a client's cache.
func insertFolder(ctx context.Context, tx *sql.Tx, userID int64, name, specialUse string, now time.Time) error {
	var v int64
	err := tx.QueryRowContext(ctx, `UPDATE imap_users SET last_uidvalidity = max(last_uidvalidity + 1, ?)
		WHERE id = ? RETURNING last_uidvalidity`, now.Unix()&0xffffffff, userID).Scan(&v)
	if err != nil {
		return err
	}
	if v <= 0 || v > 0xffffffff {
		v = 1
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO imap_mailboxes (user_id, name, special_use, uid_validity, created_at)
		VALUES (?, ?, ?, ?, ?)`, userID, name, specialUse, v, formatTime(now))
	if isHostedUnique(err) {
		return fmt.Errorf("%w: %w", ErrMailboxExists, err)
	}
	return err
}

// CanonicalFolderName checks a folder name and returns it in stored form: INBOX (any case) becomes
// INBOX, a trailing separator is dropped. It refuses empty names and levels, control characters,
// the LIST wildcards * and %, and names longer than MaxFolderNameLen bytes.
func CanonicalFolderName(name string) (string, error) {
	name = strings.TrimSuffix(name, folderSeparator)
	if strings.EqualFold(name, Inbox) {
		return Inbox, nil
	}
	if first, rest, ok := strings.Cut(name, folderSeparator); ok && strings.EqualFold(first, Inbox) {
		name = Inbox + folderSeparator + rest
	}
	switch {
	case name == "", len(name) > MaxFolderNameLen, !utf8.ValidString(name):
		return "", fmt.Errorf("%w: empty, too long or not UTF-8", ErrMailboxName)
	case strings.ContainsAny(name, "*%"), strings.HasPrefix(name, folderSeparator),
		strings.Contains(name, folderSeparator+folderSeparator):
		return "", fmt.Errorf("%w: wildcard or empty level", ErrMailboxName)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "", fmt.Errorf("%w: control character", ErrMailboxName)
		}
	}
	return name, nil
}

// plausibleMail reports whether s looks like a lower-case mail address.
func plausibleMail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	return at > 0 && at < len(s)-1 && len(s) <= 320 && !strings.ContainsAny(s, " \t\r\n\x00<>\"/")
}
