// Key rotation against a real store: verify follows the chain of keys from any of them, old
// checkpoints keep verifying, a retired key used again and an unknown key are refused, and tampering
// with the rotation itself is found.

package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cafgate/mailbox"
	"cafgate/mailbox/ledger"
)

// rotated is a ledger of 3 stretches of events under 3 keys: events 0-19 (checkpoints at 10 and 20)
// under key 0, the rotation (event 20), events 21-30 under key 1, the second rotation (event 31) and
// events 32-36 under key 2.
type rotated struct {
	*fixture
	keys    []string      // public keys, oldest first
	retired []*ledger.Key // the private keys rotated out, kept by the test to misuse them
}

func buildRotated(t *testing.T) *rotated {
	t.Helper()
	f := build(t, 20, 10)
	r := &rotated{fixture: f}
	keyFile := filepath.Join(f.dir, "ledger.key")
	ctx := context.Background()
	for round, more := range []int{10, 5} {
		old, err := ledger.LoadKey(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		r.retired = append(r.retired, old)
		rot, err := mailbox.RotateLedgerKey(ctx, f.db, f.opt.Ledger, "ops", fmt.Sprint("yearly rotation ", round), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if rot.Old != old.VKey || rot.Checkpoint.Size != rot.Event+1 {
			t.Fatalf("rotation %+v", rot)
		}
		if len(r.keys) == 0 {
			r.keys = append(r.keys, rot.Old)
		}
		r.keys = append(r.keys, rot.New)
		if pub, _ := os.ReadFile(keyFile + ".pub"); strings.TrimSpace(string(pub)) != rot.New {
			t.Fatalf("public key file holds %q, want %q", pub, rot.New)
		}
		if _, err := os.Stat(keyFile + ".new"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("pending key file left behind: %v", err)
		}
		s, err := mailbox.Open(ctx, f.opt)
		if err != nil {
			t.Fatal(err)
		}
		if s.LedgerKey() != rot.New {
			t.Fatalf("store opened with %s after the rotation to %s", s.LedgerKey(), rot.New)
		}
		for i := range more {
			if err := s.RecordEvent(ctx, ledger.SignIn, "", ledger.SignInData{User: fmt.Sprintf("u%d.%d@agency.example", round, i), Via: "https"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// verifyKeys verifies db trusting keys.
func (r *rotated) verifyKeys(t *testing.T, db string, keys ...string) *ledger.Report {
	t.Helper()
	rdb, err := mailbox.OpenLedgerReader(db)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	rep, err := ledger.VerifyDatabaseKeys(context.Background(), rdb, keys, r.cpFile)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestRotationVerifiesFromAnyKey(t *testing.T) {
	r := buildRotated(t)
	for name, keys := range map[string][]string{
		"first key": r.keys[:1], "middle key": r.keys[1:2], "current key": r.keys[2:], "all keys": r.keys,
	} {
		rep := r.verifyKeys(t, r.db, keys...)
		if !rep.OK() || rep.Events != 37 || len(rep.Warnings) != 0 {
			t.Fatalf("%s: %d events, findings %v, warnings %v", name, rep.Events, rep.Findings, rep.Warnings)
		}
		if len(rep.Keys) != 3 || rep.Keys[0].Until != 20 || rep.Keys[1].From != 21 || rep.Keys[1].Until != 31 || rep.Keys[2].From != 32 {
			t.Fatalf("%s: chain %+v", name, rep.Keys)
		}
		// The checkpoints of every key matched: 10 and 20 (key 0, and the first rotation), 21 (key 1),
		// 31 (the second rotation), 32 and 37 (key 2).
		var sizes []uint64
		for _, c := range rep.Checkpoints {
			sizes = append(sizes, c.Size)
		}
		if fmt.Sprint(sizes) != "[10 20 21 31 32 37]" {
			t.Fatalf("%s: checkpoints matched at %v", name, sizes)
		}
	}
	// The file's records are opened with the chain too: every one of them verifies.
	rep := r.verifyKeys(t, r.db, r.keys[2])
	for _, c := range rep.Checkpoints {
		if c.Key == "" && !strings.HasPrefix(c.Source, "key rotation") {
			t.Errorf("checkpoint %s without its key", c.Source)
		}
	}
	// The old verifier API (one key as a note.Verifier) follows the chain as well.
	if rep := r.verify(t, r.db, r.cpFile); !rep.OK() || len(rep.Keys) != 3 {
		t.Fatalf("VerifyDatabase with the first .pub: %v %+v", rep.Findings, rep.Keys)
	}
}

func TestRotationRefusesUnknownAndRetiredKeys(t *testing.T) {
	r := buildRotated(t)
	other, err := ledger.CreateKey(filepath.Join(t.TempDir(), "k"), "cafgate.test/ledger", nil)
	if err != nil {
		t.Fatal(err)
	}
	// A key that is not in the chain: nothing ties the ledger to it.
	rep := r.verifyKeys(t, r.db, other.VKey)
	if rep.OK() || rep.Findings[0].Kind != ledger.KindCheckpoint || !strings.Contains(rep.Findings[0].Detail, "none of the 3 keys") {
		t.Fatalf("unknown key trusted: %v", rep.Findings)
	}
	insert := func(t *testing.T, cp *ledger.Checkpoint) string {
		db := r.copyDB(t)
		sqlite(t, db, fmt.Sprintf(`INSERT INTO ledger_checkpoints (size, root, at, note) VALUES (%d, x'00', 'now', '%s')`,
			cp.Size, strings.ReplaceAll(string(cp.Note), "'", "''")))
		return db
	}
	tree := func(t *testing.T, size uint64) ledger.Hash { // the true root at size
		rdb := rawOpen(t, r.db)
		h, err := ledger.SubtreeHash(context.Background(), ledger.Nodes{Q: rdb}, 0, size)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, tc := range []struct {
		name string
		key  *ledger.Key
		size uint64
		root func(t *testing.T, size uint64) ledger.Hash
		want string
	}{
		// The first key, retired at event 20, signing the true tree of 30 events: refused all the same.
		{"retired key, true root", r.retired[0], 30, tree, "not in use at that size"},
		// The same key signing a rewritten tree: refused as a checkpoint, not taken for a rewrite.
		{"retired key, false root", r.retired[0], 36, func(*testing.T, uint64) ledger.Hash { return ledger.Hash{1} }, "not in use at that size"},
		// The second key after its own retirement at 31.
		{"second key after it", r.retired[1], 35, tree, "not in use at that size"},
		// A key of the same name the chain does not know.
		{"unknown key", other, 36, tree, "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp, err := ledger.SignCheckpoint(tc.key.Signer, tc.size, tc.root(t, tc.size))
			if err != nil {
				t.Fatal(err)
			}
			rep := r.verifyKeys(t, insert(t, cp), r.keys[2])
			if rep.OK() || len(rep.Findings) != 1 || rep.Findings[0].Kind != ledger.KindCheckpoint || !strings.Contains(rep.Findings[0].Detail, tc.want) {
				t.Fatalf("findings %v", rep.Findings)
			}
			t.Log(rep.Findings[0].String())
		})
	}
	// A retired key signing a size inside its own span is fine (a gateway that signed just before it
	// saw the rotation does exactly that).
	cp, err := ledger.SignCheckpoint(r.retired[0].Signer, 15, tree(t, 15))
	if err != nil {
		t.Fatal(err)
	}
	db := insert(t, cp)
	if rep := r.verifyKeys(t, db, r.keys[0]); !rep.OK() {
		t.Fatalf("old key within its span: %v", rep.Findings)
	}
	// That checkpoint, stored after the new key's, does not stop a proof under the current key.
	v, err := ledger.LoadVerifier(r.keys[2])
	if err != nil {
		t.Fatal(err)
	}
	p, err := ledger.Prove(context.Background(), rawOpen(t, db), 3, v)
	if err != nil || p.Size != 37 || p.Verify(v) != nil {
		t.Fatalf("prove after an old key's checkpoint: %v", err)
	}
}

func TestTamperingWithTheRotation(t *testing.T) {
	r := buildRotated(t)
	t.Run("one byte of the rotation event", func(t *testing.T) {
		db := r.copyDB(t)
		sqlite(t, db, dropTriggers+`UPDATE ledger_events SET event = replace(event, 'yearly', 'yearlY') WHERE seq = 20`)
		rep := r.verifyKeys(t, db, r.keys[2])
		if rep.OK() || rep.Findings[0].Kind != ledger.KindAltered || rep.Findings[0].Event != 20 {
			t.Fatalf("findings %v", rep.Findings)
		}
	})
	t.Run("rotation to the attacker's key, every hash recomputed", func(t *testing.T) {
		// The attacker swaps the new key named in the first rotation for their own and recomputes the
		// tree: the statement no longer verifies, so the chain stops at key 0.
		other, err := ledger.CreateKey(filepath.Join(t.TempDir(), "k"), "cafgate.test/ledger", nil)
		if err != nil {
			t.Fatal(err)
		}
		db := r.copyDB(t)
		sqlite(t, db, dropTriggers+fmt.Sprintf(`UPDATE ledger_events SET event = replace(event, '"new":"%s"', '"new":"%s"') WHERE seq = 20`,
			r.keys[1], other.VKey))
		rehash(t, db, 20, true)
		rep := r.verifyKeys(t, db, r.keys[0])
		if rep.OK() || rep.Findings[0].Kind != ledger.KindCheckpoint || rep.Findings[0].Event != 20 ||
			!strings.Contains(rep.Findings[0].Detail, "the statement") {
			t.Fatalf("findings %v", rep.Findings)
		}
	})
	t.Run("rotation left out of the list", func(t *testing.T) {
		db := r.copyDB(t)
		sqlite(t, db, `UPDATE settings SET value = '31' WHERE name = 'ledger_rotations'`)
		rep := r.verifyKeys(t, db, r.keys[2])
		if rep.OK() {
			t.Fatal("verifies without the first rotation")
		}
		found := false
		for _, f := range rep.Findings {
			found = found || (f.Kind == ledger.KindCheckpoint && f.Event == 20 && strings.Contains(f.Detail, "leaves out"))
		}
		if !found {
			t.Fatalf("findings %v", rep.Findings)
		}
	})
	t.Run("a sign-in listed as a rotation", func(t *testing.T) {
		db := r.copyDB(t)
		sqlite(t, db, `UPDATE settings SET value = '5,20,31' WHERE name = 'ledger_rotations'`)
		rep := r.verifyKeys(t, db, r.keys[2])
		if rep.OK() || rep.Findings[0].Kind != ledger.KindCheckpoint || rep.Findings[0].Event != 5 {
			t.Fatalf("findings %v", rep.Findings)
		}
	})
}

func TestRotationBesideARunningGateway(t *testing.T) {
	f := build(t, 5, 0)
	ctx := context.Background()
	s, err := mailbox.Open(ctx, f.opt)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old := s.LedgerKey()
	rot, err := mailbox.RotateLedgerKey(ctx, f.db, f.opt.Ledger, "ops", "key on a lost laptop", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordEvent(ctx, ledger.SignIn, "", ledger.SignInData{User: "x@agency.example", Via: "https"}); err != nil {
		t.Fatal(err)
	}
	cp, err := s.Checkpoint(ctx) // the gateway still holds the old key: it must sign with the new one
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != rot.Event+2 || s.LedgerKey() != rot.New {
		t.Fatalf("checkpoint %+v", cp)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rdb, err := mailbox.OpenLedgerReader(f.db)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	rep, err := ledger.VerifyDatabaseKeys(ctx, rdb, []string{old}, f.cpFile)
	if err != nil || !rep.OK() || len(rep.Keys) != 2 || rep.Checkpoints[len(rep.Checkpoints)-1].Key != rot.New {
		t.Fatalf("%v %v %+v", err, rep.Findings, rep.Keys)
	}
}

func TestRotationFinishedAfterACrash(t *testing.T) {
	f := build(t, 5, 0)
	keyFile := filepath.Join(f.dir, "ledger.key")
	oldKey, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := mailbox.RotateLedgerKey(context.Background(), f.db, f.opt.Ledger, "ops", "r", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// As if the process died between the commit and putting the new key file in place.
	if err := os.Rename(keyFile, keyFile+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := mailbox.Open(context.Background(), f.opt)
	if err != nil {
		t.Fatalf("store after a half-finished rotation: %v", err)
	}
	if s.LedgerKey() != rot.New {
		t.Fatalf("store key %s, want %s", s.LedgerKey(), rot.New)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keyFile + ".new"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pending key file left: %v", err)
	}
	// A rotation attempt that never committed leaves the database's key alone.
	if err := os.WriteFile(keyFile+".new", oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = mailbox.Open(context.Background(), f.opt)
	if err != nil || s.LedgerKey() != rot.New {
		t.Fatalf("store with a stale pending key: %v", err)
	}
	s.Close()
}

// A pool of two connections (one held by the snapshot) verifies with one worker; a pool of one with
// the sequential pass: neither waits for a connection that never comes.
func TestVerifyWithASmallPool(t *testing.T) {
	f := build(t, 30, 10)
	for _, conns := range []int{1, 2} {
		rdb, err := mailbox.OpenLedgerReader(f.db)
		if err != nil {
			t.Fatal(err)
		}
		rdb.SetMaxOpenConns(conns)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		rep, err := ledger.VerifyDatabase(ctx, rdb, f.v, f.cpFile)
		cancel()
		rdb.Close()
		if err != nil || !rep.OK() || rep.Events != 30 {
			t.Fatalf("%d connections: %v %+v", conns, err, rep)
		}
	}
}
