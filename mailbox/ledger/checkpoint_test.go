package ledger

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testKey(t *testing.T, dir, origin string) *Key {
	t.Helper()
	k, err := LoadOrCreateKey(filepath.Join(dir, "ledger.key"), origin, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, dir, "cafgate.test/ledger")
	path := filepath.Join(dir, "ledger.key")
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", st.Mode(), err)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil || strings.TrimSpace(string(pub)) != k.VKey || !strings.HasPrefix(k.VKey, "cafgate.test/ledger+") {
		t.Fatalf("public key file %q, key %q, %v", pub, k.VKey, err)
	}
	again, err := LoadOrCreateKey(path, "other.name/ledger", nil)
	if err != nil || again.VKey != k.VKey || again.Signer.Name() != "cafgate.test/ledger" {
		t.Fatalf("reloaded key %q (%v), want %q", again.VKey, err, k.VKey)
	}
	for _, s := range []string{k.VKey, path + ".pub", path} {
		v, err := LoadVerifier(s)
		if err != nil || v.Name() != "cafgate.test/ledger" || v.KeyHash() != k.Signer.KeyHash() {
			t.Errorf("LoadVerifier(%s) = %v, %v", s, v, err)
		}
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path, "x", nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable key accepted: %v", err)
	}
	if _, err := LoadVerifier(filepath.Join(dir, "missing")); err == nil {
		t.Error("LoadVerifier of a missing file")
	}
	if _, err := VerifierKeyPEM(k.VKey); err != nil {
		t.Error(err)
	}
}

func TestCheckpointSignAndOpen(t *testing.T) {
	k := testKey(t, t.TempDir(), "cafgate.test/ledger")
	root := LeafHash([]byte("x"))
	cp, err := SignCheckpoint(k.Signer, 17, root)
	if err != nil {
		t.Fatal(err)
	}
	body := "cafgate.test/ledger\n17\n" + root.String() + "\n\n"
	if !bytes.HasPrefix(cp.Note, []byte(body)) || !bytes.Contains(cp.Note, []byte("\n— cafgate.test/ledger ")) {
		t.Fatalf("note is not a tlog-checkpoint signed note:\n%s", cp.Note)
	}
	got, err := OpenCheckpoint(cp.Note, k.Verifier())
	if err != nil || got.Size != 17 || got.Root != root || got.Origin != "cafgate.test/ledger" {
		t.Fatalf("OpenCheckpoint = %+v, %v", got, err)
	}
	forged := bytes.Replace(cp.Note, []byte("\n17\n"), []byte("\n18\n"), 1)
	if _, err := OpenCheckpoint(forged, k.Verifier()); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("altered checkpoint opens: %v", err)
	}
	other := testKey(t, t.TempDir(), "cafgate.test/ledger")
	if _, err := OpenCheckpoint(cp.Note, other.Verifier()); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("checkpoint opens with another key of the same name: %v", err)
	}
}

func TestCheckpointFile(t *testing.T) {
	k := testKey(t, t.TempDir(), "cafgate.test/ledger")
	path := filepath.Join(t.TempDir(), "checkpoints")
	if recs, inc, err := ReadCheckpointFile(path, k.Verifier()); err != nil || inc || len(recs) != 0 {
		t.Fatalf("missing file: %v %v %v", recs, inc, err)
	}
	for i := uint64(1); i <= 3; i++ {
		cp, err := SignCheckpoint(k.Signer, i*10, LeafHash([]byte{byte(i)}))
		if err != nil {
			t.Fatal(err)
		}
		if err := AppendCheckpointFile(path, cp.Note); err != nil {
			t.Fatal(err)
		}
	}
	recs, inc, err := ReadCheckpointFile(path, k.Verifier())
	if err != nil || inc || len(recs) != 3 {
		t.Fatalf("read %d records, incomplete %v, %v", len(recs), inc, err)
	}
	for i, r := range recs {
		if r.Err != nil || r.Checkpoint.Size != uint64(i+1)*10 || !strings.HasSuffix(r.Checkpoint.Source, "record "+string(rune('1'+i))) {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	data, _ := os.ReadFile(path)
	// A crash in the middle of the last append leaves an incomplete record, not a bad one.
	recs, inc, _ = ParseCheckpointFile("f", data[:len(data)-10], k.Verifier())
	if !inc || len(recs) != 2 {
		t.Fatalf("cut file: %d records, incomplete %v", len(recs), inc)
	}
	// A forged record is reported as bad.
	forged := bytes.Replace(data, []byte("\n20\n"), []byte("\n21\n"), 1)
	recs, _, _ = ParseCheckpointFile("f", forged, k.Verifier())
	if len(recs) != 3 || recs[1].Err == nil || recs[0].Err != nil || recs[2].Err != nil {
		t.Fatalf("forged record not found: %+v", recs)
	}
	if _, err := ParseBody("o\n12\nnot-base64\n"); err == nil {
		t.Error("bad root parsed")
	}
	if _, err := ParseBody("o\n012\n" + Hash{}.String() + "\n"); err == nil {
		t.Error("size with a leading zero parsed")
	}
}
