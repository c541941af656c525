// Tests against a real store: the ledger written by package mailbox, verified, proved, and tampered
// with the sqlite3 command line as an attacker with the database file would.

package ledger_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"cafgate/mailbox"
	"cafgate/mailbox/ledger"
)

// fixture is a closed store with a ledger, its checkpoint file and public key.
type fixture struct {
	dir, db, cpFile string
	opt             mailbox.Options
	v               note.Verifier
}

func clock() func() time.Time {
	t := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Second); return t }
}

// build writes n events (two accepted messages, then a sign-in, and so on), signing a checkpoint after
// every `every` events, and closes the store (which signs the last one).
func build(t testing.TB, n, every int) *fixture {
	t.Helper()
	return buildIn(t, t.TempDir(), n, every)
}

// buildIn is build in a given directory.
func buildIn(t testing.TB, dir string, n, every int) *fixture {
	t.Helper()
	f := &fixture{dir: dir, db: filepath.Join(dir, "cafgate.db"), cpFile: filepath.Join(dir, "checkpoints")}
	f.opt = mailbox.Options{Path: f.db, ContentKey: bytes.Repeat([]byte{7}, 32), Now: clock(),
		Ledger: mailbox.LedgerOptions{Interval: -1, Origin: "cafgate.test/ledger"}}
	s, err := mailbox.Open(context.Background(), f.opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range n {
		if i%3 == 2 {
			err = s.RecordEvent(ctx, ledger.SignIn, "", ledger.SignInData{User: fmt.Sprintf("user%d@agency.example", i), Via: "submission"})
		} else {
			err = s.Accept(ctx, message(fmt.Sprint("m", i)))
		}
		if err != nil {
			t.Fatal(err)
		}
		if every > 0 && (i+1)%every == 0 {
			if _, err := s.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if f.v, err = ledger.LoadVerifier(filepath.Join(dir, "ledger.key.pub")); err != nil {
		t.Fatal(err)
	}
	return f
}

func message(id string) *mailbox.Incoming {
	content := []byte("Subject: assessment\r\n\r\nbody " + id + "\r\n")
	return &mailbox.Incoming{ID: id, Sender: "alice@agency.example", SenderDN: "uid=alice", Agency: "agency",
		Recipients: []string{"bob@council.example"}, Via: "submission", RemoteAddr: "192.0.2.1:1",
		ReceivedAt: time.Date(2025, 6, 1, 11, 0, 0, 0, time.UTC), Digest: sha256.Sum256(content), Content: content}
}

// copyDB copies the database file to a new path for tampering.
func (f *fixture) copyDB(t testing.TB) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy.db")
	in, err := os.Open(f.db)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	return dst
}

// sqlite runs statements with the sqlite3 command line, as an attacker would.
func sqlite(t testing.TB, db, stmts string) {
	t.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("sqlite3 command line not installed")
	}
	out, err := exec.Command("sqlite3", db, stmts).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
}

// verify runs the verifier on db with the fixture's key and the given checkpoint file.
func (f *fixture) verify(t testing.TB, db, cpFile string) *ledger.Report {
	t.Helper()
	rdb, err := mailbox.OpenLedgerReader(db)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	rep, err := ledger.VerifyDatabase(context.Background(), rdb, f.v, cpFile)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events <= 5000 {
		crossCheck(t, rdb, f.v, cpFile, rep)
	}
	return rep
}

// crossCheck verifies again with the one-connection pass and with the parallel pass cut into batches of
// 1, 2, 4 and 8 events on 1 to 3 workers, and requires the same outcome as rep: every batch boundary
// and every worker hand-over is then crossed by the tampering tests.
func crossCheck(t testing.TB, rdb *sql.DB, v note.Verifier, cpFile string, rep *ledger.Report) {
	t.Helper()
	type pass struct {
		workers int
		level   uint
	}
	passes := []pass{{-1, 0}}
	for level := uint(0); level <= 3; level++ {
		passes = append(passes, pass{1 + int(level)%3, level})
	}
	for _, p := range passes {
		got, err := ledger.VerifyDatabaseWith(context.Background(), rdb, v, cpFile, p.workers, p.level)
		if err != nil {
			t.Fatalf("workers %d level %d: %v", p.workers, p.level, err)
		}
		if got.OK() != rep.OK() || got.Events != rep.Events || len(got.Checkpoints) != len(rep.Checkpoints) ||
			(rep.OK() && got.Root != rep.Root) || (!rep.OK() && got.Findings[0] != rep.Findings[0]) {
			t.Fatalf("workers %d level %d: %d events, root %s, %d checkpoints, findings %v; default pass: %d events, root %s, %d checkpoints, findings %v",
				p.workers, p.level, got.Events, got.Root, len(got.Checkpoints), got.Findings, rep.Events, rep.Root, len(rep.Checkpoints), rep.Findings)
		}
	}
}

const dropTriggers = `DROP TRIGGER ledger_events_no_update; DROP TRIGGER ledger_events_no_delete;
	DROP TRIGGER ledger_checkpoints_no_update; DROP TRIGGER ledger_checkpoints_no_delete;`

func TestUntouchedLedgerVerifies(t *testing.T) {
	f := build(t, 40, 10)
	rep := f.verify(t, f.db, f.cpFile)
	if !rep.OK() || rep.Events != 40 || len(rep.Warnings) != 0 {
		t.Fatalf("untouched ledger: %+v", rep)
	}
	// Checkpoints at 10, 20, 30 and 40, each in the database and in the file.
	if len(rep.Checkpoints) != 4 || rep.Checkpoints[3].Size != 40 || rep.Checkpoints[3].Root != rep.Root {
		t.Fatalf("checkpoints matched: %+v", rep.Checkpoints)
	}
	recs, inc, err := ledger.ReadCheckpointFile(f.cpFile, f.v)
	if err != nil || inc || len(recs) != 4 {
		t.Fatalf("checkpoint file: %d records, %v %v", len(recs), inc, err)
	}
}

func TestTamperingIsFoundAndNamed(t *testing.T) {
	f := build(t, 40, 10)
	for _, tc := range []struct {
		name        string
		sql         string
		kind        string
		first, last uint64
	}{
		{"change one byte", `UPDATE ledger_events SET event = replace(event, '"via":"submission"', '"via":"submissioN"') WHERE seq = 17`,
			ledger.KindAltered, 17, 17},
		{"change one byte of the first", `UPDATE ledger_events SET event = replace(event, 'alice', 'alicf') WHERE seq = 0`,
			ledger.KindAltered, 0, 0},
		{"delete one", `DELETE FROM ledger_events WHERE seq = 17`, ledger.KindRemoved, 17, 17},
		{"delete one and renumber", `DELETE FROM ledger_events WHERE seq = 17;
			UPDATE ledger_events SET seq = seq + 1000000 WHERE seq > 17; UPDATE ledger_events SET seq = seq - 1000001 WHERE seq > 1000000`,
			ledger.KindRemoved, 17, 17},
		{"insert one", `UPDATE ledger_events SET seq = seq + 1000000 WHERE seq >= 17; UPDATE ledger_events SET seq = seq - 999999 WHERE seq >= 1000000;
			INSERT INTO ledger_events (seq, event, leaf, nodes) SELECT 17, replace(replace(event, '"n":16,', '"n":17,'), 'm16', 'mX'), leaf, nodes FROM ledger_events WHERE seq = 16`,
			ledger.KindInserted, 17, 17},
		{"insert a copy", `UPDATE ledger_events SET seq = seq + 1000000 WHERE seq >= 17; UPDATE ledger_events SET seq = seq - 999999 WHERE seq >= 1000000;
			INSERT INTO ledger_events (seq, event, leaf, nodes) SELECT 17, event, leaf, nodes FROM ledger_events WHERE seq = 3`,
			ledger.KindInserted, 17, 17},
		{"swap two", `UPDATE ledger_events SET seq = -1 WHERE seq = 12; UPDATE ledger_events SET seq = 12 WHERE seq = 25;
			UPDATE ledger_events SET seq = 25 WHERE seq = -1`, ledger.KindReordered, 12, 25},
		{"swap neighbours", `UPDATE ledger_events SET seq = -1 WHERE seq = 12; UPDATE ledger_events SET seq = 12 WHERE seq = 13;
			UPDATE ledger_events SET seq = 13 WHERE seq = -1`, ledger.KindReordered, 12, 13},
		{"truncate after a checkpoint", `DELETE FROM ledger_events WHERE seq >= 30; DELETE FROM ledger_checkpoints WHERE size > 30`,
			ledger.KindRemoved, 30, 39},
		{"change a stored subtree hash", `UPDATE ledger_events SET nodes = zeroblob(length(nodes)) WHERE seq = 23`,
			ledger.KindTree, 22, 23},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := f.copyDB(t)
			sqlite(t, db, dropTriggers+tc.sql)
			rep := f.verify(t, db, f.cpFile)
			if rep.OK() {
				t.Fatal("tampered ledger verifies")
			}
			got := rep.Findings[0]
			if got.Kind != tc.kind || got.Event != tc.first || got.Last != tc.last {
				t.Fatalf("first finding %s; want %s %d-%d", got.String(), tc.kind, tc.first, tc.last)
			}
			t.Log(got.String())
		})
	}
}

func TestTruncatedLedgerNeedsTheCheckpointFile(t *testing.T) {
	f := build(t, 40, 10)
	db := f.copyDB(t)
	sqlite(t, db, dropTriggers+`DELETE FROM ledger_events WHERE seq >= 30; DELETE FROM ledger_checkpoints WHERE size > 30;`)
	rebuildHead(t, db)
	if rep := f.verify(t, db, ""); !rep.OK() {
		t.Fatalf("without the file the truncation cannot show, yet: %+v", rep.Findings)
	}
	rep := f.verify(t, db, f.cpFile)
	if rep.OK() || rep.Findings[0].Kind != ledger.KindRemoved || rep.Findings[0].Event != 30 {
		t.Fatalf("truncation not found with the checkpoint file: %+v", rep.Findings)
	}
}

func TestTruncatedAndRebuiltLedgerIsFound(t *testing.T) {
	f := build(t, 40, 10)
	db := f.copyDB(t)
	// The attacker removes events 25 on and the checkpoints that cover them, then appends their own
	// events with correct hashes (they have code, not the key).
	sqlite(t, db, dropTriggers+`DELETE FROM ledger_events WHERE seq >= 25; DELETE FROM ledger_checkpoints WHERE size > 20;`)
	rebuildHead(t, db)
	appendRaw(t, db, 20)
	if rep := f.verify(t, db, ""); !rep.OK() {
		t.Fatalf("the database alone is consistent after a rebuild: %+v", rep.Findings)
	}
	rep := f.verify(t, db, f.cpFile)
	if rep.OK() {
		t.Fatal("rebuilt ledger verifies against the checkpoint file")
	}
	got := rep.Findings[0]
	if got.Kind != ledger.KindRewritten || got.Event != 20 || got.Last != 29 {
		t.Fatalf("first finding %s; want rewritten 20-29", got.String())
	}
}

func TestRecomputedHashesAreFoundByCheckpoints(t *testing.T) {
	f := build(t, 40, 10)
	db := f.copyDB(t)
	// Change event 17 and recompute its leaf hash (but not the subtrees): the subtree check names it.
	sqlite(t, db, dropTriggers+`UPDATE ledger_events SET event = replace(event, 'user17', 'user71') WHERE seq = 17`)
	rehash(t, db, 17, false)
	rep := f.verify(t, db, f.cpFile)
	if rep.OK() || rep.Findings[0].Kind != ledger.KindTree || rep.Findings[0].Event != 16 || rep.Findings[0].Last != 17 {
		t.Fatalf("recomputed leaf: %+v", rep.Findings)
	}
	// Recompute every hash from event 17 on: only the signed checkpoints show it.
	rehash(t, db, 17, true)
	rep = f.verify(t, db, f.cpFile)
	if rep.OK() || rep.Findings[0].Kind != ledger.KindRewritten || rep.Findings[0].Event != 10 || rep.Findings[0].Last != 19 {
		t.Fatalf("recomputed tree: %+v", rep.Findings)
	}
}

func TestForgedCheckpointIsFound(t *testing.T) {
	f := build(t, 12, 0)
	other, err := ledger.LoadOrCreateKey(filepath.Join(t.TempDir(), "k"), "cafgate.test/ledger", nil)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := ledger.SignCheckpoint(other.Signer, 12, ledger.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	db := f.copyDB(t)
	sqlite(t, db, fmt.Sprintf(`INSERT INTO ledger_checkpoints (size, root, at, note) VALUES (12, x'00', 'now', '%s')`,
		strings.ReplaceAll(string(cp.Note), "'", "''")))
	rep := f.verify(t, db, f.cpFile)
	if rep.OK() || rep.Findings[0].Kind != ledger.KindCheckpoint {
		t.Fatalf("forged checkpoint: %+v", rep.Findings)
	}
	// Without the public key nothing can be said about checkpoints, and the report says so.
	rep = f.verify(t, f.db, "")
	if !rep.OK() {
		t.Fatal(rep.Findings)
	}
	rdb, _ := mailbox.OpenLedgerReader(f.db)
	defer rdb.Close()
	rep, _ = ledger.VerifyDatabase(context.Background(), rdb, nil, "")
	if !rep.OK() || len(rep.Warnings) == 0 {
		t.Fatalf("no key: %+v", rep)
	}
}
