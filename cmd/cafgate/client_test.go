package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cafgate/mailbox"
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
	out, err = runClient(t, "client revoke", added.ID, "--config", conf, "--by", "admin:test")
	if err != nil || !strings.Contains(out, "revoked") || !strings.Contains(out, "admin:test") {
		t.Fatalf("client revoke: %v\n%s", err, out)
	}
	if _, err := runClient(t, "client revoke", "NOSUCHCLIENT0000", "--config", conf); !errors.Is(err, mailbox.ErrClientNotFound) {
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
}
