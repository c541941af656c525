package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cafgate/mailbox"
	"cafgate/mailbox/ledger"
)

// clientTestConfig writes a configuration whose files exist and an empty store.
func clientTestConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"tls.pem": 0o644, "tls.key": 0o600, "dir.ldif": 0o644} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
	}
	conf := "hostname = \"gw.example\"\ndata_dir = \"data\"\n[tls]\ncert_file = \"tls.pem\"\nkey_file = \"tls.key\"\n" +
		"[[directory]]\nname = \"d\"\ndomains = [\"agency.example\"]\nfile = \"dir.ldif\"\n"
	path := filepath.Join(dir, "cafgate.toml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := mailbox.LoadOrCreateKey(filepath.Join(dir, "data", "content.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := mailbox.Open(context.Background(), mailbox.Options{Path: filepath.Join(dir, "data", "cafgate.db"), ContentKey: key})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	return path
}

// runClient runs one of clientCommands the way run() does, before the lead adds them to the table.
func runClient(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	for _, cmd := range clientCommands() {
		if cmd.name != name {
			continue
		}
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(&bytes.Buffer{})
		cmd.flags(fs)
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		var out bytes.Buffer
		err := cmd.run(&cli{out: &out, err: &out}, fs, fs.Args())
		return out.String(), err
	}
	t.Fatalf("no command %q", name)
	return "", nil
}

func TestClientCommands(t *testing.T) {
	t.Setenv("SUDO_USER", "") // the first add is recorded as the user running the test
	conf := clientTestConfig(t)
	out, err := runClient(t, "client add", "--config", conf, "--agency", "Riverside Community Health", "--name", "CaseBook", "--json")
	var added struct {
		ID     string `json:"id"`
		Agency string `json:"agency"`
		APIKey string `json:"api_key"`
	}
	if err != nil || json.Unmarshal([]byte(out), &added) != nil || !strings.HasPrefix(added.APIKey, mailbox.APIKeyPrefix) || added.Agency != "Riverside Community Health" {
		t.Fatalf("client add: %v\n%s", err, out)
	}
	t.Setenv("SUDO_USER", "alice") // the operator behind sudo is the one recorded
	out, err = runClient(t, "client add", "--config", conf, "--agency", "Eastshire Police", "--name", "Niche",
		"--cert-fingerprint", strings.Repeat("AB:", 31)+"AB")
	if err != nil || !strings.Contains(out, strings.Repeat("ab", 32)) || strings.Contains(out, mailbox.APIKeyPrefix) {
		t.Fatalf("client add with a certificate: %v\n%s", err, out)
	}
	if _, err := runClient(t, "client add", "--config", conf, "--agency", "x"); !errors.Is(err, errUsage) {
		t.Errorf("add without --name: %v", err)
	}
	if _, err := runClient(t, "client add", "--config", conf, "--agency", "x", "--name", "y", "--cert-fingerprint", "zz"); !errors.Is(err, mailbox.ErrInvalid) {
		t.Errorf("bad fingerprint: %v", err)
	}
	// A revocation needs a reason.
	if _, err := runClient(t, "client revoke", added.ID, "--config", conf, "--by", "admin:test"); !errors.Is(err, errUsage) {
		t.Errorf("revoke without --reason: %v", err)
	}
	out, err = runClient(t, "client revoke", added.ID, "--config", conf, "--by", "admin:test", "--reason", "CaseBook replaced by CaseBook 2")
	if err != nil || !strings.Contains(out, "revoked") || !strings.Contains(out, "admin:test") {
		t.Fatalf("client revoke: %v\n%s", err, out)
	}
	if _, err := runClient(t, "client revoke", "NOSUCHCLIENT0000", "--config", conf, "--reason", "x"); !errors.Is(err, mailbox.ErrClientNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
	if _, err := runClient(t, "client revoke", "--config", conf); err == nil {
		t.Error("revoke without an ID")
	}
	out, err = runClient(t, "client list", "--config", conf)
	if err != nil || !strings.Contains(out, added.ID) || !strings.Contains(out, "admin:test") || !strings.Contains(out, "certificate") ||
		strings.Contains(out, added.APIKey) || strings.Contains(out, added.APIKey[len(added.APIKey)-52:]) {
		t.Fatalf("client list: %v\n%s", err, out)
	}
	out, err = runClient(t, "client list", "--config", conf, "--json")
	var list []mailbox.APIClient
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || !list[0].Revoked() {
		t.Fatalf("client list --json: %v\n%s", err, out)
	}
	// Each add and the revocation are ledger events with who, which client, which agency and why; the
	// ledger still verifies.
	db := filepath.Join(filepath.Dir(conf), "data", "cafgate.db")
	out, _, err = runLedgerCmd(t, "ledger verify", "--db", db)
	if err != nil || !strings.Contains(out, "3 events") || !strings.Contains(out, "OK:") {
		t.Fatalf("ledger verify: %v\n%s", err, out)
	}
	events := ledgerEvents(t, db)
	want := []string{
		"client-added client=" + added.ID + " agency=Riverside Community Health credential=api-key by=" + operatorWithout(t) + " reason=",
		"client-added client=" + list[1].ID + " agency=Eastshire Police credential=certificate by=cli:alice (sudo) reason=",
		"client-revoked client=" + added.ID + " agency=Riverside Community Health credential=api-key by=admin:test reason=CaseBook replaced by CaseBook 2",
	}
	if strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Errorf("ledger events:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range events {
		if strings.Contains(e, added.APIKey[len(added.APIKey)-52:]) {
			t.Errorf("the ledger holds the key: %s", e)
		}
	}
}

// operatorWithout is the operator recorded when SUDO_USER is not set (the first add ran before it was).
func operatorWithout(t *testing.T) string {
	t.Helper()
	return defaultActor()
}

// ledgerEvents reads the store's ledger events as "type client=… agency=… credential=… by=… reason=…".
func ledgerEvents(t *testing.T, db string) []string {
	t.Helper()
	r, err := mailbox.OpenLedgerReader(db)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	found, err := ledger.Find(context.Background(), r, ledger.Filter{Since: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range found {
		e := f.Event
		var d struct{ Client, Agency, Credential, By, Reason string }
		if err := json.Unmarshal(e.Data, &d); err != nil || !f.Intact {
			t.Fatalf("event %d: %v, intact %t", e.N, err, f.Intact)
		}
		out = append(out, fmt.Sprintf("%s client=%s agency=%s credential=%s by=%s reason=%s", e.Type, d.Client, d.Agency, d.Credential, d.By, d.Reason))
	}
	return out
}
