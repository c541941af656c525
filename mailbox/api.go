// Package mailbox is the store of record: the SQLite database holding accepted messages (content
// encrypted at rest), their metadata, the ledger events written in the same transactions, and later the
// queue and hosted mailboxes.
package mailbox

import (
	"errors"
	"time"
)

// Errors Accept wraps, tested with errors.Is.
var (
	// ErrFull: the disk or the database is full (SQLITE_FULL, ENOSPC). Nothing was stored.
	ErrFull = errors.New("mailbox: storage full")
	// ErrUnavailable: the database is locked, read-only, closed or failed with an I/O error. Nothing was stored.
	ErrUnavailable = errors.New("mailbox: store unavailable")
	// ErrNotFound: no message with that ID.
	ErrNotFound = errors.New("mailbox: no such message")
)

// Incoming is one message to commit.
type Incoming struct {
	ID         string // opaque, unique, chosen by the caller
	Sender     string
	SenderDN   string
	Agency     string
	Recipients []string
	Via        string
	RemoteAddr string
	ReceivedAt time.Time
	Digest     [32]byte // SHA-256 of Content; zero: the store takes it (and sets it here), else it checks it
	Content    []byte
}
