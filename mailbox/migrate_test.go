// Tests of opening: migrations (idempotent, transactional, gapless, refusing newer schemas), pragmas and
// file permissions.

package mailbox

import (
	"context"
	"errors"
	"os"
	"testing"
	"testing/fstest"
)

func TestMigrationsIdempotentOnReopen(t *testing.T) {
	opt := testOpts(t)
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil || len(ms) == 0 {
		t.Fatalf("embedded migrations: %v (%d)", err, len(ms))
	}
	for round := range 3 {
		s := openTest(t, opt)
		acceptN(t, s, string(rune('a'+round)), 1) // a unique ID per round
		if v, err := schemaVersion(context.Background(), s.rdb); err != nil || v != len(ms) {
			t.Fatalf("user_version = %d, %v; want %d", v, err, len(ms))
		}
		from, to, err := migrate(context.Background(), s.wdb, ms)
		if err != nil || from != len(ms) || to != len(ms) {
			t.Fatalf("migrate again = %d→%d, %v", from, to, err)
		}
		s.Close()
	}
	s := openTest(t, opt)
	if n := count(t, s.rdb, `SELECT count(*) FROM messages`); n != 3 {
		t.Fatalf("%d messages after three reopenings, want 3", n)
	}
}

func TestRefuseNewerSchema(t *testing.T) {
	opt := testOpts(t)
	openTest(t, opt).Close()
	if _, err := rawDB(t, opt.Path).Exec(`PRAGMA user_version = 999`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), opt); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
	}
	if _, err := OpenReadOnly(context.Background(), opt.Path, opt.ContentKey); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("OpenReadOnly = %v, want ErrSchemaTooNew", err)
	}
}

func TestMigrationFailureRollsBack(t *testing.T) {
	opt := testOpts(t)
	fsys := fstest.MapFS{
		"m/0001_a.sql": {Data: []byte(`CREATE TABLE a (x INTEGER);`)},
		"m/0002_b.sql": {Data: []byte(`CREATE TABLE b (x INTEGER); THIS IS NOT SQL;`)},
	}
	ms, err := loadMigrations(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	db, err := openWriter(opt.Path, defaultBusyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, _, err := migrate(context.Background(), db, ms); err == nil {
		t.Fatal("bad migration applied")
	}
	if n := count(t, db, `SELECT count(*) FROM sqlite_schema WHERE name IN ('a', 'b')`); n != 0 {
		t.Fatalf("%d tables left by a failed migration", n)
	}
	if v, _ := schemaVersion(context.Background(), db); v != 0 {
		t.Fatalf("user_version = %d after failure", v)
	}
}

func TestLoadMigrationsRefusesGapsAndBadNames(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"gap":      {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"bad name": {"m/first.sql": {}},
		"zero":     {"m/0000_a.sql": {}},
	} {
		if _, err := loadMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWriterPragmasAndFileMode(t *testing.T) {
	opt := testOpts(t)
	s := openTest(t, opt)
	var mode string
	var sync, fk int
	if err := s.wdb.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	s.wdb.QueryRow(`PRAGMA synchronous`).Scan(&sync)
	s.wdb.QueryRow(`PRAGMA foreign_keys`).Scan(&fk)
	if mode != "wal" || sync != 2 || fk != 1 {
		t.Fatalf("journal_mode=%s synchronous=%d foreign_keys=%d", mode, sync, fk)
	}
	acceptN(t, s, "p", 1)
	for _, suffix := range []string{"", "-wal", "-shm"} {
		st, err := os.Stat(opt.Path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", opt.Path+suffix, st.Mode().Perm())
		}
	}
}

func TestForeignKeysEnforced(t *testing.T) {
	s := openTest(t, testOpts(t))
	_, err := s.wdb.Exec(`INSERT INTO recipients (message_id, ord, rcpt, updated_at) VALUES ('missing', 0, 'x@y', 'now')`)
	if err == nil {
		t.Fatal("recipient without message inserted")
	}
}

func TestOptionsRefused(t *testing.T) {
	opt := testOpts(t)
	opt.ContentKey = opt.ContentKey[:16]
	if _, err := Open(context.Background(), opt); err == nil {
		t.Error("16-byte key accepted")
	}
	if _, err := Open(context.Background(), Options{ContentKey: testKey(1)}); err == nil {
		t.Error("empty path accepted")
	}
}
