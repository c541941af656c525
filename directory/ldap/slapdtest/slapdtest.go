// Package slapdtest runs a throwaway OpenLDAP slapd for tests: its own cn=config built with slapadd
// (core, cosine, inetorgperson and any schema files given), one mdb database, TLS on ldaps:// and
// StartTLS on ldap:// when a certificate is given, optionally the memberof overlay, and entries loaded
// with ldapadd as the root DN. It uses only the standard library and the slapd and ldap-utils
// programs, so the integration tests (which link none of the gateway's packages) can use it too.
//
// Needs: apt-get install slapd ldap-utils (Debian 12: OpenLDAP 2.5). Root is not required.
package slapdtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options describe the slapd to start.
type Options struct {
	Suffix   string   // base of the one database, e.g. dc=cafgate,dc=test
	Schemas  []string // extra schema LDIF files (cn=...,cn=schema,cn=config entries), loaded in order
	MemberOf bool     // load the memberof overlay (groupOfNames/member maintain memberOf)
	CertFile string   // PEM server certificate; with KeyFile it turns on ldaps:// and StartTLS
	KeyFile  string
	LDIF     [][]byte // entries to ldapadd after start, in order
}

// Server is one running (or stopped) slapd.
type Server struct {
	URL      string // ldap://127.0.0.1:PORT (StartTLS offered when TLS is on)
	LDAPSURL string // ldaps://127.0.0.1:PORT, empty without TLS
	RootDN   string
	RootPW   string
	Dir      string // its configuration, database and log

	t     testing.TB
	o     Options
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	ports [2]int
}

// Programs are the tools Start needs; missing ones are reported by Missing.
var programs = []string{"slapd", "slapadd", "ldapadd", "ldapsearch"}

// Missing returns the names of the slapd and ldap-utils programs that are not installed.
func Missing() []string {
	var out []string
	for _, p := range programs {
		if _, err := lookPath(p); err != nil {
			out = append(out, p)
		}
	}
	return out
}

// lookPath finds a program on PATH or in /usr/sbin (where Debian puts slapd and slapadd).
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// Start builds and starts a slapd in a directory under t.TempDir and stops it at cleanup. It fails
// the test when slapd is not installed or does not come up.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if m := Missing(); len(m) > 0 {
		t.Fatalf("slapdtest: %v not installed (apt-get install slapd ldap-utils)", m)
	}
	pw := make([]byte, 12)
	rand.Read(pw)
	s := &Server{t: t, o: o, Dir: t.TempDir(), RootDN: "cn=admin," + o.Suffix, RootPW: hex.EncodeToString(pw)}
	if err := s.buildConfig(); err != nil {
		t.Fatal(err)
	}
	var err error
	for try := 0; try < 5; try++ {
		if s.ports, err = freePorts(); err != nil {
			t.Fatal(err)
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("slapdtest: %v\n%s", err, s.Log())
	}
	t.Cleanup(s.Stop)
	for i, l := range o.LDIF {
		if err := s.Add(l); err != nil {
			t.Fatalf("slapdtest: loading LDIF %d: %v", i, err)
		}
	}
	return s
}

// freePorts asks the kernel for two free loopback ports.
func freePorts() ([2]int, error) {
	var ports [2]int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// Stop stops slapd (SIGTERM, then SIGKILL after 5 s) and waits for it. Stopping a stopped server
// does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGCONT) // in case it was paused
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Restart starts a stopped server again on the same ports with the same data.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for try := 0; try < 20; try++ { // the old listening socket may take a moment to go
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("slapdtest: restart: %v\n%s", err, s.Log())
}

// Running reports whether slapd is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Log returns slapd's own output.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "slapd.log"))
	return string(b)
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	slapd, err := lookPath("slapd")
	if err != nil {
		return err
	}
	s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", s.ports[0])
	urls := s.URL + "/"
	if s.o.CertFile != "" {
		s.LDAPSURL = fmt.Sprintf("ldaps://127.0.0.1:%d", s.ports[1])
		urls += " " + s.LDAPSURL + "/"
	}
	logf, err := os.OpenFile(filepath.Join(s.Dir, "slapd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	// -d 0 keeps slapd in the foreground (so it is our child and dies with the test) without debug output.
	cmd := exec.Command(slapd, "-d", "0", "-h", urls, "-F", filepath.Join(s.Dir, "slapd.d"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	if err := s.waitReady(done); err != nil {
		cmd.Process.Kill()
		<-done
		return err
	}
	s.cmd, s.done = cmd, done
	return nil
}

// waitReady polls with ldapsearch until slapd answers a root DSE query.
func (s *Server) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("slapd exited at start")
		default:
		}
		if exec.Command("ldapsearch", "-x", "-H", s.URL, "-b", "", "-s", "base", "-LLL", "1.1").Run() == nil {
			return nil
		}
		time.Sleep(30 * time.Millisecond)
	}
	return errors.New("slapd did not answer within 10 s")
}

// Add loads LDIF content records as the root DN (ldapadd), so overlays such as memberof see them.
func (s *Server) Add(ldif []byte) error {
	cmd := exec.Command("ldapadd", "-x", "-H", s.URL, "-D", s.RootDN, "-y", s.rootPWFile())
	cmd.Stdin = bytes.NewReader(ldif)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ldapadd: %v\n%s", err, out)
	}
	return nil
}

// Modify applies an LDIF change record (ldapmodify) as the root DN.
func (s *Server) Modify(ldif string) error {
	cmd := exec.Command("ldapmodify", "-x", "-H", s.URL, "-D", s.RootDN, "-y", s.rootPWFile())
	cmd.Stdin = strings.NewReader(ldif)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ldapmodify: %v\n%s", err, out)
	}
	return nil
}

// rootPWFile is a file holding the root password, for ldap-utils' -y (no trailing newline).
func (s *Server) rootPWFile() string {
	p := filepath.Join(s.Dir, "rootpw")
	if _, err := os.Stat(p); err != nil {
		os.WriteFile(p, []byte(s.RootPW), 0o600)
	}
	return p
}

// Pause stops slapd with SIGSTOP and waits until it is stopped: the kernel still accepts connections
// on its ports, but nothing is answered, as with a server that hangs. Resume undoes it; cleanup
// resumes before stopping.
func (s *Server) Pause() {
	s.signal(syscall.SIGSTOP)
	s.mu.Lock()
	pid := 0
	if s.cmd != nil {
		pid = s.cmd.Process.Pid
	}
	s.mu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); pid != 0 && time.Now().Before(deadline); {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		// The state follows the command name in parentheses: "PID (slapd) T ...".
		if i := bytes.LastIndexByte(b, ')'); err != nil || (i > 0 && i+2 < len(b) && b[i+2] == 'T') {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// Resume continues a paused slapd (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.cmd.Process.Signal(sig)
	}
}
