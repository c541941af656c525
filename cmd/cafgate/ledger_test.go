package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cafgate/mailbox"
	"cafgate/mailbox/ledger"
)

// runLedgerCmd runs one of ledgerCommands directly (it works whether or not the lead has put them in
// the command table yet).
func runLedgerCmd(t *testing.T, name string, args ...string) (string, string, error) {
	t.Helper()
	for _, cmd := range ledgerCommands() {
		if cmd.name != name {
			continue
		}
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		if cmd.flags != nil {
			cmd.flags(fs)
		}
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		err := cmd.run(&cli{out: &out, err: &errOut}, fs, fs.Args())
		return out.String(), errOut.String(), err
	}
	t.Fatalf("no command %q", name)
	return "", "", nil
}

// ledgerStore writes a store with n accepted messages in dir and closes it (signing a checkpoint).
func ledgerStore(t *testing.T, n int) (dir, db string) {
	t.Helper()
	dir = t.TempDir()
	db = filepath.Join(dir, "cafgate.db")
	s, err := mailbox.Open(context.Background(), mailbox.Options{Path: db, ContentKey: bytes.Repeat([]byte{1}, 32),
		Ledger: mailbox.LedgerOptions{Origin: "cafgate.test/ledger", Interval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		content := []byte(fmt.Sprintf("Subject: x\r\n\r\nbody %d\r\n", i))
		err := s.Accept(context.Background(), &mailbox.Incoming{ID: fmt.Sprint("pkg-", i), Sender: "alice@agency.example",
			SenderDN: "uid=alice", Agency: "agency", Recipients: []string{"bob@council.example"}, Via: "submission",
			RemoteAddr: "192.0.2.1:1", ReceivedAt: time.Now(), Digest: sha256.Sum256(content), Content: content})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, db
}

func TestLedgerVerifyCommand(t *testing.T) {
	dir, db := ledgerStore(t, 7)
	out, _, err := runLedgerCmd(t, "ledger verify", "--db", db)
	if err != nil || !strings.Contains(out, "7 events") || !strings.Contains(out, "OK:") || !strings.Contains(out, "1 signed checkpoints match") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	out, _, err = runLedgerCmd(t, "ledger verify", "--db", db, "--json", "--pub", filepath.Join(dir, "ledger.key.pub"))
	if err != nil || !strings.Contains(out, `"ok": true`) || !strings.Contains(out, `"events": 7`) {
		t.Fatalf("verify --json: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("no sqlite3 command line")
	}
	cmd := exec.Command("sqlite3", db, `DROP TRIGGER ledger_events_no_update;
		UPDATE ledger_events SET event = replace(event, 'alice', 'alicf') WHERE seq = 3`)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v %s", err, b)
	}
	out, _, err = runLedgerCmd(t, "ledger verify", "--db", db)
	if err == nil || !strings.Contains(err.Error(), "altered: event 3") || !strings.Contains(out, "FIRST PROBLEM: altered: event 3") {
		t.Fatalf("tampered ledger: %v\n%s", err, out)
	}
}

func TestLedgerProveAndTheOpensslRecipe(t *testing.T) {
	dir, db := ledgerStore(t, 11)
	out, _, err := runLedgerCmd(t, "ledger prove", "--db", db, "pkg-6")
	if err != nil || !strings.Contains(out, "\nindex 6\nsize 11\n") {
		t.Fatalf("prove: %v\n%s", err, out)
	}
	proof := filepath.Join(t.TempDir(), "proof")
	if err := os.WriteFile(proof, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "ledger.key.pub")
	if res, _, err := runLedgerCmd(t, "ledger check-proof", "--pub", pub, proof); err != nil || !strings.HasPrefix(res, "OK") {
		t.Fatalf("check-proof: %v %s", err, res)
	}
	script := recipeFromDocs(t)
	for _, tool := range []string{"bash", "openssl", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	run := func(proofText string) (string, error) {
		p := filepath.Join(t.TempDir(), "proof")
		if err := os.WriteFile(p, []byte(proofText), 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := exec.Command("bash", script, p, pub).CombinedOutput()
		return string(b), err
	}
	for i := range 11 { // every position in a tree of 11: left and right branches, the ragged right edge
		text, _, err := runLedgerCmd(t, "ledger prove", "--db", db, fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		if res, err := run(text); err != nil || !strings.Contains(res, "OK: event "+fmt.Sprint(i)) {
			t.Fatalf("recipe on event %d: %v\n%s\n%s", i, err, res, text)
		}
	}
	// The recipe must fail: an altered event, a wrong index, a forged checkpoint.
	for name, bad := range map[string]string{
		"event":      strings.Replace(out, "alice", "alicf", 1),
		"index":      strings.Replace(out, "\nindex 6\n", "\nindex 7\n", 1),
		"checkpoint": strings.Replace(out, "\n11\n", "\n12\n", 1),
		"path":       strings.Replace(out, "\npath ", "\npath A", 1),
	} {
		if res, err := run(bad); err == nil {
			t.Errorf("recipe accepts a proof with an altered %s:\n%s", name, res)
		}
		var p ledger.Proof
		if p.UnmarshalText([]byte(bad)) == nil {
			if v, _ := ledger.LoadVerifier(pub); p.Verify(v) == nil {
				t.Errorf("Go verifier accepts a proof with an altered %s", name)
			}
		}
	}
}

// recipeFromDocs writes the shell recipe of docs/ledger.md (the ```bash block after the line
// "<!-- recipe: verify-proof.sh -->") to a file, so the test runs exactly what the documentation says.
func recipeFromDocs(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "ledger.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "<!-- recipe: verify-proof.sh -->")
	if !ok {
		t.Fatal("docs/ledger.md has no recipe marker")
	}
	_, after, _ = strings.Cut(after, "```bash\n")
	script, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatal("recipe block not closed")
	}
	path := filepath.Join(t.TempDir(), "verify-proof.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLedgerShowRecordsTheAccess(t *testing.T) {
	_, db := ledgerStore(t, 4)
	if _, _, err := runLedgerCmd(t, "ledger show", "--db", db, "--package", "pkg-2", "--operator", "ann"); err == nil {
		t.Fatal("show without a reason")
	}
	out, errOut, err := runLedgerCmd(t, "ledger show", "--db", db, "--package", "pkg-2", "--operator", "ann", "--reason", "complaint 42")
	// The package's accepted event, and this access itself (it is about the package too).
	if err != nil || !strings.HasPrefix(out, "#2 ") || !strings.Contains(out, "\n#4 ") || !strings.Contains(out, "operator=ann") ||
		strings.Count(out, "\n") != 2 || !strings.Contains(errOut, "ledger event 4") {
		t.Fatalf("show: %v\n%s\n%s", err, out, errOut)
	}
	out, _, err = runLedgerCmd(t, "ledger show", "--db", db, "--practitioner", "ALICE@agency.example", "--operator", "ann", "--reason", "r", "--json")
	if err != nil || strings.Count(out, `"intact": true`) != 4 {
		t.Fatalf("show --practitioner --json: %v\n%s", err, out)
	}
	out, _, err = runLedgerCmd(t, "ledger show", "--db", db, "--type", "access", "--since", "1h", "--operator", "bob", "--reason", "who looked")
	if err != nil || strings.Count(out, "\n") != 3 || !strings.Contains(out, `reason="complaint 42"`) || !strings.Contains(out, "operator=ann") {
		t.Fatalf("the accesses are in the ledger: %v\n%s", err, out)
	}
	if out, _, err := runLedgerCmd(t, "ledger verify", "--db", db); err != nil || !strings.Contains(out, "7 events") {
		t.Fatalf("verify after the accesses: %v\n%s", err, out)
	}
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runLedgerCmd(t, "ledger show", "--db", filepath.Join(ro, "missing.db"), "--since", "1h", "--reason", "x", "--operator", "o"); err == nil ||
		!strings.Contains(err.Error(), "cannot record this access") {
		t.Fatalf("show where the access cannot be recorded: %v", err)
	}
}

func TestLedgerParseSince(t *testing.T) {
	now := time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2025-06-01":           time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC),
		"2025-06-01T08:00:00Z": time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"90m":                  now.Add(-90 * time.Minute),
	} {
		if got, err := ledgerParseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	if _, err := ledgerParseSince("yesterday", now); err == nil {
		t.Error("yesterday parsed")
	}
}

func TestLedgerRotateKeyCommand(t *testing.T) {
	dir, db := ledgerStore(t, 5)
	pub := filepath.Join(dir, "ledger.key.pub")
	oldPub, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := runLedgerCmd(t, "ledger rotate-key", "--db", db, "--operator", "ann"); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Fatalf("rotate-key without a reason: %v", err)
	}
	out, _, err := runLedgerCmd(t, "ledger rotate-key", "--db", db, "--operator", "ann", "--reason", "annual rotation")
	if err != nil || !strings.Contains(out, "ledger key rotated at event 5") || !strings.Contains(out, "covers 6 events") {
		t.Fatalf("rotate-key: %v\n%s", err, out)
	}
	newPub, _ := os.ReadFile(pub)
	if bytes.Equal(newPub, oldPub) {
		t.Fatal("the public key file still holds the old key")
	}
	for _, key := range []string{pub, strings.TrimSpace(string(oldPub))} {
		out, _, err = runLedgerCmd(t, "ledger verify", "--db", db, "--pub", key)
		if err != nil || !strings.Contains(out, "key chain (2 keys") || !strings.Contains(out, "OK:") || !strings.Contains(out, "[given]") {
			t.Fatalf("verify --pub %s after the rotation: %v\n%s", key, err, out)
		}
	}
	out, _, err = runLedgerCmd(t, "ledger verify", "--db", db, "--json")
	if err != nil || !strings.Contains(out, `"given": true`) || strings.Count(out, `"key": "cafgate.test/ledger+`) != 2 {
		t.Fatalf("verify --json: %v\n%s", err, out)
	}
	// The rotation event is shown like any other, and proofs check with the new key.
	out, _, err = runLedgerCmd(t, "ledger show", "--db", db, "--type", "key-rotated", "--since", "1h", "--operator", "ann", "--reason", "audit")
	if err != nil || !strings.Contains(out, "key-rotated") || !strings.Contains(out, `annual rotation`) {
		t.Fatalf("show the rotation: %v\n%s", err, out)
	}
	proof, _, err := runLedgerCmd(t, "ledger prove", "--db", db, "pkg-2")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "proof")
	if err := os.WriteFile(file, []byte(proof), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, _, err := runLedgerCmd(t, "ledger check-proof", "--pub", pub, file); err != nil || !strings.HasPrefix(res, "OK") {
		t.Fatalf("check-proof with the new key: %v %s", err, res)
	}
}
