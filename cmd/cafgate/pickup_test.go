package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cafgate/configs"
	"cafgate/mailbox"
)

// pickupTestConfig writes a configuration with the sample directory and a store holding message m1
// for harriet with one active link; it returns the configuration path and the link.
func pickupTestConfig(t *testing.T) (string, *mailbox.Link) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string][]byte{"tls.pem": []byte("x"), "tls.key": []byte("x"), "dir.ldif": configs.SampleDirectory} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf := "hostname = \"gw.example\"\ndata_dir = \"data\"\n[tls]\ncert_file = \"tls.pem\"\nkey_file = \"tls.key\"\n" +
		"[[directory]]\nname = \"d\"\ndomains = [\"school.cafgate.test\", \"police.cafgate.test\", \"health.cafgate.test\", \"socialcare.cafgate.test\"]\nfile = \"dir.ldif\"\n"
	path := filepath.Join(dir, "cafgate.toml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "data"), 0o700)
	key, err := mailbox.LoadOrCreateKey(filepath.Join(dir, "data", "content.key"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := mailbox.Open(ctx, mailbox.Options{Path: filepath.Join(dir, "data", "cafgate.db"), ContentKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rcpt := "harriet.example@school.cafgate.test"
	content := []byte("Subject: x\r\n\r\nbody\r\n")
	if err := st.Accept(ctx, &mailbox.Incoming{ID: "m1", Sender: "priya.placeholder@health.cafgate.test", Agency: "Health",
		Recipients: []string{rcpt}, Via: "submission", ReceivedAt: time.Now(), Digest: sha256.Sum256(content), Content: content}); err != nil {
		t.Fatal(err)
	}
	l, err := st.Notify(ctx, mailbox.LinkRequest{MessageID: "m1", Recipient: rcpt}, func(il *mailbox.IssuedLink) (*mailbox.Outbound, error) {
		return &mailbox.Outbound{From: "no-reply@gw.example", Recipient: rcpt, Content: []byte("Message-ID: <" + il.ID + "@gw>\r\n\r\nx\r\n")}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return path, l
}

// runPickupCLI runs one of pickupCommands as run() would.
func runPickupCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	for _, cmd := range pickupCommands() {
		words := strings.Fields(cmd.name)
		if len(args) < len(words) || strings.Join(args[:len(words)], " ") != cmd.name {
			continue
		}
		fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
		fs.SetOutput(&errOut)
		if cmd.flags != nil {
			cmd.flags(fs)
		}
		if err := fs.Parse(args[len(words):]); err != nil {
			return "", err
		}
		err := cmd.run(&cli{out: &out, err: &errOut}, fs, fs.Args())
		return out.String(), err
	}
	t.Fatalf("no command %q", args)
	return "", nil
}

func TestTOTPEnrolPrintsACodeOnlyForKnownPractitioners(t *testing.T) {
	conf, _ := pickupTestConfig(t)
	out, err := runPickupCLI(t, "totp", "enrol", "--config", conf, "Harriet.Example@school.cafgate.test")
	if err != nil {
		t.Fatal(err)
	}
	code := regexp.MustCompile(`[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}`).FindString(out)
	if code == "" || !strings.Contains(out, "Northfield Primary School") || !strings.Contains(out, "https://gw.example/pickup/enrol") {
		t.Fatalf("output:\n%s", out)
	}
	out, err = runPickupCLI(t, "totp", "status", "--config", conf, "--json", "harriet.example@school.cafgate.test")
	var st map[string]any
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st["enrolment_open"] != true || st["enrolled"] != false {
		t.Fatalf("status %s %v", out, err)
	}
	for _, who := range []string{"nobody@school.cafgate.test", "tom.pretend@police.cafgate.test"} {
		if _, err := runPickupCLI(t, "totp", "enrol", "--config", conf, who); err == nil {
			t.Errorf("code issued for %s", who)
		}
	}
	if _, err := runPickupCLI(t, "totp", "enrol", "--config", conf, "not-an-address"); err == nil {
		t.Error("code issued for a malformed address")
	}
}

func TestLinkListRevokeUnlock(t *testing.T) {
	conf, l := pickupTestConfig(t)
	out, err := runPickupCLI(t, "link", "list", "--config", conf, "--json")
	var list []linkJSON
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].ID != l.ID || list[0].State != "active" {
		t.Fatalf("list: %s %v", out, err)
	}
	if _, err := runPickupCLI(t, "link", "revoke", l.ID, "--config", conf); err == nil {
		t.Fatal("revoked without a reason")
	}
	if _, err := runPickupCLI(t, "link", "revoke", "--config", conf, "nonsense", "--reason", "x"); err == nil {
		t.Fatal("revoked a malformed ID")
	}
	if _, err := runPickupCLI(t, "link", "unlock", l.ID, "--config", conf); err != nil {
		t.Fatal(err)
	}
	out, err = runPickupCLI(t, "link", "revoke", l.ID, "--reason", "sent to the wrong school", "--config", conf, "--by", "admin:test")
	if err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %s %v", out, err)
	}
	if _, err := runPickupCLI(t, "link", "revoke", l.ID, "--reason", "again", "--config", conf); err == nil || !strings.Contains(err.Error(), "already revoked") {
		t.Fatalf("second revoke: %v", err)
	}
	out, _ = runPickupCLI(t, "link", "list", "--config", conf, "--state", "revoked")
	if !strings.Contains(out, l.ID) || !strings.Contains(out, "revoked") {
		t.Fatalf("list after revoke:\n%s", out)
	}
	if _, err := runPickupCLI(t, "totp", "unlock", "harriet.example@school.cafgate.test", "--config", conf); err != nil {
		t.Fatal(err)
	}
}
