package integration

import (
	"os/exec"
	"testing"
)

// The Python suites in integration/py, each against a gateway of its own (separate dev directories,
// so they run in parallel). Each fails when its script fails; the script's output is in the test log.

func requirePython(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is required (integration/ci.sh installs it)")
	}
}

// TestSubmission: smtplib over STARTTLS and implicit TLS, every refusal of the contract, and swaks.
func TestSubmission(t *testing.T) {
	t.Parallel()
	requirePython(t)
	if _, err := exec.LookPath("swaks"); err != nil {
		t.Fatal("swaks is required (integration/ci.sh installs it)")
	}
	g := startGateway(t)
	g.runPython(t, "test_submission")
	g.stop()
	g.requireVerifyClean(-1)
}

// TestSmuggling: bare CR/LF/NUL and end-of-data look-alikes inside DATA, and commands pipelined
// after STARTTLS.
func TestSmuggling(t *testing.T) {
	t.Parallel()
	requirePython(t)
	g := startGateway(t)
	g.runPython(t, "test_smuggling")
	g.stop()
	if n := len(g.messages()); n != 0 {
		t.Errorf("%d messages stored by the smuggling tests, want 0", n)
	}
}

// TestFailedSignInLimit: delayed after 3 failed sign-ins from one address, 421 4.7.0 after 10.
func TestFailedSignInLimit(t *testing.T) {
	t.Parallel()
	requirePython(t)
	g := startGateway(t)
	g.runPython(t, "test_ratelimit")
	g.stop()
}

// TestDatabaseLocked: another process holds the database's write lock past the busy timeout.
func TestDatabaseLocked(t *testing.T) {
	t.Parallel()
	requirePython(t)
	g := startGateway(t)
	g.runPython(t, "test_locked")
	g.stop()
	g.requireVerifyClean(1)
}

// TestSMIMESubmission: what openssl cms signs and encrypts, submitted with smtplib: the signer must be
// the signed-in practitioner, altered content is refused, and encryption to the gateway is read.
func TestSMIMESubmission(t *testing.T) {
	t.Parallel()
	requirePython(t)
	g := startGateway(t)
	g.runPython(t, "test_smime_submission")
	g.stop()
	if n := len(g.messages()); n != 5 {
		t.Errorf("%d messages stored, want the 5 accepted ones", n)
	}
	g.requireVerifyClean(5)
}

// TestDeliveryTrip: a package to a recipient with a certificate (read over IMAP, decrypted and
// verified by openssl cms) and to one without (a notification, then the pickup page with a TOTP code).
func TestDeliveryTrip(t *testing.T) {
	t.Parallel()
	requirePython(t)
	g := startGateway(t)
	g.runPython(t, "test_delivery")
	g.stop()
}
