// Schema migrations: numbered .sql files embedded in the binary, applied in one transaction at Open and
// recorded in PRAGMA user_version. A database newer than the binary is refused.

package mailbox

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered schema step.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads NNNN_name.sql files from dir in fsys; versions must run 1, 2, 3… without gaps.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("mailbox: migration file %q is not named NNNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("mailbox: migrations must be numbered 1..N without gaps; %q is number %d at position %d", m.name, m.version, i+1)
		}
	}
	return ms, nil
}

// migrate brings db to the newest schema in ms in one transaction and returns the versions before and
// after. It refuses a database whose version is newer than len(ms).
func migrate(ctx context.Context, db *sql.DB, ms []migration) (from, to int, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, classify(err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&from); err != nil {
		return 0, 0, classify(err)
	}
	if err := checkVersion(from, len(ms)); err != nil {
		return from, from, err
	}
	for _, m := range ms[from:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return from, from, fmt.Errorf("mailbox: migration %s: %w", m.name, err)
		}
	}
	if from == len(ms) {
		return from, from, nil
	}
	// PRAGMA takes no parameters; the value is an int we control.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(ms))); err != nil {
		return from, from, classify(err)
	}
	if err := tx.Commit(); err != nil {
		return from, from, classify(err)
	}
	return from, len(ms), nil
}

// checkVersion refuses a schema newer than this binary knows.
func checkVersion(have, known int) error {
	if have > known {
		return fmt.Errorf("%w: database schema version %d, this program knows up to %d; run a newer cafgate or restore a backup", ErrSchemaTooNew, have, known)
	}
	return nil
}

// schemaVersion reads PRAGMA user_version.
func schemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, classify(err)
	}
	return v, nil
}
