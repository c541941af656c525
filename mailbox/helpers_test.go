// Test helpers: a store in a temporary directory, sample messages, raw access to the file.

package mailbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, keySize) }

// testOpts returns options for a fresh database in a temporary directory.
func testOpts(t testing.TB) Options {
	t.Helper()
	return Options{
		Path:       filepath.Join(t.TempDir(), "mailbox.db"),
		ContentKey: testKey(7),
		Now:        func() time.Time { return time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC) },
	}
}

func openTest(t testing.TB, opt Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// msg builds a valid message with the given ID and content.
func msg(id string, content []byte) *Incoming {
	return &Incoming{
		ID:         id,
		Sender:     "alice@agency.example",
		SenderDN:   "uid=alice,ou=people,dc=agency,dc=example",
		Agency:     "agency",
		Recipients: []string{"bob@council.example", "carol@health.example"},
		Via:        "submission",
		RemoteAddr: "192.0.2.1:5555",
		ReceivedAt: time.Date(2025, 3, 4, 5, 6, 0, 123, time.UTC),
		Digest:     sha256.Sum256(content),
		Content:    content,
	}
}

func body(i int) []byte {
	return []byte(fmt.Sprintf("Subject: assessment %d\r\n\r\nbody of message %d\r\n", i, i))
}

// rawDB opens the file directly, bypassing the store, for tampering and inspection.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func count(t testing.TB, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}
