package configs

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// LedgerConfig is the tamper-evident ledger: the key its checkpoints are signed with, where they are
// kept outside the database, how often, and an optional witness.
type LedgerConfig struct {
	KeyFile            string   `toml:"key_file" default:"" doc:"Ed25519 key the ledger's checkpoints are signed with (signed-note format), created with mode 0600 on first start; its public key is written beside it as key_file.pub for verifying off the machine. Empty means data_dir/ledger.key."`
	CheckpointFile     string   `toml:"checkpoint_file" default:"" doc:"File every signed checkpoint is appended to, besides the database. Copy it off the machine (or set witness_url): it is what shows a ledger that was truncated and rebuilt. Empty means data_dir/checkpoints."`
	CheckpointInterval Duration `toml:"checkpoint_interval" default:"1m" doc:"How often the ledger's tree head is signed when it has grown (and always at shutdown)."`
	Origin             string   `toml:"origin" default:"" doc:"Name of the log, written in every checkpoint; used only when the key is created (an existing key keeps its name). Empty means cafgate.<hostname>/ledger."`
	ReceiptDeadline    Duration `toml:"receipt_deadline" default:"1h" doc:"Longest a sender waits for the delivery report of a package: it is sent once every recipient has an outcome, or at this delay with the outcomes so far (the rest 'still being tried')."`
	ReceiptFirstAfter  Duration `toml:"receipt_first_after" default:"2m" doc:"When some recipients of a package were refused or had sections withheld and its full report is not out this long after acceptance, a first report tells the sender of them now. Must not exceed receipt_deadline."`
	WitnessURL         string   `toml:"witness_url" default:"" doc:"http(s) URL every new checkpoint is POSTed to (the signed note, text/plain). Failures are logged and retried at the next interval. Empty sends none."`
}

// resolveLedger fills the ledger's derived settings and makes its paths absolute against dir. The lead
// calls it from Config.resolve, after data_dir is resolved.
func (c *Config) resolveLedger(dir string) {
	l := &c.Ledger
	if l.KeyFile == "" {
		l.KeyFile = filepath.Join(c.DataDir, "ledger.key")
	}
	if l.CheckpointFile == "" {
		l.CheckpointFile = filepath.Join(c.DataDir, "checkpoints")
	}
	if l.Origin == "" {
		l.Origin = "cafgate." + c.Hostname + "/ledger"
	}
	for _, p := range []*string{&l.KeyFile, &l.CheckpointFile} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// validateLedger checks the ledger settings. The lead calls it from Config.validate.
func (c *Config) validateLedger(file string) Problems {
	var ps Problems
	bad := func(setting, format string, args ...any) {
		ps = append(ps, Problem{File: file, Setting: "ledger." + setting, Message: fmt.Sprintf(format, args...)})
	}
	l := c.Ledger
	if l.CheckpointInterval <= 0 {
		bad("checkpoint_interval", "must be greater than zero (checkpoints are what make the ledger tamper-evident)")
	}
	if l.ReceiptDeadline <= 0 {
		bad("receipt_deadline", "must be greater than zero (a sender is owed a report)")
	}
	if l.ReceiptFirstAfter <= 0 || l.ReceiptFirstAfter > l.ReceiptDeadline {
		bad("receipt_first_after", "must be greater than zero and at most receipt_deadline (%s), not %s", l.ReceiptDeadline.D(), l.ReceiptFirstAfter.D())
	}
	if l.Origin == "" || strings.ContainsAny(l.Origin, " \t\r\n+") {
		bad("origin", "must be a name without spaces or '+', such as cafgate.gw.example.org/ledger, not %q", l.Origin)
	}
	if _, err := os.Stat(l.KeyFile); err == nil { // created on first start when missing
		checkKey(bad, "key_file", l.KeyFile, false)
	}
	if l.WitnessURL != "" {
		u, err := url.Parse(l.WitnessURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("witness_url", "must be an http or https URL, not %q", l.WitnessURL)
		}
	}
	return ps
}
