package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cafgate/mailbox"
)

// queueTestConfig writes a configuration whose files exist and a store holding message m1 with two
// queued entries; it returns the configuration path and the entries' IDs.
func queueTestConfig(t *testing.T) (string, []string) {
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
	ctx := context.Background()
	st, err := mailbox.Open(ctx, mailbox.Options{Path: filepath.Join(dir, "data", "cafgate.db"), ContentKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	content := []byte("Subject: x\r\n\r\nbody\r\n")
	if err := st.Accept(ctx, &mailbox.Incoming{ID: "m1", Sender: "alice@agency.example", Recipients: []string{"bob@council.example"},
		Via: "submission", ReceivedAt: time.Now(), Digest: sha256.Sum256(content), Content: content}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, rcpt := range []string{"bob@council.example", "carol@council.example"} {
		got, err := st.Enqueue(ctx, &mailbox.Outbound{MessageID: "m1", From: "alice@agency.example", Recipient: rcpt,
			Content: []byte("Message-ID: <p." + rcpt + ">\r\nSubject: sealed\r\n\r\nSECRET-BODY\r\n")})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	return path, ids
}

// runQueue runs one of queueCommands the way run() does, before the lead adds them to the table.
func runQueue(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	for _, cmd := range queueCommands() {
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

func queueList(t *testing.T, conf string) map[string]queueJSON {
	t.Helper()
	out, err := runQueue(t, "queue list", "--config", conf, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var list []queueJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	m := map[string]queueJSON{}
	for _, e := range list {
		m[e.ID] = e
	}
	return m
}

func TestQueueCommands(t *testing.T) {
	conf, ids := queueTestConfig(t)
	if l := queueList(t, conf); len(l) != 2 || l[ids[0]].State != mailbox.QueueQueued || l[ids[0]].Recipient != "bob@council.example" {
		t.Fatalf("list = %+v", l)
	}
	if out, err := runQueue(t, "queue list", "--config", conf); err != nil || !strings.Contains(out, ids[1]) || strings.Contains(out, "SECRET") {
		t.Fatalf("table list: %v\n%s", err, out)
	}
	if _, err := runQueue(t, "queue hold", ids[0], "--config", conf); err != nil {
		t.Fatal(err)
	}
	if s := queueList(t, conf)[ids[0]].State; s != mailbox.QueueHeld {
		t.Fatalf("after hold: %s", s)
	}
	if _, err := runQueue(t, "queue retry", "--config", conf, ids[0]); err != nil {
		t.Fatal(err)
	}
	if s := queueList(t, conf)[ids[0]].State; s != mailbox.QueueQueued {
		t.Fatalf("after retry: %s", s)
	}
	if _, err := runQueue(t, "queue drop", ids[1], "--config", conf); !errors.Is(err, errUsage) {
		t.Fatalf("drop without a reason = %v", err)
	}
	out, err := runQueue(t, "queue drop", ids[1], "--reason", "recipient left the service", "--config", conf)
	if err != nil || !strings.Contains(out, "dropped") {
		t.Fatalf("drop: %v %s", err, out)
	}
	l := queueList(t, conf)
	if l[ids[1]].State != mailbox.QueueFailed || !strings.Contains(l[ids[1]].LastAnswer, "recipient left the service") {
		t.Fatalf("after drop: %+v", l[ids[1]])
	}
	var notice *queueJSON
	for _, e := range l {
		if e.Kind == mailbox.KindDSN {
			notice = &e
		}
	}
	if len(l) != 3 || notice == nil || notice.Recipient != "alice@agency.example" || notice.From != "" {
		t.Fatalf("no failure report queued to the sender: %+v", l)
	}
	if _, err := runQueue(t, "queue hold", ids[1], "--config", conf); err == nil || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("hold of a dropped entry = %v", err)
	}
	if _, err := runQueue(t, "queue retry", "QNOSUCH", "--config", conf); err == nil || !strings.Contains(err.Error(), "no queue entry") {
		t.Fatalf("retry of an unknown ID = %v", err)
	}
	if _, err := runQueue(t, "queue list", "--config", conf, "--state", "lost"); !errors.Is(err, errUsage) {
		t.Fatalf("bad --state = %v", err)
	}
}

// TestQueuePauseResume: pause needs a reason, is stored (the store says held, queue list says so),
// and resume lifts it once.
func TestQueuePauseResume(t *testing.T) {
	path, _ := queueTestConfig(t)
	held := func() bool {
		t.Helper()
		data := filepath.Join(filepath.Dir(path), "data")
		key, err := mailbox.LoadOrCreateKey(filepath.Join(data, "content.key"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := mailbox.Open(context.Background(), mailbox.Options{Path: filepath.Join(data, "cafgate.db"), ContentKey: key, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		h, err := st.Held(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if _, err := runQueue(t, "queue pause", "--config", path); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Fatalf("pause without a reason: %v", err)
	}
	if held() {
		t.Fatal("held after a refused pause")
	}
	if out, err := runQueue(t, "queue pause", "--config", path, "--reason", "smart host maintenance"); err != nil || !strings.Contains(out, "paused") {
		t.Fatalf("pause: %q %v", out, err)
	}
	if !held() {
		t.Fatal("not held after pause")
	}
	if out, err := runQueue(t, "queue list", "--config", path); err != nil || !strings.Contains(out, "delivery paused since") ||
		!strings.Contains(out, "smart host maintenance") {
		t.Fatalf("list while paused: %q %v", out, err)
	}
	if out, err := runQueue(t, "queue resume", "--config", path); err != nil || !strings.Contains(out, "delivery resumed") {
		t.Fatalf("resume: %q %v", out, err)
	}
	if held() {
		t.Fatal("still held after resume")
	}
	if out, err := runQueue(t, "queue list", "--config", path); err != nil || strings.Contains(out, "paused") {
		t.Fatalf("list after resume: %q %v", out, err)
	}
	if out, err := runQueue(t, "queue resume", "--config", path); err != nil || !strings.Contains(out, "was not paused") {
		t.Fatalf("second resume: %q %v", out, err)
	}
}

// TestQueueDropRecipeEntry: dropping a package copy queued by recipe (never stored, never built)
// reports it to the sender with a header block made of its envelope and Message-ID.
func TestQueueDropRecipeEntry(t *testing.T) {
	conf, _ := queueTestConfig(t)
	ctx := context.Background()
	dir := filepath.Dir(conf)
	key, err := mailbox.LoadOrCreateKey(filepath.Join(dir, "data", "content.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := mailbox.Open(ctx, mailbox.Options{Path: filepath.Join(dir, "data", "cafgate.db"), ContentKey: key})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := st.Enqueue(ctx, &mailbox.Outbound{MessageID: "m1", From: "alice@agency.example", Recipient: "dave@council.example",
		Recipe: []byte(`{"v":1}`), HeaderMessageID: "<m1.abc@gw.example>", Size: 100})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runQueue(t, "queue drop", ids[0], "--reason", "recipient left the service", "--config", conf); err != nil {
		t.Fatal(err)
	}
	st, err = mailbox.Open(ctx, mailbox.Options{Path: filepath.Join(dir, "data", "cafgate.db"), ContentKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var dsnID string
	for id, e := range queueList(t, conf) {
		if e.Kind == mailbox.KindDSN {
			dsnID = id
		}
	}
	if dsnID == "" {
		t.Fatal("no failure report queued")
	}
	c, err := st.QueueContent(ctx, dsnID)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Message-ID: <m1.abc@gw.example>", "To: <dave@council.example>", "recipient left the service"} {
		if !strings.Contains(string(c), want) {
			t.Errorf("the report lacks %q:\n%s", want, c)
		}
	}
}
