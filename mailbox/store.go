// The Store: opening (migrations, key check, writer goroutine), statistics and closing.

package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// Store is the store of record. Accept commits through one writer goroutine (group commit); reads use a
// separate read-only connection pool. A Store is safe for concurrent use.
type Store struct {
	opt    Options
	seal   *sealer
	wdb    *sql.DB   // nil when read-only
	turn   writeTurn // the order of acceptance and queue transactions on wdb (turn.go)
	rdb    *sql.DB
	reqs   chan *pending
	closed chan struct{} // closed by Close: no new accepts
	done   chan struct{} // closed when the writer goroutine has returned
	once   sync.Once
	led    *ledgerState     // the ledger's key and checkpointer; nil when read-only
	cdb    *sql.DB          // the WAL checkpointer's connection; nil when read-only
	ckpt   *walCheckpointer // nil when read-only
	local  localRoute       // gateway mail for hosted mailboxes (queue_local.go)

	batches        atomic.Uint64
	messages       atomic.Uint64
	failed         atomic.Uint64
	walCheckpoints atomic.Uint64
}

// Stats are counters since Open, for metrics and tests.
type Stats struct {
	Batches  uint64 // transactions committed by the writer
	Messages uint64 // messages committed
	Failed   uint64 // accepts that the writer answered with an error
	// WALCheckpoints counts the background checkpointer's runs (walcheckpoint.go).
	WALCheckpoints uint64
}

// Open opens (creating if needed) the database at opt.Path, applies pending migrations in one
// transaction, checks the content key against the database, and starts the writer goroutine.
// With opt.ReadOnly it only opens the read pool and checks the schema version and key.
func Open(ctx context.Context, opt Options) (*Store, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	if opt.Path, err = filepath.Abs(opt.Path); err != nil {
		return nil, err
	}
	seal, err := newSealer(opt.ContentKey)
	if err != nil {
		return nil, err
	}
	s := &Store{opt: opt, seal: seal, reqs: make(chan *pending), closed: make(chan struct{}), done: make(chan struct{})}
	if opt.ReadOnly {
		close(s.done)
		err = s.openReadOnly(ctx)
	} else {
		err = s.openWritable(ctx)
	}
	if err != nil {
		s.closeDBs()
		return nil, err
	}
	if !opt.ReadOnly {
		if err := s.startCheckpointer(); err != nil {
			s.closeDBs()
			return nil, err
		}
		go s.run()
		s.startLedger()
	}
	return s, nil
}

// OpenReadOnly opens the database at path for reading while a daemon may be writing it.
func OpenReadOnly(ctx context.Context, path string, key []byte) (*Store, error) {
	return Open(ctx, Options{Path: path, ContentKey: key, ReadOnly: true})
}

func (s *Store) openWritable(ctx context.Context) error {
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	if s.wdb, err = openStoreWriter(s.opt.Path, s.opt.BusyTimeout); err != nil {
		return err
	}
	from, to, err := migrate(ctx, s.wdb, ms)
	if err != nil {
		return err
	}
	if from != to {
		s.opt.Log.Info("mailbox schema migrated", "from", from, "to", to)
	}
	if err := s.ensureKeyCheck(ctx); err != nil {
		return err
	}
	if s.rdb, err = openReader(s.opt.Path, s.opt.BusyTimeout); err != nil {
		return err
	}
	return s.openLedger(ctx)
}

func (s *Store) openReadOnly(ctx context.Context) error {
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	if s.rdb, err = openReader(s.opt.Path, s.opt.BusyTimeout); err != nil {
		return err
	}
	v, err := schemaVersion(ctx, s.rdb)
	if err != nil {
		return err
	}
	if err := checkVersion(v, len(ms)); err != nil {
		return err
	}
	if v < len(ms) {
		return fmt.Errorf("%w: database schema version %d is older than this program's %d; open it read-write once to migrate", ErrUnavailable, v, len(ms))
	}
	return s.compareKeyCheck(ctx, s.rdb)
}

// ensureKeyCheck records the key check value on first use and compares it afterwards, so a wrong key
// is refused at Open instead of producing unreadable messages.
func (s *Store) ensureKeyCheck(ctx context.Context) error {
	_, err := s.wdb.ExecContext(ctx, `INSERT INTO settings(name, value) VALUES ('content_key_check', ?)
		ON CONFLICT(name) DO NOTHING`, s.seal.keyCheck())
	if err != nil {
		return classify(err)
	}
	return s.compareKeyCheck(ctx, s.wdb)
}

func (s *Store) compareKeyCheck(ctx context.Context, db *sql.DB) error {
	var have string
	err := db.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = 'content_key_check'`).Scan(&have)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // created but never opened read-write with a key: nothing to compare
	}
	if err != nil {
		return classify(err)
	}
	if !equalConstantTime(have, s.seal.keyCheck()) {
		return fmt.Errorf("%w: %s was created with another key file", ErrWrongKey, s.opt.Path)
	}
	return nil
}

// Stats returns the writer's counters.
func (s *Store) Stats() Stats {
	return Stats{Batches: s.batches.Load(), Messages: s.messages.Load(), Failed: s.failed.Load(),
		WALCheckpoints: s.walCheckpoints.Load()}
}

// Close stops accepting, lets the writer finish the batch it holds (those callers get the commit
// outcome; callers still waiting to be taken get ErrUnavailable), then closes the database.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closed)
		<-s.done
		err = errors.Join(s.stopLedger(), s.stopCheckpointer(), s.closeDBs())
	})
	return err
}

func (s *Store) closeDBs() error {
	var errs []error
	if s.cdb != nil {
		errs = append(errs, s.cdb.Close())
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	return errors.Join(errs...)
}

// uncancelled is ctx without its cancellation, for the store calls the delivery pipeline and the relay
// make for every copy. database/sql starts a goroutine for every query whose context can be cancelled
// (to close the rows if it is); these calls make dozens of queries per copy, and a profile of a
// backlog drain showed 20 to 45 of those goroutines queued to run at any moment. The calls are short
// (one transaction or read each), so finishing one after a shutdown began costs nothing.
func uncancelled(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }
