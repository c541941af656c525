package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The ledger through the built binary: messages submitted over SMTP each get exactly one accepted
// event; `cafgate ledger verify` passes on the untouched database and names every kind of tampering
// done with the sqlite3 command line on a copy; `ledger prove` gives a proof `ledger check-proof`
// accepts; and after kill -9 under load the ledger still verifies and matches the store.

// ledgerCLI runs the binary with args as given (flags before arguments) and returns stdout, stderr and
// the exit code.
func ledgerCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	}
	t.Fatalf("cafgate %v: %v", args, err)
	return "", "", 0
}

// ledgerVerifyJSON is `cafgate ledger verify --json`.
type ledgerVerifyJSON struct {
	OK       bool   `json:"ok"`
	Events   uint64 `json:"events"`
	Findings []struct {
		Kind   string `json:"kind"`
		Event  uint64 `json:"event"`
		Last   uint64 `json:"last"`
		Detail string `json:"detail"`
	} `json:"findings"`
	Checkpoints []struct {
		Size uint64 `json:"size"`
	} `json:"checkpoints"`
	Warnings []string `json:"warnings"`
}

func ledgerVerify(t *testing.T, args ...string) (ledgerVerifyJSON, int) {
	t.Helper()
	out, errs, code := ledgerCLI(t, append([]string{"ledger", "verify", "--json"}, args...)...)
	var v ledgerVerifyJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("ledger verify --json (exit %d): %v\n%s\n%s", code, err, out, errs)
	}
	return v, code
}

// submitN sends n messages from one account to another and returns the accepted IDs.
func submitN(t *testing.T, g *gateway, n int) []string {
	t.Helper()
	info := g.Info()
	from := info.accountWith(t, "active")
	to := info.accountWith(t, "active", from.Mail)
	conf := tlsConfig(t, info)
	s, res := openSession(info, "submissions", conf, from, 30*time.Second)
	if s == nil {
		t.Fatalf("sign-in: %v", res)
	}
	defer s.close()
	var ids []string
	for i := range n {
		r := s.send([]string{to.Mail}, newMessage(from.Mail, to.Mail, fmt.Sprint("ledger ", i), "body "+randomToken(8)))
		if r.Reply.AcceptedID() == "" {
			t.Fatalf("message %d: %v", i, r)
		}
		ids = append(ids, r.Reply.AcceptedID())
	}
	return ids
}

// acceptedEvents maps package ID to its number of accepted events, from `ledger show --json`.
func acceptedEvents(t *testing.T, g *gateway) map[string]int {
	t.Helper()
	out, errs, code := ledgerCLI(t, "ledger", "show", "--config", filepath.Join(g.dir, "cafgate.toml"), "--type", "accepted",
		"--since", "2000-01-01", "--operator", "it", "--reason", "integration test", "--json", "--limit", "100000000")
	if code != 0 {
		t.Fatalf("ledger show exited %d: %s", code, errs)
	}
	var shown []struct {
		Event struct {
			Package string `json:"package"`
		} `json:"event"`
		Intact bool `json:"intact"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("ledger show --json: %v in %s", err, truncate(out, 300))
	}
	byID := map[string]int{}
	for _, s := range shown {
		if !s.Intact {
			t.Errorf("event of %s shown as not intact", s.Event.Package)
		}
		byID[s.Event.Package]++
	}
	return byID
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
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
}

func TestLedgerEndToEnd(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Fatal("the sqlite3 command line is required (integration/ci.sh installs it)")
	}
	g := startGateway(t)
	ids := submitN(t, g, 12)
	g.stop() // Close signs the last checkpoint
	data := filepath.Join(g.dir, "data")
	db, cps, pub := filepath.Join(data, "cafgate.db"), filepath.Join(data, "checkpoints"), filepath.Join(data, "ledger.key.pub")

	v, code := ledgerVerify(t, "--config", filepath.Join(g.dir, "cafgate.toml"))
	if code != 0 || !v.OK || v.Events < uint64(len(ids)) || len(v.Checkpoints) == 0 || len(v.Warnings) != 0 {
		t.Fatalf("untouched ledger: exit %d %+v", code, v)
	}
	byID := acceptedEvents(t, g)
	for _, id := range ids {
		if byID[id] != 1 {
			t.Errorf("message %s has %d accepted events, want 1", id, byID[id])
		}
	}
	if len(byID) != len(ids) {
		t.Errorf("%d packages with accepted events, %d messages sent", len(byID), len(ids))
	}

	// Tamper with copies, as someone holding the database file would, and verify each copy offline.
	total := v.Events
	mid := total / 2
	drop := `DROP TRIGGER ledger_events_no_update; DROP TRIGGER ledger_events_no_delete;
		DROP TRIGGER ledger_checkpoints_no_delete; `
	for _, tc := range []struct {
		name, sql, kind string
		first, last     uint64
	}{
		{"change one byte", fmt.Sprintf(`UPDATE ledger_events SET event = replace(event, '"at":"2', '"at":"3') WHERE seq = %d`, mid),
			"altered", mid, mid},
		{"delete one", fmt.Sprintf(`DELETE FROM ledger_events WHERE seq = %d`, mid), "removed", mid, mid},
		{"insert one", fmt.Sprintf(`UPDATE ledger_events SET seq = seq + 1000000 WHERE seq >= %[1]d;
			UPDATE ledger_events SET seq = seq - 999999 WHERE seq >= 1000000;
			INSERT INTO ledger_events (seq, event, leaf, nodes) SELECT %[1]d, event, leaf, nodes FROM ledger_events WHERE seq = 0`, mid),
			"inserted", mid, mid},
		{"swap two", fmt.Sprintf(`UPDATE ledger_events SET seq = -1 WHERE seq = 1; UPDATE ledger_events SET seq = 1 WHERE seq = %[1]d;
			UPDATE ledger_events SET seq = %[1]d WHERE seq = -1`, mid), "reordered", 1, mid},
		{"truncate after the checkpoint", fmt.Sprintf(`DELETE FROM ledger_events WHERE seq >= %[1]d; DELETE FROM ledger_checkpoints WHERE size > %[1]d`, mid),
			"removed", mid, total - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := filepath.Join(t.TempDir(), "copy.db")
			copyFile(t, db, cp)
			if out, err := exec.Command("sqlite3", cp, drop+tc.sql).CombinedOutput(); err != nil {
				t.Fatalf("sqlite3: %v %s", err, out)
			}
			v, code := ledgerVerify(t, "--db", cp, "--checkpoint", cps, "--pub", pub)
			if code != 1 || v.OK || len(v.Findings) == 0 {
				t.Fatalf("tampered copy: exit %d %+v", code, v)
			}
			f := v.Findings[0]
			if f.Kind != tc.kind || f.Event != tc.first || f.Last != tc.last {
				t.Fatalf("first finding %s %d-%d (%s); want %s %d-%d", f.Kind, f.Event, f.Last, f.Detail, tc.kind, tc.first, tc.last)
			}
			// The text form names it too.
			out, _, _ := ledgerCLI(t, "ledger", "verify", "--db", cp, "--checkpoint", cps, "--pub", pub)
			if !strings.Contains(out, "FIRST PROBLEM: "+tc.kind) {
				t.Errorf("text output does not name it:\n%s", out)
			}
		})
	}

	// An inclusion proof for one message, checked by the CLI's verifier.
	proof, errs, code := ledgerCLI(t, "ledger", "prove", "--config", filepath.Join(g.dir, "cafgate.toml"), ids[3])
	if code != 0 || !strings.Contains(proof, `"package":"`+ids[3]+`"`) {
		t.Fatalf("ledger prove: exit %d %s\n%s", code, errs, proof)
	}
	pf := filepath.Join(t.TempDir(), "proof")
	if err := os.WriteFile(pf, []byte(proof), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := ledgerCLI(t, "ledger", "check-proof", "--pub", pub, pf); code != 0 || !strings.HasPrefix(out, "OK") {
		t.Fatalf("check-proof: exit %d %s %s", code, out, errs)
	}
}

func TestLedgerAfterKill(t *testing.T) {
	t.Parallel()
	g := startGateway(t)
	submitN(t, g, 3)
	info := g.Info()
	from := info.accountWith(t, "active")
	to := info.accountWith(t, "active", from.Mail)
	conf := tlsConfig(t, info)
	var acked atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for ctx.Err() == nil {
				s, _ := openSession(info, "submission", conf, from, 10*time.Second)
				if s == nil {
					return
				}
				for ctx.Err() == nil {
					r := s.send([]string{to.Mail}, newMessage(from.Mail, to.Mail, "load", randomToken(20)))
					if r.Reply.AcceptedID() == "" {
						break
					}
					acked.Add(1)
				}
				s.c.close()
			}
		})
	}
	time.Sleep(3 * time.Second)
	g.kill() // SIGKILL under load: no Close, no final checkpoint
	cancel()
	wg.Wait()
	g.start()
	submitN(t, g, 2)
	g.stop()
	v, code := ledgerVerify(t, "--config", filepath.Join(g.dir, "cafgate.toml"))
	if code != 0 || !v.OK {
		t.Fatalf("ledger after kill -9: exit %d %+v", code, v)
	}
	msgs := g.messages()
	byID := acceptedEvents(t, g)
	for _, m := range msgs {
		if byID[m.ID] != 1 {
			t.Errorf("message %s has %d accepted events, want 1", m.ID, byID[m.ID])
		}
	}
	if len(byID) != len(msgs) {
		t.Errorf("%d packages with accepted events, %d messages stored", len(byID), len(msgs))
	}
	t.Logf("acknowledged under load before the kill: %d; stored in all: %d; ledger events: %d", acked.Load(), len(msgs), v.Events)
}
