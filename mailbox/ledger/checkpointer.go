// The checkpointer: at a fixed interval (and when asked, such as at shutdown) it signs the tree head,
// stores the checkpoint in the database, appends it to the checkpoint file and posts it to the witness.
// It never signs a tree that does not extend the checkpoints it signed before.

package ledger

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// Checkpointer writes checkpoints. Set the exported fields before the first call; it is safe for
// concurrent use.
type Checkpointer struct {
	Read    *sql.DB // where the tree is read (a read-only pool is fine)
	Write   *sql.DB // where checkpoints are stored
	Key     *Key
	KeyFile string       // where Key was loaded from: read again when another process rotated the key
	File    string       // the checkpoint file outside the database; empty: none
	Witness string       // URL the signed note is POSTed to; empty: none
	Client  *http.Client // for the witness; nil: a client with a 30 s timeout
	Log     *slog.Logger
	Now     func() time.Time

	// mu serialises checkpoints and is held across database work (StoreCheckpoint waits for the
	// writer). keyMu guards Key alone and is never held across anything else: CurrentKey is called
	// from inside the writer's transactions (a report names the key), so it must not wait for mu,
	// whose holder may be waiting for that writer.
	mu        sync.Mutex
	keyMu     sync.RWMutex
	loaded    bool
	last      *Checkpoint // newest checkpoint signed (in the database)
	inFile    *Checkpoint // newest checkpoint known to be in the file
	witnessed uint64      // size of the newest checkpoint the witness accepted
}

// ErrWitness wraps a failure to hand a checkpoint to the witness (retried at the next interval).
var ErrWitness = errors.New("ledger: witness")

// ErrInconsistent is returned when the stored tree does not extend an earlier checkpoint: the ledger
// was truncated or rewritten, and the checkpointer refuses to sign it.
var ErrInconsistent = errors.New("ledger: the stored tree does not extend the last checkpoint")

// Checkpoint signs the current tree head if it grew since the last checkpoint, stores it, and makes
// sure the file and the witness have the newest checkpoint. It returns the newest checkpoint (nil
// while the ledger is empty).
func (c *Checkpointer) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded {
		if err := c.load(ctx); err != nil {
			return nil, err
		}
		c.loaded = true
	}
	t, err := c.head(ctx)
	if err != nil {
		return c.last, err
	}
	if t.Size() > 0 && (c.last == nil || c.last.Size != t.Size()) {
		cp, err := SignCheckpoint(c.Key.Signer, t.Size(), t.Root())
		if err != nil {
			return c.last, err
		}
		if err := StoreCheckpoint(ctx, c.Write, cp, c.now()); err != nil {
			return c.last, fmt.Errorf("ledger: storing checkpoint: %w", err)
		}
		cp.Source = "database"
		c.last = cp
	}
	if c.last == nil {
		return nil, nil
	}
	ferr, werr := c.toFile(), c.toWitness(ctx)
	if ferr != nil { // the file matters more: report it, and only log the witness
		if werr != nil {
			c.log().Warn("ledger checkpoint not taken by the witness", "err", werr)
		}
		return c.last, ferr
	}
	return c.last, werr
}

// CurrentKey returns the key the next checkpoint is signed with (it changes when another process
// rotates the key).
func (c *Checkpointer) CurrentKey() *Key {
	c.keyMu.RLock()
	defer c.keyMu.RUnlock()
	return c.Key
}

// load reads the newest checkpoint from the database and from the file, opening them with the key
// chain (the keys before a rotation signed the older ones).
func (c *Checkpointer) load(ctx context.Context) error {
	chain, err := LoadKeyChain(ctx, c.Read, c.Key.VKey)
	if err != nil {
		return err
	}
	stored, err := StoredCheckpoints(ctx, c.Read, true)
	if err != nil {
		return err
	}
	for _, s := range stored {
		cp, err := openWithChain(s.Note, chain)
		if err != nil {
			return fmt.Errorf("ledger: the newest checkpoint in the database does not verify with the ledger key: %w", err)
		}
		c.last = cp
	}
	if c.File == "" {
		return nil
	}
	data, err := os.ReadFile(c.File)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ledger: reading checkpoint file: %w", err)
	}
	for rec := 1; len(data) > 0; rec++ {
		msg, rest, ok := nextRecord(data)
		if !ok {
			c.log().Warn("the checkpoint file ends with an incomplete record (a crash while writing it?)", "file", c.File)
			break
		}
		data = rest
		cp, err := openWithChain(msg, chain)
		if err != nil { // someone else's record: verify reports it; it must not stop the signing
			c.log().Error("a record of the checkpoint file does not verify with the ledger's keys", "file", c.File, "record", rec, "err", err)
			continue
		}
		cp.Source = fmt.Sprintf("%s record %d", c.File, rec)
		if c.inFile == nil || cp.Size >= c.inFile.Size {
			c.inFile = cp
		}
	}
	return nil
}

// followRotation makes sure the key about to sign is the ledger's current key (in the snapshot q):
// after another process (cafgate ledger rotate-key) rotated it, the new key is read from the key file;
// if the file does not hold it, nothing is signed.
func (c *Checkpointer) followRotation(ctx context.Context, q Querier) error {
	nums, evs, err := rotationEvents(ctx, q)
	if err != nil || len(nums) == 0 {
		return err
	}
	last, err := openRotation(nums[len(nums)-1], evs[len(evs)-1])
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if last.New == c.Key.VKey {
		return nil
	}
	k, err := loadKey(c.KeyFile)
	if err != nil || k.VKey != last.New {
		held := ""
		if k != nil {
			held = k.VKey
		}
		return fmt.Errorf("ledger: the ledger's key was rotated to %s (event %d) but the key file %s holds %q (%v): not signing", last.New, last.Event, c.KeyFile, held, err)
	}
	c.log().Info("ledger key rotated by another process; signing with the new key", "key", k.VKey, "event", last.Event)
	c.keyMu.Lock()
	c.Key = k
	c.keyMu.Unlock()
	return nil
}

// head reads the stored tree in one read transaction and checks that it extends the newest
// checkpoints from the database and the file.
func (c *Checkpointer) head(ctx context.Context) (*Tree, error) {
	tx, err := c.Read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	t, err := LoadTree(ctx, tx)
	if err != nil {
		return nil, err
	}
	if err := c.followRotation(ctx, tx); err != nil {
		return nil, err
	}
	for _, prev := range []*Checkpoint{c.last, c.inFile} {
		if prev == nil {
			continue
		}
		if prev.Size > t.Size() {
			return nil, fmt.Errorf("%w: it holds %d events, the checkpoint in %s covers %d; run cafgate ledger verify",
				ErrInconsistent, t.Size(), prev.Source, prev.Size)
		}
		root, err := SubtreeHash(ctx, Nodes{Q: tx}, 0, prev.Size)
		if err != nil {
			return nil, err
		}
		if root != prev.Root {
			return nil, fmt.Errorf("%w: the first %d events no longer hash to the root in %s; run cafgate ledger verify",
				ErrInconsistent, prev.Size, prev.Source)
		}
	}
	return t, nil
}

// toFile appends the newest checkpoint to the file unless it is there already.
func (c *Checkpointer) toFile() error {
	if c.File == "" || (c.inFile != nil && c.inFile.Size >= c.last.Size) {
		return nil
	}
	if err := AppendCheckpointFile(c.File, c.last.Note); err != nil {
		return fmt.Errorf("ledger: appending to checkpoint file: %w", err)
	}
	c.inFile = c.last
	return nil
}

// toWitness posts the newest checkpoint to the witness unless it accepted it already.
func (c *Checkpointer) toWitness(ctx context.Context) error {
	if c.Witness == "" || c.witnessed >= c.last.Size {
		return nil
	}
	client := c.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Witness, bytes.NewReader(c.last.Note))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWitness, err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWitness, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%w answered %s", ErrWitness, resp.Status)
	}
	c.witnessed = c.last.Size
	return nil
}

// Run writes a checkpoint every interval until ctx ends, logging failures (each is retried at the next
// interval).
func (c *Checkpointer) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, err := c.Checkpoint(ctx)
			switch {
			case err == nil || ctx.Err() != nil:
			case errors.Is(err, ErrWitness):
				c.log().Warn("ledger checkpoint not taken by the witness; retried at the next interval", "err", err)
			default:
				c.log().Error("ledger checkpoint", "err", err)
			}
		}
	}
}

func (c *Checkpointer) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

func (c *Checkpointer) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}
