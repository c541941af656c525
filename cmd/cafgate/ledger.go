package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"cafgate/configs"
	"cafgate/mailbox"
	"cafgate/mailbox/ledger"
)

// ledgerCommands are the ledger's commands: verify, prove, check a proof, show events.
func ledgerCommands() []command {
	return []command{
		{name: "ledger verify", args: "[--config FILE | --db FILE] [--checkpoint FILE] [--pub KEY|FILE | --key FILE] [--json]",
			short: "recompute the ledger's hashes and tree and compare them with its signed checkpoints; names the first altered, inserted, removed or reordered event (works offline on a copy)",
			run:   runLedgerVerify, flags: ledgerFileFlags},
		{name: "ledger prove", args: "[--config FILE | --db FILE] [--pub KEY|FILE | --key FILE] EVENT-NUMBER|PACKAGE-ID",
			short: "print an inclusion proof of one event (a package's accepted event) against a signed checkpoint",
			run:   runLedgerProve, flags: ledgerFileFlags},
		{name: "ledger check-proof", args: "--pub KEY|FILE [PROOF-FILE]",
			short: "check a proof printed by cafgate ledger prove (from the file or standard input)",
			run:   runLedgerCheckProof, flags: ledgerCheckFlags},
		{name: "ledger rotate-key", args: "[--config FILE | --db FILE] [--key FILE] [--checkpoint FILE] --reason TEXT [--operator NAME]",
			short: "replace the checkpoint signing key: records the change in the ledger, signed by the old and the new key, and signs a checkpoint with the new key",
			run:   runLedgerRotateKey, flags: ledgerRotateFlags},
		{name: "ledger show", args: "--package ID | --practitioner MAIL | --since TIME [--type TYPE] --reason TEXT [--operator NAME] [--json]",
			short: "print ledger events; the access itself is recorded in the ledger with the operator and the reason",
			run:   runLedgerShow, flags: ledgerShowFlags},
	}
}

func ledgerFileFlags(fs *flag.FlagSet) {
	fs.String("config", "", "configuration file (default /etc/cafgate/cafgate.toml when --db is not given)")
	fs.String("db", "", "database file, e.g. a copy taken off the machine (default: the configured store.database)")
	fs.String("checkpoint", "", "checkpoint file (default: ledger.checkpoint_file, or checkpoints beside --db)")
	fs.String("pub", "", "ledger public key (NAME+HASH+BASE64) or a file holding one or more, any key of the log's key chain (default: the key file's .pub)")
	fs.String("key", "", "the ledger's private key file, to take the public key from")
	fs.Bool("json", false, "print JSON")
}

func ledgerRotateFlags(fs *flag.FlagSet) {
	fs.String("config", "", "configuration file (default /etc/cafgate/cafgate.toml when --db is not given)")
	fs.String("db", "", "database file (default: the configured store.database)")
	fs.String("key", "", "the ledger's private key file (default: ledger.key_file, or ledger.key beside --db)")
	fs.String("checkpoint", "", "checkpoint file (default: ledger.checkpoint_file, or checkpoints beside --db)")
	fs.String("reason", "", "why the key is rotated (required; recorded in the ledger)")
	fs.String("operator", "", "who you are (default: the user running the command, the one behind sudo if any; recorded in the ledger)")
	fs.Bool("json", false, "print JSON")
}

func ledgerCheckFlags(fs *flag.FlagSet) {
	fs.String("pub", "", "ledger public key (NAME+HASH+BASE64) or a file holding it")
}

func ledgerShowFlags(fs *flag.FlagSet) {
	ledgerFileFlags(fs)
	fs.String("package", "", "events about this package (message ID)")
	fs.String("practitioner", "", "events that name this practitioner's mail address")
	fs.String("since", "", "events at or after this time: 2025-06-01, 2025-06-01T12:00:00Z, or an age such as 24h or 7d")
	fs.String("type", "", "events of this type only")
	fs.String("reason", "", "why you are looking (required; recorded in the ledger)")
	fs.String("operator", "", "who you are (default: the user running the command, the one behind sudo if any; recorded in the ledger)")
	fs.Int("limit", 10000, "most events to print")
}

// ledgerFiles are the files a ledger command works on.
type ledgerFiles struct {
	db, checkpoint string
	keys           []string // trusted public keys (any of the log's key chain)
	keySource      string   // where the public key came from, for the report
	keyFile        string   // the private key file (configured or beside the database)
	origin         string   // ledger.origin from the configuration, if any
}

// verifier returns the verifier of the newest trusted key given, or nil.
func (f *ledgerFiles) verifier() note.Verifier {
	if len(f.keys) == 0 {
		return nil
	}
	v, _ := note.NewVerifier(f.keys[len(f.keys)-1])
	return v
}

// ledgerLocate resolves the database, checkpoint file and public key from the flags and, when needed,
// the configuration. Files beside a --db copy are used when present (an auditor's copy of the data
// directory).
func ledgerLocate(fs *flag.FlagSet) (*ledgerFiles, error) {
	f := &ledgerFiles{db: flagString(fs, "db"), checkpoint: flagString(fs, "checkpoint")}
	keyFile := ""
	if cfgPath := flagString(fs, "config"); cfgPath != "" || f.db == "" {
		if cfgPath == "" {
			cfgPath = "/etc/cafgate/cafgate.toml"
		}
		cfg, err := configs.Load(cfgPath)
		if err != nil {
			return nil, err
		}
		if f.db == "" {
			f.db = cfg.Store.Database
		}
		if f.checkpoint == "" {
			f.checkpoint = cfg.Ledger.CheckpointFile
		}
		keyFile = cfg.Ledger.KeyFile
		f.origin = cfg.Ledger.Origin
	}
	beside := func(name string) string { return filepath.Join(filepath.Dir(f.db), name) }
	if f.checkpoint == "" {
		f.checkpoint = beside("checkpoints")
	}
	if keyFile == "" {
		keyFile = beside("ledger.key")
	}
	f.keyFile = keyFile
	if fs.Lookup("pub") == nil { // rotate-key: --key is the private key to rotate
		if key := flagString(fs, "key"); key != "" {
			f.keyFile = key
		}
		return f, nil
	}
	var err error
	switch pub, key := flagString(fs, "pub"), flagString(fs, "key"); {
	case pub != "":
		f.keys, err = ledger.LoadKeys(pub)
		f.keySource = pub
	case key != "":
		f.keys, err = ledger.LoadKeys(key)
		f.keySource = key
	default:
		if _, serr := os.Stat(keyFile + ".pub"); serr == nil {
			f.keys, err = ledger.LoadKeys(keyFile + ".pub")
			f.keySource = keyFile + ".pub"
		}
	}
	return f, err
}

func runLedgerVerify(c *cli, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: ledger verify takes no arguments", errUsage)
	}
	f, err := ledgerLocate(fs)
	if err != nil {
		return err
	}
	db, err := mailbox.OpenLedgerReader(f.db)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	rep, err := ledger.VerifyDatabaseKeys(context.Background(), db, f.keys, f.checkpoint)
	if err != nil {
		return err
	}
	took := time.Since(start)
	if flagBool(fs, "json") {
		ledgerVerifyJSON(c, f, rep, took)
	} else {
		ledgerVerifyText(c, f, rep, took)
	}
	if !rep.OK() {
		first := rep.Findings[0]
		return fmt.Errorf("the ledger does not verify: %s", first.String())
	}
	return nil
}

func ledgerVerifyText(c *cli, f *ledgerFiles, rep *ledger.Report, took time.Duration) {
	fmt.Fprintf(c.out, "ledger %s: %d events (%.1f MB) read in %v\n", f.db, rep.Events, float64(rep.Bytes)/1e6, took.Round(time.Millisecond))
	if v := f.verifier(); v != nil {
		fmt.Fprintf(c.out, "public key %s (%s), checkpoint file %s\n", v.Name(), f.keySource, f.checkpoint)
	}
	if len(rep.Keys) > 1 {
		fmt.Fprintf(c.out, "key chain (%d keys, followed through the key rotation events):\n", len(rep.Keys))
		for _, k := range rep.Keys {
			mark := ""
			if k.Anchored {
				mark = "  [given]"
			}
			fmt.Fprintf(c.out, "  %s signs %s%s\n", k.VKey, k.Span(), mark)
		}
	}
	for _, w := range rep.Warnings {
		fmt.Fprintln(c.out, "WARNING:", w)
	}
	if rep.OK() {
		fmt.Fprintf(c.out, "root %s\n", rep.Root)
		if n := len(rep.Checkpoints); n > 0 {
			last := rep.Checkpoints[n-1]
			fmt.Fprintf(c.out, "%d signed checkpoints match, the newest covering %d events (%s)\n", n, last.Size, last.Source)
		}
		fmt.Fprintln(c.out, "OK: every event, hash and checkpoint matches")
		return
	}
	for i, fd := range rep.Findings {
		label := "ALSO"
		if i == 0 {
			label = "FIRST PROBLEM"
		}
		fmt.Fprintf(c.out, "%s: %s\n", label, fd.String())
	}
}

func ledgerVerifyJSON(c *cli, f *ledgerFiles, rep *ledger.Report, took time.Duration) {
	type cpJSON struct {
		Source string `json:"source"`
		Size   uint64 `json:"size"`
	}
	type keyJSON struct {
		Key   string `json:"key"`
		From  uint64 `json:"from"`
		Until uint64 `json:"until,omitempty"`
		Given bool   `json:"given"`
	}
	type findingJSON struct {
		Kind   string `json:"kind"`
		Event  uint64 `json:"event"`
		Last   uint64 `json:"last"`
		Detail string `json:"detail"`
	}
	out := struct {
		OK          bool          `json:"ok"`
		Database    string        `json:"database"`
		Events      uint64        `json:"events"`
		Bytes       int64         `json:"bytes"`
		Seconds     float64       `json:"seconds"`
		Root        string        `json:"root,omitempty"`
		Checkpoints []cpJSON      `json:"checkpoints"`
		Keys        []keyJSON     `json:"keys"`
		Findings    []findingJSON `json:"findings"`
		Warnings    []string      `json:"warnings"`
	}{OK: rep.OK(), Database: f.db, Events: rep.Events, Bytes: rep.Bytes, Seconds: took.Seconds(),
		Checkpoints: []cpJSON{}, Findings: []findingJSON{}, Keys: []keyJSON{}, Warnings: append([]string{}, rep.Warnings...)}
	if rep.OK() {
		out.Root = rep.Root.String()
	}
	for _, cp := range rep.Checkpoints {
		out.Checkpoints = append(out.Checkpoints, cpJSON{cp.Source, cp.Size})
	}
	for _, fd := range rep.Findings {
		out.Findings = append(out.Findings, findingJSON{fd.Kind, fd.Event, fd.Last, fd.Detail})
	}
	for _, k := range rep.Keys {
		until := k.Until
		if until == math.MaxUint64 {
			until = 0
		}
		out.Keys = append(out.Keys, keyJSON{k.VKey, k.From, until, k.Anchored})
	}
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

func runLedgerProve(c *cli, fs *flag.FlagSet, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: ledger prove takes one event number or package ID", errUsage)
	}
	f, err := ledgerLocate(fs)
	if err != nil {
		return err
	}
	if len(f.keys) == 0 {
		fmt.Fprintln(c.err, "WARNING: no public key found: the proof is printed without checking it")
	}
	db, err := mailbox.OpenLedgerReader(f.db)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	n, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil { // a package ID: prove its accepted event
		var seq int64
		err := tx.QueryRowContext(ctx, `SELECT seq FROM ledger_events WHERE message_id = ? AND type = ? ORDER BY seq LIMIT 1`,
			args[0], ledger.Accepted).Scan(&seq)
		if err != nil {
			return fmt.Errorf("no accepted event for package %q: %w", args[0], err)
		}
		n = uint64(seq)
	}
	var v note.Verifier
	if len(f.keys) > 0 { // the proof's checkpoint is the newest: signed by the current key of the chain
		chain, err := ledger.LoadKeyChain(ctx, tx, f.keys...)
		if err != nil {
			return err
		}
		v = chain[len(chain)-1].Verifier
	}
	p, err := ledger.Prove(ctx, tx, n, v)
	if err != nil {
		return err
	}
	text, _ := p.MarshalText()
	_, err = c.out.Write(text)
	return err
}

func runLedgerCheckProof(c *cli, fs *flag.FlagSet, args []string) error {
	if flagString(fs, "pub") == "" || len(args) > 1 {
		return fmt.Errorf("%w: ledger check-proof needs --pub and at most one file", errUsage)
	}
	v, err := ledger.LoadVerifier(flagString(fs, "pub"))
	if err != nil {
		return err
	}
	var text []byte
	if len(args) == 1 {
		text, err = os.ReadFile(args[0])
	} else {
		text, err = io.ReadAll(os.Stdin)
	}
	if err != nil {
		return err
	}
	var p ledger.Proof
	if err := p.UnmarshalText(text); err != nil {
		return err
	}
	if err := p.Verify(v); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "OK: event %d is in the ledger %s signed at %d events\n", p.Index, v.Name(), p.Size)
	return nil
}

func runLedgerShow(c *cli, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: ledger show takes flags only", errUsage)
	}
	filter, err := ledgerFilter(fs)
	if err != nil {
		return err
	}
	reason := strings.TrimSpace(flagString(fs, "reason"))
	who := strings.TrimSpace(flagString(fs, "operator"))
	if who == "" {
		who = operator()
	}
	if reason == "" {
		return fmt.Errorf("%w: say why you are looking (--reason): the access is recorded with who you are", errUsage)
	}
	f, err := ledgerLocate(fs)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	ctx := context.Background()
	access := ledger.AccessData{Operator: who, Reason: reason, Query: filter.Describe(), Tool: "cli", Host: host}
	n, err := mailbox.AppendLedgerEvent(ctx, f.db, ledger.Access, filter.Package, access, time.Now())
	if err != nil {
		return fmt.Errorf("cannot record this access in the ledger, so nothing is shown: %w", err)
	}
	db, err := mailbox.OpenLedgerReader(f.db)
	if err != nil {
		return err
	}
	defer db.Close()
	found, err := ledger.Find(ctx, db, filter)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.err, "access recorded as ledger event %d\n", n)
	if flagBool(fs, "json") {
		return ledgerShowJSON(c, found)
	}
	for _, fd := range found {
		line := ledger.Text(fd.Event)
		if !fd.Intact {
			line += "   [DOES NOT MATCH ITS HASH: run cafgate ledger verify]"
		}
		fmt.Fprintln(c.out, line)
	}
	return nil
}

func ledgerShowJSON(c *cli, found []ledger.Found) error {
	type shown struct {
		Event  json.RawMessage `json:"event"`
		Intact bool            `json:"intact"`
	}
	out := make([]shown, 0, len(found))
	for _, fd := range found {
		raw := json.RawMessage(fd.Data)
		if !json.Valid(raw) {
			raw, _ = json.Marshal(string(fd.Data))
		}
		out = append(out, shown{raw, fd.Intact})
	}
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// ledgerFilter reads the selection flags.
func ledgerFilter(fs *flag.FlagSet) (ledger.Filter, error) {
	f := ledger.Filter{Package: flagString(fs, "package"), Practitioner: flagString(fs, "practitioner"), Type: flagString(fs, "type")}
	fmt.Sscan(flagString(fs, "limit"), &f.Limit)
	if s := flagString(fs, "since"); s != "" {
		t, err := ledgerParseSince(s, time.Now())
		if err != nil {
			return f, fmt.Errorf("%w: --since: %w", errUsage, err)
		}
		f.Since = t
	}
	if f.Type != "" && !ledger.KnownType(f.Type) {
		return f, fmt.Errorf("%w: --type %q is not a ledger event type (%s)", errUsage, f.Type, strings.Join(ledger.Types(), ", "))
	}
	if f.Package == "" && f.Practitioner == "" && f.Since.IsZero() {
		return f, fmt.Errorf("%w: say which events: --package, --practitioner or --since", errUsage)
	}
	return f, nil
}

// ledgerParseSince reads a date, an RFC 3339 time, or an age (24h, 90m, 7d).
func ledgerParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, errors.New("write a date (2025-06-01), a time (2025-06-01T12:00:00Z) or an age (24h, 7d)")
}

func runLedgerRotateKey(c *cli, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: ledger rotate-key takes flags only", errUsage)
	}
	reason := strings.TrimSpace(flagString(fs, "reason"))
	who := strings.TrimSpace(flagString(fs, "operator"))
	if who == "" {
		who = operator()
	}
	if reason == "" {
		return fmt.Errorf("%w: say why the key is rotated (--reason): it is recorded in the ledger with who you are", errUsage)
	}
	f, err := ledgerLocate(fs)
	if err != nil {
		return err
	}
	r, err := mailbox.RotateLedgerKey(context.Background(), f.db,
		mailbox.LedgerOptions{KeyFile: f.keyFile, CheckpointFile: f.checkpoint, Origin: f.origin}, who, reason, time.Now())
	if err != nil {
		return err
	}
	if flagBool(fs, "json") {
		enc := json.NewEncoder(c.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"event": r.Event, "old": r.Old, "new": r.New, "checkpoint_size": r.Checkpoint.Size,
			"key_file": r.KeyFile, "public_key_file": r.PubFile}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.out, "ledger key rotated at event %d\nold key (retired, signs trees of up to %d events): %s\nnew key: %s\n",
			r.Event, r.Event, r.Old, r.New)
		fmt.Fprintf(c.out, "first checkpoint under the new key covers %d events\nnew private key in %s, its public key in %s\n",
			r.Checkpoint.Size, r.KeyFile, r.PubFile)
		fmt.Fprintln(c.out, "give the new public key to auditors and to the witness; the old one keeps verifying the checkpoints it signed")
	}
	if r.FileErr != nil {
		fmt.Fprintf(c.err, "WARNING: the new checkpoint could not be appended to %s: %v (the gateway's next checkpoint repairs it)\n", f.checkpoint, r.FileErr)
	}
	return nil
}
