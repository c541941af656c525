package integration

import (
	"bufio"
	"fmt"
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

// TestSenderReport: the second sample episode's package to a refused agency, a refused person and a
// recipient from whom one section is withheld: the SMTP answers, the sender's delivery report in their
// hosted mailbox (words, decisions, ledger proofs checked by `cafgate ledger check-proof`), each
// copy's sections (openssl cms), and the override notice to the lead professional
// (integration/py/report_trip.py).
func TestSenderReport(t *testing.T) {
	t.Parallel()
	requirePython(t)
	g := startGateway(t)
	g.runPython(t, "report_trip")
	g.stop()
	g.requireVerifyClean(-1)
}

// TestDSNToHostedSender: a recipient whose domain is not hosted is sent through the relay to a smart
// host that answers 550; the failure report (DSN) to the sender, whose mailbox is hosted here, lands in
// that mailbox and never in the relay queue (integration/py/report_dsn.py).
func TestDSNToHostedSender(t *testing.T) {
	t.Parallel()
	requirePython(t)
	g := startGateway(t)
	g.stop()
	sink := startRefusingSink(t)
	cfgPath, stop := servePoliceRelayed(t, g, sink)
	g.runPython(t, "report_dsn", "CAFGATE_CONFIG="+cfgPath)
	stop()
}

// servePoliceRelayed serves g's stopped development setup with `cafgate serve`, police.cafgate.test
// no longer hosted and routed to smartHost in plain text (loopback only). It returns the
// configuration's path and a stop function (SIGTERM; also run at cleanup).
func servePoliceRelayed(t *testing.T, g *gateway, smartHost string) (cfgPath string, stop func()) {
	t.Helper()
	orig, err := os.ReadFile(filepath.Join(g.dir, "cafgate.toml"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^hosted_domains = .*$`)
	if !re.Match(orig) {
		t.Fatal("cafgate.toml has no hosted_domains line")
	}
	conf := re.ReplaceAllString(string(orig), `hosted_domains = ["school.cafgate.test", "health.cafgate.test", "socialcare.cafgate.test"]`)
	conf += fmt.Sprintf("\n[[relay.route]]\ndomains = [\"police.cafgate.test\"]\nsmart_host = %q\ntls = \"none\"\n", smartHost)
	cfgPath = filepath.Join(g.dir, "relay.toml")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(g.dir, "..", "serve-stderr.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, "serve", "--config", cfgPath)
	cmd.Dir = g.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("cafgate serve exited with %v", err)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Error("cafgate serve did not stop within 15 s of SIGTERM")
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("cafgate serve stderr:\n%s", b)
		}
	})
	waitListening(t, g.Info().Listen["submission"], exited)
	waitListening(t, g.Info().Listen["imaps"], exited)
	return cfgPath, stop
}

// startRefusingSink is a plain-text SMTP server on loopback that refuses every recipient with 550.
func startRefusingSink(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				r := bufio.NewReader(c)
				fmt.Fprint(c, "220 sink.test ESMTP\r\n")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
					case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
						fmt.Fprint(c, "250-sink.test\r\n250 ENHANCEDSTATUSCODES\r\n")
					case strings.HasPrefix(cmd, "RCPT"):
						fmt.Fprint(c, "550 5.1.1 no such mailbox here\r\n")
					case strings.HasPrefix(cmd, "QUIT"):
						fmt.Fprint(c, "221 2.0.0 bye\r\n")
						return
					case strings.HasPrefix(cmd, "DATA"):
						fmt.Fprint(c, "554 5.5.1 no valid recipients\r\n")
					default:
						fmt.Fprint(c, "250 2.0.0 ok\r\n")
					}
				}
			}(c)
		}
	}()
	return l.Addr().String()
}

// waitListening waits until addr accepts connections (or the process exits).
func waitListening(t *testing.T, addr string, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("cafgate serve exited: %v", err)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after 60 s", addr)
}
