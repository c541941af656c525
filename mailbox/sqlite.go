// Connections to the SQLite file: one single-connection writer pool (WAL, synchronous=FULL, BEGIN
// IMMEDIATE) and a read-only pool, both with foreign keys on and a busy timeout.

package mailbox

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// dsn builds a SQLite URI filename for path with the driver parameters in params.
func dsn(path string, params url.Values) string {
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return "file:" + r.Replace(path) + "?" + params.Encode()
}

func commonParams(busy time.Duration) url.Values {
	return url.Values{
		"_busy_timeout":    {fmt.Sprint(busy.Milliseconds())},
		"_foreign_keys":    {"1"},
		"_stmt_cache_size": {"32"},
	}
}

// storeWriterDriver is the driver of the Store's own write connection: SQLite's automatic checkpoint
// is moved out of the commit path (walcheckpoint.go) by raising its threshold on every connection
// the pool opens, and the WAL file is truncated back to walSizeLimit when it restarts.
const storeWriterDriver = "sqlite3-cafgate-writer"

func init() {
	sql.Register(storeWriterDriver, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec(fmt.Sprintf("PRAGMA wal_autocheckpoint = %d; PRAGMA journal_size_limit = %d",
			writerAutoCheckpointPages, walSizeLimit), nil)
		return err
	}})
}

// openWriter opens the single write connection, creating the file with mode 0600 first so the
// database and its -wal and -shm files (which SQLite gives the same mode) are private. Its commits
// run SQLite's automatic checkpoint (every 1000 pages): for the commands that write beside no
// background checkpointer. The Store's writer is openStoreWriter.
func openWriter(path string, busy time.Duration) (*sql.DB, error) {
	return openWriterWith("sqlite3", path, busy)
}

// openStoreWriter opens the Store's write connection, whose commits leave the checkpoint to the
// Store's background checkpointer (walcheckpoint.go).
func openStoreWriter(path string, busy time.Duration) (*sql.DB, error) {
	return openWriterWith(storeWriterDriver, path, busy)
}

func openWriterWith(driver, path string, busy time.Duration) (*sql.DB, error) {
	if err := createPrivate(path); err != nil {
		return nil, err
	}
	p := commonParams(busy)
	p.Set("_journal_mode", "WAL")
	p.Set("_synchronous", "FULL")
	p.Set("_txlock", "immediate")
	db, err := sql.Open(driver, dsn(path, p))
	if err != nil {
		return nil, err
	}
	singleConnection(db)
	if err := checkPragmas(db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// checkPragmas confirms the write connection really runs WAL with synchronous=FULL: the durability
// promise of Accept rests on it.
func checkPragmas(db *sql.DB) error {
	var mode string
	var sync int
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		return classify(err)
	}
	if err := db.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil {
		return classify(err)
	}
	if !strings.EqualFold(mode, "wal") || sync != 2 {
		return fmt.Errorf("mailbox: database runs journal_mode=%s synchronous=%d, want wal and 2 (FULL)", mode, sync)
	}
	return nil
}

// openCheckpointer opens the connection the background checkpointer runs on: read-write (a
// checkpoint writes the database file), synchronous=FULL (the checkpoint fsyncs the WAL before it
// copies and the database file after), never used for a transaction.
func openCheckpointer(path string, busy time.Duration) (*sql.DB, error) {
	p := commonParams(busy)
	p.Set("_synchronous", "FULL")
	p.Set("mode", "rw")
	db, err := sql.Open("sqlite3", dsn(path, p))
	if err != nil {
		return nil, err
	}
	singleConnection(db)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, classify(err)
	}
	return db, nil
}

// openReader opens the read pool. mode=ro makes every connection read-only at the SQLite level.
func openReader(path string, busy time.Duration) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	p := commonParams(busy)
	p.Set("mode", "ro")
	p.Set("_query_only", "1")
	db, err := sql.Open("sqlite3", dsn(path, p))
	if err != nil {
		return nil, err
	}
	n := max(4, runtime.NumCPU())
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, classify(err)
	}
	return db, nil
}

// createPrivate creates path with mode 0600 if it does not exist and fsyncs its directory.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: create database: %w", ErrUnavailable, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory so a file created or renamed in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// singleConnection makes db a pool of one connection kept open for the life of the process.
func singleConnection(db *sql.DB) {
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
}
