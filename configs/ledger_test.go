package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLedgerDefaultsAndProblems(t *testing.T) {
	c := Default()
	c.DataDir, c.Hostname = "/var/lib/cafgate", "gw.example.org"
	c.resolveLedger("/etc/cafgate")
	l := c.Ledger
	if l.KeyFile != "/var/lib/cafgate/ledger.key" || l.CheckpointFile != "/var/lib/cafgate/checkpoints" ||
		l.Origin != "cafgate.gw.example.org/ledger" || l.CheckpointInterval.D() != time.Minute {
		t.Fatalf("defaults: %+v", l)
	}
	if ps := c.validateLedger("f"); len(ps) != 0 {
		t.Fatalf("defaults have problems: %v", ps)
	}
	c.Ledger = LedgerConfig{KeyFile: "k", CheckpointFile: "cp", Origin: "bad origin", WitnessURL: "ftp://x"}
	c.resolveLedger("/etc/cafgate")
	if c.Ledger.KeyFile != "/etc/cafgate/k" || c.Ledger.CheckpointFile != "/etc/cafgate/cp" {
		t.Fatalf("relative paths: %+v", c.Ledger)
	}
	key := filepath.Join(t.TempDir(), "ledger.key")
	if err := os.WriteFile(key, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.Ledger.KeyFile = key
	var got []string
	for _, p := range c.validateLedger("f") {
		got = append(got, p.Setting)
	}
	want := "ledger.checkpoint_interval ledger.receipt_deadline ledger.receipt_first_after ledger.origin ledger.key_file ledger.witness_url"
	if strings.Join(got, " ") != want {
		t.Fatalf("problems for %v, want %s", got, want)
	}
	// A first report later than the deadline would never be sent.
	d := Default()
	d.DataDir, d.Hostname = "/var/lib/cafgate", "gw.example.org"
	d.resolveLedger("/etc/cafgate")
	d.Ledger.ReceiptDeadline, d.Ledger.ReceiptFirstAfter = Duration(time.Minute), Duration(time.Hour)
	if ps := d.validateLedger("f"); len(ps) != 1 || ps[0].Setting != "ledger.receipt_first_after" {
		t.Fatalf("first report after the deadline: %v", ps)
	}
	if d := Default(); d.Ledger.ReceiptDeadline.D() != time.Hour || d.Ledger.ReceiptFirstAfter.D() != 2*time.Minute {
		t.Fatalf("receipt defaults: %+v", d.Ledger)
	}
}
