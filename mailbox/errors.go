// Errors beyond the fixed contract in api.go, and the classification of SQLite failures into the
// sentinels callers test with errors.Is.

package mailbox

import (
	"database/sql"
	"errors"
	"fmt"
	"syscall"

	"github.com/mattn/go-sqlite3"
)

var (
	// ErrDuplicate: a message with the same ID is already stored. Nothing was stored.
	ErrDuplicate = errors.New("mailbox: duplicate message ID")
	// ErrCorrupt: a stored message failed decryption or its digest check (tampered, truncated or
	// written under another key).
	ErrCorrupt = errors.New("mailbox: stored message failed its integrity check")
	// ErrSchemaTooNew: the database was migrated by a newer cafgate than this binary.
	ErrSchemaTooNew = errors.New("mailbox: database schema is newer than this program")
	// ErrWrongKey: the content key is not the one the database was created with.
	ErrWrongKey = errors.New("mailbox: content key does not match this database")
	// ErrInvalid: the Incoming message is malformed (no ID, no recipient, digest mismatch).
	ErrInvalid = errors.New("mailbox: invalid message")
)

// classify wraps err with ErrFull, ErrUnavailable or ErrDuplicate when it is one of those kinds, keeping
// the original error reachable with errors.As. Other errors are returned with a "mailbox:" prefix.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrFull) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDuplicate) {
		return err
	}
	if k := kindOf(err); k != nil {
		return fmt.Errorf("%w: %w", k, err)
	}
	return fmt.Errorf("mailbox: %w", err)
}

// kindOf returns the sentinel err belongs to, or nil.
func kindOf(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return ErrFull
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, sql.ErrTxDone) || errors.Is(err, syscall.EIO) ||
		errors.Is(err, syscall.EROFS) {
		return ErrUnavailable
	}
	var se sqlite3.Error
	if !errors.As(err, &se) {
		if err.Error() == "sql: database is closed" {
			return ErrUnavailable
		}
		return nil
	}
	switch se.Code {
	case sqlite3.ErrFull:
		return ErrFull
	case sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrIoErr, sqlite3.ErrReadonly, sqlite3.ErrCantOpen,
		sqlite3.ErrCorrupt, sqlite3.ErrNotADB, sqlite3.ErrProtocol, sqlite3.ErrNomem, sqlite3.ErrPerm:
		return ErrUnavailable
	case sqlite3.ErrConstraint:
		if se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey {
			return ErrDuplicate
		}
	}
	return nil
}

// perMessage reports whether err is a failure one message of a batch can cause on its own (a constraint),
// so the batch is worth retrying one message at a time.
func perMessage(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.Code == sqlite3.ErrConstraint
}
