// What an attacker with code (but without the ledger key) does to a database copy: recompute hashes,
// rebuild the tree head, append events with correct hashes.

package ledger_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"cafgate/mailbox/ledger"
)

func rawOpen(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rebuildHead makes ledger_head agree with the stored subtree hashes, as after a truncation.
func rebuildHead(t testing.TB, path string) {
	t.Helper()
	db := rawOpen(t, path)
	tr, err := ledger.LoadTree(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	writeHead(t, db, tr)
}

func writeHead(t testing.TB, db *sql.DB, tr *ledger.Tree) {
	t.Helper()
	var edge []byte
	for _, h := range tr.Edge() {
		edge = append(edge, h[:]...)
	}
	if _, err := db.Exec(`UPDATE ledger_head SET size = ?, edge = ?`, int64(tr.Size()), edge); err != nil {
		t.Fatal(err)
	}
}

// appendRaw appends n sign-in events with correct hashes.
func appendRaw(t testing.TB, path string, n int) {
	t.Helper()
	db := rawOpen(t, path)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for i := range n {
		data, _ := ledger.EncodeData(ledger.SignInData{User: fmt.Sprintf("forger%d@x.example", i), Via: "submission"})
		if err := ledger.Append(context.Background(), tx, time.Now(), &ledger.Event{Type: ledger.SignIn, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// rehash recomputes the leaf hash of event n; with all, it recomputes every leaf, every stored
// subtree hash and the head from the event bytes, as a careful attacker would.
func rehash(t testing.TB, path string, n uint64, all bool) {
	t.Helper()
	db := rawOpen(t, path)
	if _, err := db.Exec(`DROP TRIGGER IF EXISTS ledger_events_no_update`); err != nil {
		t.Fatal(err)
	}
	if !all {
		var ev string
		if err := db.QueryRow(`SELECT event FROM ledger_events WHERE seq = ?`, int64(n)).Scan(&ev); err != nil {
			t.Fatal(err)
		}
		h := ledger.LeafHash([]byte(ev))
		if _, err := db.Exec(`UPDATE ledger_events SET leaf = ? WHERE seq = ?`, h[:], int64(n)); err != nil {
			t.Fatal(err)
		}
		return
	}
	rows, err := db.Query(`SELECT seq, event FROM ledger_events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	type upd struct {
		seq         int64
		leaf, nodes []byte
	}
	var ups []upd
	tr := &ledger.Tree{}
	for rows.Next() {
		var seq int64
		var ev string
		if err := rows.Scan(&seq, &ev); err != nil {
			t.Fatal(err)
		}
		h := ledger.LeafHash([]byte(ev))
		nodes := []byte{}
		for _, c := range tr.Append(h, nil) {
			nodes = append(nodes, c[:]...)
		}
		ups = append(ups, upd{seq, h[:], nodes})
	}
	rows.Close()
	for _, u := range ups {
		if _, err := db.Exec(`UPDATE ledger_events SET leaf = ?, nodes = ? WHERE seq = ?`, u.leaf, u.nodes, u.seq); err != nil {
			t.Fatal(err)
		}
	}
	writeHead(t, db, tr)
}
