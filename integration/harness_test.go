// Package integration runs the built cafgate binary like a user does (`cafgate dev --ports auto` in a
// fresh directory) and drives it with real clients: Python's smtplib and raw sockets, swaks, and a
// small raw SMTP client of its own. Nothing here links the gateway's packages: a test sees only the
// binary, its files (dev.json, the data directory) and its stderr.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binPath is the cafgate binary every test runs, built once by TestMain (or taken from $CAFGATE_BIN).
var binPath string

// raceTest is set when the tests themselves run with -race (race_test.go); the gateway is then built
// with -race as well. CAFGATE_IT_RACE=1 or 0 forces it on or off.
var raceTest bool

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if p := os.Getenv("CAFGATE_BIN"); p != "" {
		binPath = p
		return m.Run()
	}
	tmp, err := os.MkdirTemp("", "cafgate-it-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	binPath = filepath.Join(tmp, "cafgate")
	args := []string{"build", "-o", binPath}
	if race := os.Getenv("CAFGATE_IT_RACE"); race == "1" || (raceTest && race != "0") {
		args = append(args, "-race") // the gateway itself under the race detector; see checkStderr
	}
	cmd := exec.Command("go", append(args, "./cmd/cafgate")...)
	cmd.Dir = ".." // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: go build ./cmd/cafgate failed: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// account is one entry of dev.json's accounts.
type account struct {
	Mail             string   `json:"mail"`
	Password         string   `json:"password"`
	TOTPSecret       string   `json:"totp_secret"`
	Name             string   `json:"name"`
	Agency           string   `json:"agency"`
	Roles            []string `json:"roles"`
	Status           string   `json:"status"`
	SensitiveService bool     `json:"sensitive_service"`
	Cert             string   `json:"cert"`
	Key              string   `json:"key"`
}

// devInfo is DIR/dev.json.
type devInfo struct {
	Dir      string            `json:"dir"`
	Config   string            `json:"config"`
	CACert   string            `json:"ca_cert"`
	Hostname string            `json:"hostname"`
	PID      int               `json:"pid"`
	Listen   map[string]string `json:"listen"`
	Accounts []account         `json:"accounts"`
}

// accountWith returns the first account with status st whose mail is not in skip; it fails the test
// when dev.json holds none.
func (d *devInfo) accountWith(t testing.TB, st string, skip ...string) account {
	t.Helper()
next:
	for _, a := range d.Accounts {
		if a.Status != st {
			continue
		}
		for _, s := range skip {
			if strings.EqualFold(s, a.Mail) {
				continue next
			}
		}
		return a
	}
	t.Fatalf("dev.json has no account with status %q (besides %v); accounts: %d", st, skip, len(d.Accounts))
	return account{}
}

// gateway is one `cafgate dev` process (restartable) over one directory.
type gateway struct {
	t       testing.TB
	dir     string
	logPath string // stderr of every run, appended
	outPath string // stdout of every run, appended

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	exitErr error
	info    *devInfo
}

// newGateway prepares a gateway over dir without starting it; the process is killed at cleanup.
func newGateway(t testing.TB, dir string) *gateway {
	t.Helper()
	g := &gateway{t: t, dir: dir, logPath: filepath.Join(dir, "..", filepath.Base(dir)+"-stderr.log"),
		outPath: filepath.Join(dir, "..", filepath.Base(dir)+"-stdout.log")}
	t.Cleanup(func() {
		g.mu.Lock()
		running := g.cmd != nil
		g.mu.Unlock()
		if running {
			g.kill()
		}
		g.checkStderr()
		if t.Failed() {
			g.dumpLogTail(60)
		}
	})
	return g
}

// startGateway makes a fresh directory under t.TempDir and starts `cafgate dev` in it.
func startGateway(t testing.TB) *gateway {
	t.Helper()
	g := newGateway(t, filepath.Join(t.TempDir(), "dev"))
	g.start()
	return g
}

// start runs `cafgate dev --dir DIR --ports auto` and waits until it has written dev.json.
func (g *gateway) start() *devInfo {
	g.t.Helper()
	g.mu.Lock()
	if g.cmd != nil {
		g.mu.Unlock()
		g.t.Fatal("gateway already running")
	}
	logf, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		g.mu.Unlock()
		g.t.Fatal(err)
	}
	outf, err := os.OpenFile(g.outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		g.mu.Unlock()
		g.t.Fatal(err)
	}
	cmd := exec.Command(binPath, "dev", "--dir", g.dir, "--ports", "auto")
	cmd.Stderr, cmd.Stdout = logf, outf
	if err := cmd.Start(); err != nil {
		g.mu.Unlock()
		g.t.Fatalf("starting cafgate dev: %v", err)
	}
	logf.Close()
	outf.Close()
	exited := make(chan struct{})
	g.cmd, g.exited, g.info = cmd, exited, nil
	g.mu.Unlock()
	go func() {
		err := cmd.Wait()
		g.mu.Lock()
		g.exitErr = err
		g.mu.Unlock()
		close(exited)
	}()
	info, err := waitDevJSON(g.dir, cmd.Process.Pid, exited, 90*time.Second)
	if err != nil {
		g.dumpLogTail(40)
		g.t.Fatalf("cafgate dev did not come up: %v", err)
	}
	g.mu.Lock()
	g.info = info
	g.mu.Unlock()
	return info
}

// waitDevJSON polls DIR/dev.json until it names pid and can be parsed.
func waitDevJSON(dir string, pid int, exited <-chan struct{}, limit time.Duration) (*devInfo, error) {
	deadline := time.Now().Add(limit)
	path := filepath.Join(dir, "dev.json")
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return nil, errors.New("the process exited before writing dev.json")
		default:
		}
		if b, err := os.ReadFile(path); err == nil {
			var d devInfo
			if err := json.Unmarshal(b, &d); err != nil {
				return nil, fmt.Errorf("dev.json does not parse (it must be written atomically): %v", err)
			}
			if d.PID == pid {
				return &d, nil
			}
		}
		time.Sleep(15 * time.Millisecond)
	}
	return nil, fmt.Errorf("no dev.json with pid %d after %v", pid, limit)
}

// Info returns the current run's dev.json.
func (g *gateway) Info() *devInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.info
}

// stop sends SIGTERM and requires a clean exit within 15 s.
func (g *gateway) stop() {
	g.t.Helper()
	cmd, exited := g.running()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		g.t.Errorf("cafgate did not stop within 15 s of SIGTERM; killing it")
		g.kill()
		return
	}
	g.mu.Lock()
	err := g.exitErr
	g.cmd = nil
	g.mu.Unlock()
	if err != nil {
		g.t.Errorf("cafgate exited uncleanly after SIGTERM: %v", err)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (g *gateway) kill() {
	cmd, exited := g.running()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
	g.mu.Lock()
	g.cmd = nil
	g.mu.Unlock()
}

func (g *gateway) running() (*exec.Cmd, chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cmd, g.exited
}

// stderr returns everything the gateway has written to stderr so far.
func (g *gateway) stderr() string {
	b, _ := os.ReadFile(g.logPath)
	return string(b)
}

func (g *gateway) dumpLogTail(n int) {
	lines := strings.Split(strings.TrimRight(g.stderr(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	g.t.Logf("last %d lines of cafgate stderr (%s):\n%s", len(lines), g.logPath, strings.Join(lines, "\n"))
}

// storedMessage is one element of `cafgate message list --json`.
type storedMessage struct {
	ID         string   `json:"id"`
	Sender     string   `json:"sender"`
	Recipients []string `json:"recipients"`
	Via        string   `json:"via"`
	ReceivedAt string   `json:"received_at"`
	Size       int64    `json:"size"`
	SHA256     string   `json:"sha256"`
}

// verifyResult is `cafgate message verify --json`.
type verifyResult struct {
	Checked int      `json:"checked"`
	OK      int      `json:"ok"`
	Failed  []string `json:"failed"`
}

// cli runs `cafgate ARGS... --config DIR/cafgate.toml` and returns stdout, stderr and the exit code.
func (g *gateway) cli(args ...string) (stdout, stderr string, code int) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append(args, "--config", filepath.Join(g.dir, "cafgate.toml"))
	cmd := exec.CommandContext(ctx, binPath, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		g.t.Fatalf("cafgate %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// messages returns `cafgate message list --json`.
func (g *gateway) messages() []storedMessage {
	g.t.Helper()
	out, errs, code := g.cli("message", "list", "--json", "--limit", "100000000")
	if code != 0 {
		g.t.Fatalf("cafgate message list exited %d: %s", code, errs)
	}
	var ms []storedMessage
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		g.t.Fatalf("cafgate message list --json: %v in %q", err, truncate(out, 400))
	}
	return ms
}

// verify runs `cafgate message verify --json`, returning its answer and exit code.
func (g *gateway) verify() (verifyResult, int) {
	g.t.Helper()
	out, errs, code := g.cli("message", "verify", "--json")
	var v verifyResult
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		g.t.Fatalf("cafgate message verify --json (exit %d): %v in %q; stderr %s", code, err, truncate(out, 400), errs)
	}
	return v, code
}

// requireVerifyClean fails the test unless verify checked want messages (want < 0: any) and all were ok.
func (g *gateway) requireVerifyClean(want int) {
	g.t.Helper()
	v, code := g.verify()
	if code != 0 || len(v.Failed) != 0 || v.OK != v.Checked || (want >= 0 && v.Checked != want) {
		g.t.Errorf("message verify: exit %d, %+v (want %d checked, all ok)", code, v, want)
	}
}

// runPython runs `python3 -m unittest -v MODULE` in integration/py with the gateway's paths in the
// environment, and fails the test when the script fails.
func (g *gateway) runPython(t testing.TB, module string, extraEnv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", "-m", "unittest", "-v", module)
	cmd.Dir = "py"
	cmd.Env = append(os.Environ(),
		"PYTHONDONTWRITEBYTECODE=1",
		"CAFGATE_DEV_JSON="+filepath.Join(g.dir, "dev.json"),
		"CAFGATE_BIN="+binPath,
		"CAFGATE_LOG="+g.logPath,
		"CAFGATE_CONFIG="+filepath.Join(g.dir, "cafgate.toml"),
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	out, err := cmd.CombinedOutput()
	t.Logf("python3 -m unittest %s:\n%s", module, out)
	if err != nil {
		t.Errorf("python tests %s failed: %v (see the output above)", module, err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// checkStderr fails the test when the gateway reported a data race (a -race build) or a panic on stderr.
func (g *gateway) checkStderr() {
	g.t.Helper()
	s := g.stderr()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "panic serving", "fatal error:"} {
		if i := strings.Index(s, bad); i >= 0 {
			g.t.Errorf("the gateway's stderr reports %q:\n%s", bad, truncate(s[i:], 3000))
		}
	}
}
