package integration

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Helpers for ldap_test.go: the configuration for `cafgate serve` against a slapd, the serve process,
// and the Python smtplib steps (ldap_smtp.py).

const (
	ldapBase      = "dc=cafgate,dc=test"
	ldapServiceDN = "cn=cafgate-gateway,ou=services,dc=cafgate,dc=test"
)

// ldapSSHA is password as an {SSHA} userPassword value (what slappasswd -h {SSHA} writes).
func ldapSSHA(password string) string {
	salt := make([]byte, 8)
	rand.Read(salt)
	h := sha1.Sum(append([]byte(password), salt...))
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h[:], salt...))
}

// ldapServiceLDIF is the service account entry the gateway binds as.
func ldapServiceLDIF(password string) []byte {
	return []byte(fmt.Sprintf(`dn: ou=services,%s
objectClass: organizationalUnit
ou: services

dn: %s
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: cafgate-gateway
userPassword: %s
`, ldapBase, ldapServiceDN, ldapSSHA(password)))
}

// ldapConfig writes DIR/ldap.toml: the development configuration of DIR/cafgate.toml (its data
// directory, with the sample episodes, included) with fresh ports and its [[directory]] replaced by one
// LDAP directory at url answering for every sample domain. It returns the path and the submission
// address.
func ldapConfig(t *testing.T, dir, url, servicePassword string) (string, string) {
	t.Helper()
	base, err := os.ReadFile(filepath.Join(dir, "cafgate.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	skipping := false
	for _, line := range strings.Split(string(base), "\n") {
		if strings.HasPrefix(line, "[") {
			skipping = line == "[[directory]]" || strings.HasPrefix(line, "[directory.")
		}
		if !skipping {
			kept = append(kept, line)
		}
	}
	text := strings.Join(kept, "\n")
	text = regexp.MustCompile(`127\.0\.0\.1:\d+`).ReplaceAllStringFunc(text, func(string) string { return ldapFreeAddr(t) })
	submission := regexp.MustCompile(`(?m)^submission = "([^"]+)"`).FindStringSubmatch(text)
	if submission == nil {
		t.Fatalf("no submission address in the development configuration:\n%s", text)
	}
	pwFile := filepath.Join(dir, "ldap.password")
	if err := os.WriteFile(pwFile, []byte(servicePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text += fmt.Sprintf(`
[[directory]]
name = "agency-ldap"
type = "ldap"
domains = ["school.cafgate.test", "health.cafgate.test", "socialcare.cafgate.test", "police.cafgate.test"]

[directory.ldap]
url = %q
ca_file = "ca/ca.pem"
bind_dn = %q
bind_password_file = "ldap.password"
base_dn = "ou=people,%s"
connect_timeout = "1s"
timeout = "1s"
pool_size = 2
cache_ttl = "1s"
agencies = ["Northfield Primary School", "Riverside Community Health", "Eastshire Children's Services", "Eastshire Police"]
`, url, ldapServiceDN, ldapBase)
	path := filepath.Join(dir, "ldap.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, submission[1]
}

func ldapFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ldapServe is one `cafgate serve --config FILE` process, stopped (SIGTERM) at cleanup.
type ldapServe struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// startLDAPServe runs the built binary with config and waits until submission accepts connections.
func startLDAPServe(t *testing.T, config, submission string) *ldapServe {
	t.Helper()
	s := &ldapServe{logPath: config + ".stderr", exited: make(chan struct{})}
	logf, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	s.cmd = exec.Command(binPath, "serve", "--config", config)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			t.Error("cafgate serve did not stop within 15 s of SIGTERM")
			s.cmd.Process.Kill()
			<-s.exited
		}
		if log := s.log(); strings.Contains(log, "WARNING: DATA RACE") || strings.Contains(log, "panic:") {
			t.Errorf("cafgate serve reported a data race or a panic")
		}
		if t.Failed() {
			t.Logf("cafgate serve stderr:\n%s", s.log())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			t.Fatalf("cafgate serve exited at start:\n%s", s.log())
		default:
		}
		if c, err := net.DialTimeout("tcp", submission, time.Second); err == nil {
			c.Close()
			return s
		}
		time.Sleep(30 * time.Millisecond)
	}
	t.Fatalf("cafgate serve did not listen on %s within 30 s:\n%s", submission, s.log())
	return nil
}

func (s *ldapServe) log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// smtpStep is one SMTP answer ldap_smtp.py checked.
type smtpStep struct {
	Stage string `json:"stage"`
	Code  int    `json:"code"`
	Text  string `json:"text"`
}

func (s smtpStep) String() string { return fmt.Sprintf("%s %d %s", s.Stage, s.Code, s.Text) }

// ldapSMTP runs ldap_smtp.py; between, when set, runs after the script has said "ready".
func ldapSMTP(t *testing.T, env []string, between func(), args ...string) []smtpStep {
	t.Helper()
	cmd := exec.Command("python3", append([]string{"ldap_smtp.py"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var steps []smtpStep
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var st smtpStep
		if err := json.Unmarshal(sc.Bytes(), &st); err != nil {
			t.Errorf("ldap_smtp.py printed %q", sc.Text())
			continue
		}
		if st.Stage == "ready" && between != nil {
			between()
			io.WriteString(stdin, "go\n")
			continue
		}
		steps = append(steps, st)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ldap_smtp.py %v: %v\n%s", args, err, stderr.String())
	}
	return steps
}

// last returns the last step, failing the test when there is none.
func last(t *testing.T, steps []smtpStep) smtpStep {
	t.Helper()
	if len(steps) == 0 {
		t.Fatal("ldap_smtp.py checked no answer")
	}
	return steps[len(steps)-1]
}

// ldapEpisodeTeam returns the active accounts on the team of the first sample episode in dev.json,
// so that packages pass the gateway's episode and consent checks.
func ldapEpisodeTeam(t *testing.T, info *devInfo) []account {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(info.Dir, "dev.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dev struct {
		Episodes []struct {
			Team []string `json:"team"`
		} `json:"episodes"`
	}
	if err := json.Unmarshal(b, &dev); err != nil || len(dev.Episodes) == 0 {
		t.Fatalf("dev.json has no sample episode: %v", err)
	}
	var out []account
	for _, mail := range dev.Episodes[0].Team {
		for _, a := range info.Accounts {
			if strings.EqualFold(a.Mail, mail) && a.Status == "active" {
				out = append(out, a)
			}
		}
	}
	if len(out) < 3 {
		t.Fatalf("the first sample episode has %d active team members, want 3", len(out))
	}
	return out
}
