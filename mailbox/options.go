// Options for opening the store, with the defaults applied in one place.

package mailbox

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Options configures Open. Zero values take the defaults noted beside each field.
type Options struct {
	// Path of the SQLite database file; created (mode 0600) if missing unless ReadOnly.
	Path string
	// ContentKey is the 32-byte AES-256 key message content is encrypted with (see LoadOrCreateKey).
	ContentKey []byte
	// MaxBatch is the most accepts committed in one transaction. Default 64.
	MaxBatch int
	// MaxBatchBytes closes a batch once its messages' content reaches it (the batch's first message
	// is taken whatever its size). Default 8 MiB: 64 messages of 1 MiB in one transaction made the
	// log outgrow what the background checkpointer copies, and a commit wait for all 64 MiB.
	MaxBatchBytes int
	// MaxDelay is how long the writer waits for more accepts after taking the first one of a batch.
	// Default 0: commit as soon as the writer is free (accepts arriving during a commit form the next batch).
	MaxDelay time.Duration
	// BusyTimeout is how long a statement waits for a lock held by another connection. Default 5s.
	BusyTimeout time.Duration
	// ReadOnly opens the database for reading only (a CLI beside the running daemon): no migrations,
	// no writer; Accept returns ErrUnavailable.
	ReadOnly bool
	// Log receives store events (never message content). Default: discard.
	Log *slog.Logger
	// Now is the clock for ledger and row timestamps. Default time.Now.
	Now func() time.Time
	// Ledger sets the ledger's key, checkpoint file and witness (see LedgerOptions).
	Ledger LedgerOptions

	// testBatchHook, when set, is called by the writer with each batch's size before it is written.
	testBatchHook func(n int)
}

const (
	defaultMaxBatch    = 64
	defaultBatchBytes  = 8 << 20
	defaultBusyTimeout = 5 * time.Second
	keySize            = 32
)

// withDefaults checks o and returns a copy with defaults filled in.
func (o Options) withDefaults() (Options, error) {
	if o.Path == "" {
		return o, errors.New("mailbox: Options.Path is empty")
	}
	if len(o.ContentKey) != keySize {
		return o, fmt.Errorf("mailbox: content key must be %d bytes, got %d", keySize, len(o.ContentKey))
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = defaultMaxBatch
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = defaultBatchBytes
	}
	if o.MaxDelay < 0 {
		o.MaxDelay = 0
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = defaultBusyTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}
