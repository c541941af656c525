package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// TestRestartAndServe: a second `cafgate dev` over the same directory keeps the accounts, passwords and
// stored messages; `cafgate serve --config DIR/cafgate.toml` runs the same gateway; SIGTERM stops each
// cleanly.
func TestRestartAndServe(t *testing.T) {
	t.Parallel()
	g := startGateway(t)
	first := g.Info()
	sender := first.accountWith(t, "active")
	rcpt := first.accountWith(t, "active", sender.Mail)
	var ids []string
	submit := func(info *devInfo, via string) {
		t.Helper()
		r := submitOnce(info, via, tlsConfig(t, info), sender, []string{rcpt.Mail}, newMessage(sender.Mail, rcpt.Mail, "restart "+randomToken(6), randomToken(20)))
		if r.Reply.AcceptedID() == "" {
			t.Fatalf("submission over %s: %v", via, r)
		}
		ids = append(ids, r.Reply.AcceptedID())
	}
	submit(first, "submission")
	g.stop()

	second := g.start()
	if len(second.Accounts) != len(first.Accounts) {
		t.Fatalf("second run has %d accounts, first had %d", len(second.Accounts), len(first.Accounts))
	}
	for i, a := range first.Accounts {
		b := second.Accounts[i]
		if a.Mail != b.Mail || a.Password != b.Password || a.TOTPSecret != b.TOTPSecret || a.Status != b.Status {
			t.Errorf("account %d changed between runs: %s/%s -> %s/%s", i, a.Mail, a.Status, b.Mail, b.Status)
		}
	}
	if second.CACert != first.CACert || second.PID == first.PID {
		t.Errorf("second run: ca %s pid %d; first: ca %s pid %d", second.CACert, second.PID, first.CACert, first.PID)
	}
	submit(second, "submissions")
	g.stop()

	served := runServe(t, second.Config)
	submit(served.devInfo, "submissions")
	served.stop(t)

	stored := map[string]bool{}
	for _, m := range g.messages() {
		stored[m.ID] = true
	}
	for _, id := range ids {
		if !stored[id] {
			t.Errorf("message %s is not stored after the restarts", id)
		}
	}
	g.requireVerifyClean(len(ids))
}

// servedGateway is a `cafgate serve` process.
type servedGateway struct {
	*devInfo
	cmd  *exec.Cmd
	done chan error
}

// runServe starts `cafgate serve --config path` and waits until its submission ports answer.
func runServe(t *testing.T, path string) *servedGateway {
	t.Helper()
	var conf struct {
		SMTP struct {
			Submission  string `toml:"submission"`
			Submissions string `toml:"submissions"`
		} `toml:"smtp"`
		Hostname string `toml:"hostname"`
	}
	if _, err := toml.DecodeFile(path, &conf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(path), "..", "serve-stderr.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(binPath, "serve", "--config", path)
	cmd.Stderr, cmd.Stdout = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &servedGateway{cmd: cmd, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	dir := filepath.Dir(path)
	s.devInfo = &devInfo{Dir: dir, Config: path, CACert: filepath.Join(dir, "ca", "ca.pem"), Hostname: conf.Hostname,
		Listen: map[string]string{"submission": conf.SMTP.Submission, "submissions": conf.SMTP.Submissions}}
	deadline := time.Now().Add(60 * time.Second)
	for _, addr := range []string{conf.SMTP.Submission, conf.SMTP.Submissions} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case err := <-s.done:
				t.Fatalf("cafgate serve exited: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("cafgate serve is not listening on %s", addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return s
}

func (s *servedGateway) stop(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("cafgate serve exited uncleanly after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("cafgate serve did not stop within 15 s of SIGTERM")
	}
}
