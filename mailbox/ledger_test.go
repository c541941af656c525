// Tests of the ledger inside the store: appends in the same transaction as the state change, lone
// events through the group commit, other writers interleaved, checkpoints at the interval, at Close and
// to a witness, and the move of 0001-era events into the tree.

package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cafgate/mailbox/ledger"
)

// verifyLedger runs the full verifier on the store's files and fails the test on any finding.
func verifyLedger(t *testing.T, opt Options) *ledger.Report {
	t.Helper()
	dir := filepath.Dir(opt.Path)
	v, err := ledger.LoadVerifier(filepath.Join(dir, "ledger.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := OpenLedgerReader(opt.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := ledger.VerifyDatabase(context.Background(), db, v, filepath.Join(dir, "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("ledger does not verify: %v", rep.Findings)
	}
	return rep
}

func TestLedgerEveryWriterInterleaved(t *testing.T) {
	opt := testOpts(t)
	opt.Now = time.Now
	s := openTest(t, opt)
	ctx := context.Background()
	var wg sync.WaitGroup
	var accepted, lone, own, cli atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				if err := s.Accept(ctx, msg(fmt.Sprintf("w%d-%d", w, i), body(i))); err != nil {
					t.Error(err)
					return
				}
				accepted.Add(1)
			}
		})
	}
	for w := range 2 {
		wg.Go(func() {
			for i := range 20 {
				err := s.RecordEvent(ctx, ledger.SignIn, "", ledger.SignInData{User: fmt.Sprintf("u%d-%d@x.example", w, i), Via: "submissions"})
				if err != nil {
					t.Error(err)
					return
				}
				lone.Add(1)
			}
		})
	}
	wg.Go(func() { // a state change in its own transaction, as the queue and the episodes do
		for i := range 15 {
			tx, err := s.wdb.BeginTx(ctx, nil)
			if err == nil {
				err = appendEvent(ctx, tx, event{At: time.Now(), Type: ledger.Held, Data: map[string]any{"queue_id": i}})
			}
			if err == nil {
				err = tx.Commit()
			}
			if err != nil {
				t.Error(err)
				return
			}
			own.Add(1)
		}
	})
	wg.Go(func() { // the CLI's access events, from another connection
		for i := range 5 {
			_, err := AppendLedgerEvent(ctx, opt.Path, ledger.Access, "", ledger.AccessData{Operator: "op", Reason: "audit", Query: fmt.Sprint(i)}, time.Now())
			if err != nil {
				t.Error(err)
				return
			}
			cli.Add(1)
		}
	})
	wg.Wait()
	if st := s.Stats(); st.Messages != uint64(accepted.Load()) {
		t.Errorf("Stats.Messages = %d, want %d (lone events are not messages)", st.Messages, accepted.Load())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep := verifyLedger(t, opt)
	want := accepted.Load() + lone.Load() + own.Load() + cli.Load()
	if rep.Events != uint64(want) || len(rep.Checkpoints) == 0 || rep.Checkpoints[len(rep.Checkpoints)-1].Size != uint64(want) {
		t.Fatalf("verified %d events (checkpoints %v), want %d with a final checkpoint", rep.Events, rep.Checkpoints, want)
	}
	raw := rawDB(t, opt.Path)
	if n := count(t, raw, `SELECT count(*) FROM messages m WHERE (SELECT count(*) FROM ledger_events e WHERE e.message_id = m.id AND e.type = 'accepted') != 1`); n != 0 {
		t.Fatalf("%d messages without exactly one accepted event", n)
	}
}

func TestLedgerAppendsInterleavedInOneTransaction(t *testing.T) {
	opt := testOpts(t)
	s := openTest(t, opt)
	ctx := context.Background()
	acceptN(t, s, "i", 2)
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	led, err := ledger.NewAppender(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	held := func() *ledger.Event { return &ledger.Event{Type: ledger.Held, Data: []byte(`{"queue_id":"q"}`)} }
	if n, err := led.Append(ctx, opt.Now(), held()); err != nil || n != 2 {
		t.Fatalf("first append = %d, %v", n, err)
	}
	// Other code appends in the same transaction (as the decisions would inside the writer's batch).
	if err := appendEvent(ctx, tx, event{At: opt.Now(), Type: ledger.Held, Data: map[string]string{"queue_id": "r"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := led.Append(ctx, opt.Now(), held()); err != nil || n != 4 {
		t.Fatalf("append after another writer = %d, %v; want 4", n, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if rep := verifyLedger(t, opt); rep.Events != 5 {
		t.Fatalf("%d events, want 5", rep.Events)
	}
}

func TestLedgerEventRolledBackWithItsChange(t *testing.T) {
	opt := testOpts(t)
	s := openTest(t, opt)
	ctx := context.Background()
	acceptN(t, s, "a", 2)
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := appendEvent(ctx, tx, event{At: opt.Now(), Type: ledger.Held, Data: map[string]string{"queue_id": "q"}}); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	// A duplicate ID fails its transaction: neither its row nor its event stays.
	if err := s.Accept(ctx, msg("a0", body(9))); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate accept = %v", err)
	}
	if err := s.RecordEvent(ctx, "no-such-type", "", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("RecordEvent of an unknown type = %v", err)
	}
	acceptN(t, s, "b", 1)
	s.Close()
	if rep := verifyLedger(t, opt); rep.Events != 3 {
		t.Fatalf("%d events, want 3 (two accepts, one more; nothing rolled back)", rep.Events)
	}
}

func TestLedgerCheckpointsAtIntervalAndToWitness(t *testing.T) {
	var posts atomic.Int64
	got := make(chan string, 10)
	wit := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if posts.Add(1) == 1 {
			http.Error(w, "not yet", http.StatusServiceUnavailable) // retried at the next interval
			return
		}
		got <- string(b)
	}))
	defer wit.Close()
	opt := testOpts(t)
	opt.Ledger = LedgerOptions{Interval: 20 * time.Millisecond, WitnessURL: wit.URL, Origin: "cafgate.test/ledger"}
	s := openTest(t, opt)
	acceptN(t, s, "c", 3)
	var note string
	select {
	case note = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the witness never received a checkpoint")
	}
	v, err := ledger.LoadVerifier(s.LedgerKey())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := ledger.OpenCheckpoint([]byte(note), v)
	if err != nil || cp.Size != 3 || cp.Origin != "cafgate.test/ledger" {
		t.Fatalf("witnessed checkpoint %+v, %v", cp, err)
	}
	if posts.Load() < 2 {
		t.Fatalf("witness posts = %d, want a failure then a retry", posts.Load())
	}
	s.Close()
	recs, _, err := ledger.ReadCheckpointFile(filepath.Join(filepath.Dir(opt.Path), "checkpoints"), v)
	if err != nil || len(recs) != 1 || recs[0].Checkpoint.Size != 3 {
		t.Fatalf("checkpoint file: %+v, %v (one checkpoint: the tree did not grow after it)", recs, err)
	}
}

func TestCheckpointerRefusesATruncatedLedger(t *testing.T) {
	opt := testOpts(t)
	opt.Ledger.Interval = -1
	s := openTest(t, opt)
	ctx := context.Background()
	acceptN(t, s, "t", 6)
	if cp, err := s.Checkpoint(ctx); err != nil || cp.Size != 6 {
		t.Fatalf("Checkpoint = %+v, %v", cp, err)
	}
	raw := rawDB(t, opt.Path)
	for _, q := range []string{`DROP TRIGGER ledger_events_no_delete`, `DELETE FROM ledger_events WHERE seq >= 4`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := ledger.LoadTree(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var edge []byte
	for _, h := range tr.Edge() {
		edge = append(edge, h[:]...)
	}
	if _, err := raw.Exec(`UPDATE ledger_head SET size = ?, edge = ?`, tr.Size(), edge); err != nil {
		t.Fatal(err)
	}
	acceptN(t, s, "u", 3) // 7 events now, but not the 6 that were signed
	if _, err := s.Checkpoint(ctx); !errors.Is(err, ledger.ErrInconsistent) {
		t.Fatalf("Checkpoint over a rewritten ledger = %v, want ErrInconsistent", err)
	}
}

func TestLegacyEventsMovedIntoTheTree(t *testing.T) {
	opt := testOpts(t)
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	db, err := openWriter(opt.Path, defaultBusyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := migrate(ctx, db, ms[:1]); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"old1", "old2"} {
		for _, q := range []string{
			fmt.Sprintf(`INSERT INTO messages (id, sender, sender_dn, agency, via, remote_addr, received_at, accepted_at, size, digest)
				VALUES ('%s', 'alice@a.example', 'dn', 'a', 'submission', 'r', '2025-01-01T00:00:00.000000000Z', '2025-01-01T00:00:0%d.000000000Z', 5, 'ab')`, id, i),
			fmt.Sprintf(`INSERT INTO recipients (message_id, ord, rcpt, updated_at) VALUES ('%s', 0, 'bob@b.example', 'x'), ('%s', 1, 'carol@c.example', 'x')`, id, id),
			fmt.Sprintf(`INSERT INTO ledger_events (at, type, message_id, data) VALUES ('2025-01-01T00:00:0%d.000000000Z', 'accepted', '%s',
				'{"digest":"ab","sender":"alice@a.example","recipients":2,"size":5,"via":"submission"}')`, i, id),
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
	}
	db.Close()
	s := openTest(t, opt)
	acceptN(t, s, "new", 1)
	s.Close()
	if rep := verifyLedger(t, opt); rep.Events != 3 {
		t.Fatalf("%d events after the move, want 3", rep.Events)
	}
	raw := rawDB(t, opt.Path)
	var data string
	if err := raw.QueryRow(`SELECT data FROM ledger_events WHERE seq = 1`).Scan(&data); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(data, `"recipients":["bob@b.example","carol@c.example"]`) {
		t.Fatalf("moved event data %s", data)
	}
	if n := count(t, raw, `SELECT count(*) FROM sqlite_schema WHERE name = 'ledger_events_v0'`); n != 0 {
		t.Fatal("old table left behind")
	}
}

func TestLedgerKeyFileIsPrivate(t *testing.T) {
	opt := testOpts(t)
	s := openTest(t, opt)
	s.Close()
	dir := filepath.Dir(opt.Path)
	st, err := os.Stat(filepath.Join(dir, "ledger.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ledger.key mode %v, %v", st.Mode(), err)
	}
	if h := s.LedgerChildHash("943 476 5919"); len(h) != 64 || h != s.LedgerChildHash("9434765919") {
		t.Fatalf("LedgerChildHash = %q", h)
	}
}

func TestLedgerRefusesASecondKey(t *testing.T) {
	opt := testOpts(t)
	openTest(t, opt).Close()
	other := opt
	other.Ledger.KeyFile = filepath.Join(t.TempDir(), "other.key")
	if _, err := Open(context.Background(), other); err == nil || !strings.Contains(err.Error(), "ledger.key_file") {
		t.Fatalf("Open with a missing key file = %v", err)
	}
	if _, err := os.Stat(other.Ledger.KeyFile); err == nil {
		t.Fatal("a second key was created")
	}
	if _, err := ledger.LoadOrCreateKey(other.Ledger.KeyFile, "x.test/ledger", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), other); err == nil || !strings.Contains(err.Error(), "signed with") {
		t.Fatalf("Open with another key = %v", err)
	}
	s := openTest(t, opt) // the right key still opens
	s.Close()
}

func TestOpenLedgerReaderOnAReadOnlyCopy(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes anywhere; the read-only directory would not be read-only")
	}
	opt := testOpts(t)
	s := openTest(t, opt)
	acceptN(t, s, "r", 2)
	s.Close()
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(opt.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "copy.db"), b, 0o400); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	db, err := OpenLedgerReader(filepath.Join(dir, "copy.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := ledger.VerifyDatabase(context.Background(), db, nil, "")
	if err != nil || !rep.OK() || rep.Events != 2 {
		t.Fatalf("read-only copy: %+v %v", rep, err)
	}
}

// TestLedgerKeyInsideAWriteWhileACheckpointWaits: a report reads the ledger's key inside a write
// transaction while the checkpointer, holding its own lock, waits for the writer to store a
// checkpoint. The key must not wait for that lock (a deadlock that stopped all delivery in the
// delivery benchmark's backlog run).
func TestLedgerKeyInsideAWriteWhileACheckpointWaits(t *testing.T) {
	opt := testOpts(t)
	opt.Ledger.Interval = -1
	s := openTest(t, opt)
	ctx := context.Background()
	acceptN(t, s, "k", 2) // the tree grew: the checkpoint has one to store
	inTx := make(chan struct{})
	txDone := make(chan error, 1)
	go func() {
		txDone <- s.queueTx(ctx, func(tx *sql.Tx) error {
			close(inTx)
			time.Sleep(200 * time.Millisecond) // the checkpoint takes its lock and waits for the writer
			if s.LedgerKey() == "" {
				return errors.New("no ledger key")
			}
			return nil
		})
	}()
	<-inTx
	cpDone := make(chan error, 1)
	go func() {
		_, err := s.Checkpoint(ctx)
		cpDone <- err
	}()
	for i, ch := range []chan error{txDone, cpDone} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("%s: %v", []string{"write transaction", "checkpoint"}[i], err)
			}
		case <-time.After(15 * time.Second):
			// panic, not Fatal: the store's Close in the cleanup would wait on the deadlock forever
			panic("deadlock: the " + []string{"write transaction", "checkpoint"}[i] + " never finished")
		}
	}
}
