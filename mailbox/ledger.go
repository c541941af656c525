// The ledger inside the store: every event is appended (package mailbox/ledger) in the same transaction
// as the state change it records, the checkpointer signs the tree at an interval and at Close, and
// events that record no state change (sign-ins, accesses) go through the writer's group commit.

package mailbox

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"cafgate/mailbox/ledger"
)

// EventAccepted is the type of the event every accepted message gets.
const EventAccepted = ledger.Accepted

// event is one ledger entry before it is written: its type, the message it concerns (if any) and its
// type-specific data (marshalled to a JSON object; never message content, never a subject).
type event struct {
	At        time.Time
	Type      string
	MessageID string
	Data      any
}

// acceptedData is the data of an "accepted" event.
type acceptedData struct {
	Digest     string   `json:"digest"` // SHA-256 of the content, hex
	Sender     string   `json:"sender"`
	Recipients []string `json:"recipients"`
	Size       int      `json:"size"`
	Via        string   `json:"via"`
}

// acceptedEvent is the "accepted" event of r.
func acceptedEvent(r *row, at time.Time) event {
	return event{At: at, Type: EventAccepted, MessageID: r.id, Data: acceptedData{
		Digest: r.digest, Sender: r.sender, Recipients: r.recipients, Size: r.size, Via: r.via,
	}}
}

// appendEvent appends ev inside tx, a write transaction on the writer connection: it becomes the next
// leaf of the ledger's Merkle tree, committed or rolled back with tx. Every ledger write goes through
// here or through ledger.Append.
func appendEvent(ctx context.Context, tx *sql.Tx, ev event) error {
	e, err := ledgerEvent(ev.Type, ev.MessageID, ev.Data, ev.At)
	if err != nil {
		return err
	}
	v, ok := txAppenders.Load(tx)
	if !ok { // a transaction writeTx did not open: an appender of its own, reading the head
		return ledger.Append(ctx, tx, ev.At, e)
	}
	a, _ := v.(*ledger.Appender)
	if a == nil {
		if a, err = ledger.NewAppender(ctx, tx); err != nil {
			return err
		}
		txAppenders.Store(tx, a)
	}
	if _, err := a.Append(ctx, ev.At, e); err != nil {
		txAppenders.Store(tx, (*ledger.Appender)(nil)) // a failed appender is not used again
		return err
	}
	return nil
}

// txAppenders holds the ledger appender of each transaction writeTx has open (nil until its first
// event), so that the events of one transaction (up to hundreds in a group commit) extend the tree
// from memory instead of each reading the stored head again. An appender that finds the stored head
// changed under it (an event rolled back to a savepoint, or appended by other code) reads it again
// (ledger.Appender).
var txAppenders sync.Map // *sql.Tx -> *ledger.Appender

// ledgerEvent builds and checks the envelope of one event.
func ledgerEvent(typ, messageID string, data any, at time.Time) (*ledger.Event, error) {
	raw, err := ledger.EncodeData(data)
	if err != nil {
		return nil, err
	}
	e := &ledger.Event{V: ledger.Version, At: ledger.FormatTime(at), Type: typ, Package: messageID, Data: raw}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return e, nil
}

// RecordEvent appends an event that records no state change of the store, such as a sign-in or an
// access, through the writer's group commit. It returns once the event is durable. typ is one of the
// ledger's types (ledger.SignIn, ledger.SignInFailed, ledger.Access…), messageID may be empty, data is
// the type's data struct (ledger.SignInData…). Errors wrap ErrInvalid, ErrFull or ErrUnavailable.
func (s *Store) RecordEvent(ctx context.Context, typ, messageID string, data any) error {
	if s.wdb == nil {
		return fmt.Errorf("%w: store opened read-only", ErrUnavailable)
	}
	e, err := ledgerEvent(typ, messageID, data, s.opt.Now())
	if err != nil {
		return err
	}
	return s.submit(ctx, &pending{ctx: ctx, event: e, done: make(chan error, 1)})
}

// submit hands p to the writer and waits for the commit outcome, as Accept does.
func (s *Store) submit(ctx context.Context, p *pending) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.closed:
		return fmt.Errorf("%w: store closed", ErrUnavailable)
	default:
	}
	select {
	case s.reqs <- p:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return fmt.Errorf("%w: store closed", ErrUnavailable)
	}
	return <-p.done
}

// writePending writes one pending request of a batch: a message with its rows and "accepted" event,
// or a lone event. led is the batch's appender.
func writePending(ctx context.Context, tx *sql.Tx, led *ledger.Appender, p *pending, at time.Time) error {
	if p.event != nil {
		_, err := led.Append(ctx, at, p.event)
		return err
	}
	if err := insertRow(ctx, tx, led, p.row, at); err != nil {
		return err
	}
	return insertRowDecisions(ctx, tx, led, p.row, at) // the package's decisions, same transaction
}

// appendAccepted appends r's "accepted" event with the batch's appender.
func appendAccepted(ctx context.Context, led *ledger.Appender, r *row, at time.Time) error {
	ev := acceptedEvent(r, at)
	data, err := ledger.EncodeData(ev.Data)
	if err != nil {
		return err
	}
	_, err = led.Append(ctx, at, &ledger.Event{Type: ev.Type, Package: ev.MessageID, Data: data})
	return err
}

// eventsPresent reports whether the lone events of batch are stored as they were appended (after a
// COMMIT that reported an error).
func (s *Store) eventsPresent(ctx context.Context, batch []*pending) bool {
	for _, p := range batch {
		if p.event == nil {
			continue
		}
		want, err := ledger.Encode(p.event)
		if err != nil {
			return false
		}
		var have string
		err = s.wdb.QueryRowContext(ctx, `SELECT event FROM ledger_events WHERE seq = ?`, int64(p.event.N)).Scan(&have)
		if err != nil || have != string(want) {
			return false
		}
	}
	return true
}

// LedgerOptions configures the ledger's key, checkpoints and witness. Zero values take the defaults
// noted beside each field.
type LedgerOptions struct {
	// KeyFile is the Ed25519 signed-note key checkpoints are signed with, created (mode 0600) on first
	// start, its public key written to KeyFile.pub. Default: ledger.key beside the database.
	KeyFile string
	// CheckpointFile is the file every checkpoint is appended to, outside the database. Default:
	// checkpoints beside the database.
	CheckpointFile string
	// Origin names a new key and so the log: default "cafgate.<host name>/ledger".
	Origin string
	// Interval between checkpoints. Default 1m; negative: only at Close.
	Interval time.Duration
	// WitnessURL, when set, receives every new checkpoint (HTTP POST of the signed note); failures are
	// logged and retried at the next interval.
	WitnessURL string
	// WitnessClient posts to the witness. Default: a client with a 30 s timeout.
	WitnessClient *http.Client
}

// withDefaults fills the defaults relative to the database at dbPath.
func (o LedgerOptions) withDefaults(dbPath string) LedgerOptions {
	dir := filepath.Dir(dbPath)
	if o.KeyFile == "" {
		o.KeyFile = filepath.Join(dir, "ledger.key")
	}
	if o.CheckpointFile == "" {
		o.CheckpointFile = filepath.Join(dir, "checkpoints")
	}
	if o.Origin == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		o.Origin = "cafgate." + host + "/ledger"
	}
	if o.Interval == 0 {
		o.Interval = time.Minute
	}
	return o
}

// ledgerState is the running ledger of a writable store.
type ledgerState struct {
	opt  LedgerOptions
	key  *ledger.Key
	cp   *ledger.Checkpointer
	stop context.CancelFunc
	done chan struct{}
}

// openLedger moves 0001-era events into the tree, loads (or creates) the ledger key and prepares the
// checkpointer. It runs after migrations, with both connection pools open.
func (s *Store) openLedger(ctx context.Context) error {
	opt := s.opt.Ledger.withDefaults(s.opt.Path)
	if n, err := importLegacyLedger(ctx, s.wdb); err != nil {
		return fmt.Errorf("mailbox: moving 0001 ledger events into the tree: %w", err)
	} else if n > 0 {
		s.opt.Log.Info("ledger events moved into the Merkle tree", "events", n)
	}
	key, err := s.ledgerKey(ctx, opt)
	if err != nil {
		return err
	}
	if key.Signer.Name() != opt.Origin && s.opt.Ledger.Origin != "" {
		s.opt.Log.Warn("ledger key has another name than the configured origin; the key's name is kept",
			"key", key.Signer.Name(), "origin", opt.Origin)
	}
	s.led = &ledgerState{opt: opt, key: key, done: make(chan struct{}), cp: &ledger.Checkpointer{
		Read: s.rdb, Write: s.wdb, Key: key, KeyFile: opt.KeyFile, File: opt.CheckpointFile, Witness: opt.WitnessURL,
		Client: opt.WitnessClient, Log: s.opt.Log.With("part", "ledger"), Now: s.opt.Now,
	}}
	return nil
}

// ledgerKey loads the ledger key, creating it only for a database whose ledger has no key yet, and
// records its public half in the database on first use: a store opened with another key file (a CLI
// given other settings than the daemon) is refused rather than signing with a second key.
func (s *Store) ledgerKey(ctx context.Context, opt LedgerOptions) (*ledger.Key, error) {
	var known string
	err := s.wdb.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = 'ledger_public_key'`).Scan(&known)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, classify(err)
	}
	if known != "" {
		if err := finishRotation(opt.KeyFile, known, s.opt.Log.Info); err != nil {
			return nil, err
		}
		if _, err := os.Stat(opt.KeyFile); err != nil {
			return nil, fmt.Errorf("mailbox: ledger key file %s: %w; this database's ledger is signed with %s (set ledger.key_file to its file)", opt.KeyFile, err, known)
		}
	}
	key, err := ledger.LoadOrCreateKey(opt.KeyFile, opt.Origin, nil)
	if err != nil {
		return nil, err
	}
	if known == "" {
		_, err := s.wdb.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES ('ledger_public_key', ?) ON CONFLICT(name) DO NOTHING`, key.VKey)
		return key, classify(err)
	}
	if known != key.VKey {
		return nil, fmt.Errorf("mailbox: ledger key %s is %s, but this database's ledger is signed with %s (set ledger.key_file to its file)", opt.KeyFile, key.VKey, known)
	}
	return key, nil
}

// startLedger starts the periodic checkpoints.
func (s *Store) startLedger() {
	ctx, cancel := context.WithCancel(context.Background())
	s.led.stop = cancel
	go func() {
		defer close(s.led.done)
		if s.led.opt.Interval > 0 {
			s.led.cp.Run(ctx, s.led.opt.Interval)
		}
	}()
}

// stopLedger stops the periodic checkpoints and writes the last one. It runs in Close after the writer
// has stopped and before the connections close.
func (s *Store) stopLedger() error {
	if s.led == nil || s.led.stop == nil {
		return nil
	}
	s.led.stop()
	<-s.led.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s.led.cp.Checkpoint(ctx)
	switch {
	case err == nil:
	case errors.Is(err, ledger.ErrWitness): // signed and kept; the witness gets it after the restart
		s.opt.Log.Warn("ledger checkpoint at shutdown not taken by the witness", "err", err)
		err = nil
	default:
		s.opt.Log.Error("ledger checkpoint at shutdown", "err", err)
	}
	return err
}

// Checkpoint signs the ledger's tree now (if it grew), stores the checkpoint, appends it to the
// checkpoint file and sends it to the witness. It returns the newest checkpoint.
func (s *Store) Checkpoint(ctx context.Context) (*ledger.Checkpoint, error) {
	if s.led == nil {
		return nil, fmt.Errorf("%w: store opened read-only", ErrUnavailable)
	}
	return s.led.cp.Checkpoint(ctx)
}

// LedgerKey returns the ledger's current public verifier key (NAME+HASH+BASE64), or "" for a read-only
// store. After a rotation by another process it is the new key from the next checkpoint on.
func (s *Store) LedgerKey() string {
	if s.led == nil {
		return ""
	}
	return s.led.cp.CurrentKey().VKey
}

// LedgerChildHash returns the keyed hash under which a child identifier may appear in ledger events
// (ledger.ChildHash with a secret derived from the content key), or "" for an empty identifier.
func (s *Store) LedgerChildHash(childID string) string {
	m := hmac.New(sha256.New, s.seal.key)
	m.Write([]byte("cafgate/ledger/child-id-secret/v1"))
	return ledger.ChildHash(m.Sum(nil), childID)
}

// importLegacyLedger moves the events of the 0001 table (renamed ledger_events_v0 by migration 0002)
// into the tree, in their order, and drops the old table, in one transaction.
func importLegacyLedger(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'ledger_events_v0'`).Scan(&n)
	if err != nil || n == 0 {
		return 0, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	evs, err := legacyEvents(ctx, tx)
	if err != nil {
		return 0, err
	}
	if err := ledger.Append(ctx, tx, time.Time{}, evs...); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `DROP TABLE ledger_events_v0`); err != nil {
		return 0, err
	}
	return len(evs), tx.Commit()
}

// legacyEvents reads the 0001 events as envelopes; an "accepted" event's recipient count becomes the
// list of recipients.
func legacyEvents(ctx context.Context, tx *sql.Tx) ([]*ledger.Event, error) {
	rows, err := tx.QueryContext(ctx, `SELECT v.at, v.type, coalesce(v.message_id, ''), v.data,
		(SELECT json_group_array(r.rcpt ORDER BY r.ord) FROM recipients r WHERE r.message_id = v.message_id)
		FROM ledger_events_v0 v ORDER BY v.seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var evs []*ledger.Event
	for rows.Next() {
		var at, typ, id, data, rcpts string
		if err := rows.Scan(&at, &typ, &id, &data, &rcpts); err != nil {
			return nil, err
		}
		raw := json.RawMessage(data)
		if typ == EventAccepted {
			var d acceptedData
			var old struct {
				Digest, Sender, Via string
				Size                int
			}
			if err := json.Unmarshal(raw, &old); err != nil {
				return nil, err
			}
			d.Digest, d.Sender, d.Size, d.Via = old.Digest, old.Sender, old.Size, old.Via
			if err := json.Unmarshal([]byte(rcpts), &d.Recipients); err != nil {
				return nil, err
			}
			if raw, err = ledger.EncodeData(d); err != nil {
				return nil, err
			}
		}
		evs = append(evs, &ledger.Event{At: at, Type: typ, Package: id, Data: raw})
	}
	return evs, rows.Err()
}

// OpenLedgerReader opens the database at path read-only for the ledger commands (verify, prove, show):
// no content key is needed, so it works on a copy taken off the machine. A copy in a directory it may
// not write to (SQLite cannot create the WAL's shared-memory file there) is opened as immutable.
func OpenLedgerReader(path string) (*sql.DB, error) {
	db, err := openReader(path, defaultBusyTimeout)
	if err == nil {
		err = checkLedgerSchema(db, path)
	}
	if err == nil || errors.Is(err, errNoLedger) {
		return db, err
	}
	if db != nil {
		db.Close()
	}
	p := commonParams(defaultBusyTimeout)
	p.Set("mode", "ro")
	p.Set("immutable", "1")
	idb, ierr := sql.Open("sqlite3", dsn(path, p))
	if ierr != nil {
		return nil, err
	}
	if ierr = checkLedgerSchema(idb, path); ierr != nil {
		idb.Close()
		return nil, err
	}
	return idb, nil
}

var errNoLedger = errors.New("no Merkle-tree ledger")

// checkLedgerSchema confirms the database has the ledger tables.
func checkLedgerSchema(db *sql.DB, path string) error {
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'ledger_head'`).Scan(&n); err != nil {
		return classify(err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s has %w (schema older than version 2, or not a cafgate database)", ErrUnavailable, path, errNoLedger)
	}
	return nil
}

// AppendLedgerEvent appends one event to the ledger of the database at path in its own durable
// transaction, beside a running gateway if there is one (for the CLI's access events). It returns the
// event's number. The database must exist and be migrated.
func AppendLedgerEvent(ctx context.Context, path, typ, messageID string, data any, now time.Time) (uint64, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	db, err := openWriter(path, defaultBusyTimeout)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		return 0, err
	}
	if v, err := schemaVersion(ctx, db); err != nil || v != len(ms) {
		return 0, errors.Join(err, fmt.Errorf("%w: database schema version %d, this program's is %d", ErrUnavailable, v, len(ms)))
	}
	e, err := ledgerEvent(typ, messageID, data, now)
	if err != nil {
		return 0, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, classify(err)
	}
	defer tx.Rollback()
	if err := ledger.Append(ctx, tx, now, e); err != nil {
		return 0, classify(err)
	}
	return e.N, classify(tx.Commit())
}

// finishRotation completes a key rotation that committed but crashed before the new key file was put
// in place: if KEYFILE.new holds the key the database names (known), it replaces KEYFILE.
func finishRotation(keyFile, known string, logf func(string, ...any)) error {
	pending := keyFile + ".new"
	k, err := ledger.LoadKey(pending)
	if err != nil {
		return nil // no rotation half done (a stale or foreign file is left to the operator)
	}
	if k.VKey != known {
		if cur, err := ledger.LoadKey(keyFile); err == nil && cur.VKey == known {
			_ = os.Remove(pending) // a rotation that never committed
		}
		return nil
	}
	if err := os.Rename(pending, keyFile); err != nil {
		return fmt.Errorf("mailbox: finishing the ledger key rotation: %w", err)
	}
	if err := ledger.SyncDir(filepath.Dir(keyFile)); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile+".pub", []byte(k.VKey+"\n"), 0o644); err != nil {
		return err
	}
	logf("ledger key rotation finished: the new key file was put in place", "key", k.VKey)
	return nil
}

// KeyRotation is the outcome of RotateLedgerKey.
type KeyRotation struct {
	Event      uint64             // the key-rotated event's number
	Old, New   string             // the public keys
	Checkpoint *ledger.Checkpoint // the first checkpoint under the new key, covering the rotation
	KeyFile    string
	PubFile    string
	FileErr    error // appending that checkpoint to the checkpoint file failed (the next one repairs it)
}

// RotateLedgerKey replaces the ledger's checkpoint signing key of the database at path, beside a
// running gateway if there is one: a new key with the same name is written to KEYFILE.new; in one
// transaction the rotation event (its statement signed by the old and the new key), a checkpoint
// under the new key covering it, and the database's record of the key are written; then the new key
// replaces the old key file (the old private key is gone: nothing may sign with it again) and the
// checkpoint is appended to the checkpoint file. A running gateway signs its next checkpoint with the
// new key. by and reason are recorded in the event.
func RotateLedgerKey(ctx context.Context, path string, opt LedgerOptions, by, reason string, now time.Time) (*KeyRotation, error) {
	opt = opt.withDefaults(path)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	db, err := openWriter(path, defaultBusyTimeout)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	if v, err := schemaVersion(ctx, db); err != nil || v != len(ms) {
		return nil, errors.Join(err, fmt.Errorf("%w: database schema version %d, this program's is %d", ErrUnavailable, v, len(ms)))
	}
	var known string
	if err := db.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = 'ledger_public_key'`).Scan(&known); err != nil {
		return nil, fmt.Errorf("mailbox: this database has no ledger key yet (start the gateway once): %w", err)
	}
	if err := finishRotation(opt.KeyFile, known, func(string, ...any) {}); err != nil {
		return nil, err
	}
	old, err := ledger.LoadKey(opt.KeyFile)
	if err != nil {
		return nil, err
	}
	if old.VKey != known {
		return nil, fmt.Errorf("mailbox: ledger key %s is %s, but this database's ledger is signed with %s (set ledger.key_file to its file)", opt.KeyFile, old.VKey, known)
	}
	pending := opt.KeyFile + ".new"
	_ = os.Remove(pending) // left by an attempt that did not commit (finishRotation kept any that did)
	nk, err := ledger.CreateKey(pending, old.Signer.Name(), nil)
	if err != nil {
		return nil, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		os.Remove(pending)
		return nil, classify(err)
	}
	defer tx.Rollback()
	n, cp, err := ledger.RotateKey(ctx, tx, old, nk, now, by, reason)
	if err == nil {
		_, err = tx.ExecContext(ctx, `UPDATE settings SET value = ? WHERE name = 'ledger_public_key'`, nk.VKey)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		tx.Rollback()
		var still string
		if db.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = 'ledger_public_key'`).Scan(&still) == nil && still == known {
			os.Remove(pending)
		}
		return nil, classify(err)
	}
	if err := finishRotation(opt.KeyFile, nk.VKey, func(string, ...any) {}); err != nil {
		return nil, fmt.Errorf("the rotation is recorded but the new key file %s could not replace %s (the gateway finishes it when it starts): %w", pending, opt.KeyFile, err)
	}
	r := &KeyRotation{Event: n, Old: old.VKey, New: nk.VKey, Checkpoint: cp, KeyFile: opt.KeyFile, PubFile: opt.KeyFile + ".pub"}
	if opt.CheckpointFile != "" {
		r.FileErr = ledger.AppendCheckpointFile(opt.CheckpointFile, cp.Note)
	}
	return r, nil
}
