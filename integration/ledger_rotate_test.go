package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Key rotation through the built binary, beside the running gateway: `cafgate ledger rotate-key`
// records the rotation and swaps the key files; the gateway goes on accepting and signs its next
// checkpoints with the new key; `ledger verify` then passes from the old public key and from the new
// one, and the checkpoints of both keys match.
func TestLedgerRotateKeyEndToEnd(t *testing.T) {
	t.Parallel()
	g := startGateway(t)
	conf := filepath.Join(g.dir, "cafgate.toml")
	pub := filepath.Join(g.dir, "data", "ledger.key.pub")
	submitN(t, g, 3)
	oldPub, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	out, errs, code := ledgerCLI(t, "ledger", "rotate-key", "--config", conf, "--operator", "it", "--reason", "integration test")
	if code != 0 || !strings.Contains(out, "ledger key rotated at event") {
		t.Fatalf("rotate-key: exit %d\n%s\n%s", code, out, errs)
	}
	newPub, err := os.ReadFile(pub)
	if err != nil || string(newPub) == string(oldPub) {
		t.Fatalf("public key file after the rotation: %q %v", newPub, err)
	}
	ids := submitN(t, g, 3)
	g.stop() // the gateway's last checkpoint, under the new key

	for _, key := range []string{strings.TrimSpace(string(oldPub)), strings.TrimSpace(string(newPub))} {
		v, code := ledgerVerify(t, "--config", conf, "--pub", key)
		if code != 0 || !v.OK || len(v.Warnings) != 0 {
			t.Fatalf("verify from %s: exit %d %+v", key, code, v)
		}
		if last := v.Checkpoints[len(v.Checkpoints)-1]; last.Size != v.Events || len(v.Checkpoints) < 3 {
			t.Fatalf("checkpoints %+v for %d events", v.Checkpoints, v.Events)
		}
	}
	text, _, _ := ledgerCLI(t, "ledger", "verify", "--config", conf)
	if !strings.Contains(text, "key chain (2 keys") || !strings.Contains(text, "OK:") {
		t.Fatalf("verify text:\n%s", text)
	}
	// A package accepted after the rotation is proved against a checkpoint of the new key.
	proof, errs, code := ledgerCLI(t, "ledger", "prove", "--config", conf, ids[1])
	if code != 0 {
		t.Fatalf("prove: exit %d %s", code, errs)
	}
	pf := filepath.Join(t.TempDir(), "proof")
	if err := os.WriteFile(pf, []byte(proof), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := ledgerCLI(t, "ledger", "check-proof", "--pub", pub, pf); code != 0 || !strings.HasPrefix(out, "OK") {
		t.Fatalf("check-proof: exit %d %s %s", code, out, errs)
	}
}
