package imapd

import (
	"context"
	"crypto/tls"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"cafgate/directory"
	"cafgate/mailbox"
)

func TestPlainPortNeedsSTARTTLS(t *testing.T) {
	e := startEnv(t, nil)
	c, err := imapclient.DialInsecure(e.imap, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.CapStartTLS) || caps.Has("AUTH=PLAIN") {
		t.Fatalf("capabilities before TLS: %v", caps)
	}
	if err := c.Login("bob@council.example", "bob-pw").Wait(); imapCode(err) != imap.ResponseCodePrivacyRequired {
		t.Fatalf("LOGIN before TLS: %v", err)
	}
	if e.dir.calls != 0 {
		t.Fatal("the directory was asked before TLS")
	}

	tc, err := imapclient.DialStartTLS(e.imap, &imapclient.Options{TLSConfig: e.clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	caps, err = tc.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if caps.Has(imap.CapLoginDisabled) || caps.Has(imap.CapStartTLS) || !caps.Has("AUTH=PLAIN") || !caps.Has("AUTH=LOGIN") {
		t.Fatalf("capabilities after STARTTLS: %v", caps)
	}
	if err := tc.Authenticate(sasl.NewPlainClient("", "bob@council.example", "bob-pw")); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN after STARTTLS: %v", err)
	}
	caps, _ = tc.Capability().Wait()
	for _, want := range []imap.Cap{imap.CapUIDPlus, imap.CapMove, imap.CapIdle, imap.CapSpecialUse, "APPENDLIMIT=26214400"} {
		if !caps.Has(want) {
			t.Errorf("signed in: capability %s missing from %v", want, caps)
		}
	}
}

func TestSignInRefusals(t *testing.T) {
	e := startEnv(t, nil)
	for _, c := range []struct {
		user, pw string
		code     imap.ResponseCode
	}{
		{"bob@council.example", "wrong", imap.ResponseCodeAuthenticationFailed},
		{"nobody@council.example", "x", imap.ResponseCodeAuthenticationFailed},
		{"lapsed@council.example", "lapsed-pw", imap.ResponseCodeAuthenticationFailed},
		{"off@council.example", "off-pw", imap.ResponseCodeAuthenticationFailed},
		{"ext@elsewhere.example", "ext-pw", imap.ResponseCodeAuthorizationFailed},
		{"bob@council.example\x01", "bob-pw", imap.ResponseCodeAuthenticationFailed},
	} {
		cl := e.dial(t, nil)
		err := cl.Login(c.user, c.pw).Wait()
		if imapCode(err) != c.code {
			t.Errorf("%q: %v, want [%s]", c.user, err, c.code)
		}
		if c.code == imap.ResponseCodeAuthenticationFailed && !strings.Contains(err.Error(), "(ID ") {
			t.Errorf("%q: no ID in %v", c.user, err)
		}
		cl.Close()
	}
	e.dir.set(func() { e.dir.down = true })
	if err := e.dial(t, nil).Login("bob@council.example", "bob-pw").Wait(); imapCode(err) != imap.ResponseCodeUnavailable {
		t.Errorf("directory down: %v", err)
	}
	e.dir.set(func() { e.dir.down = false })
	// AUTHENTICATE LOGIN, and PLAIN acting as someone else.
	cl := e.dial(t, nil)
	if err := cl.Authenticate(sasl.NewPlainClient("carol@council.example", "bob@council.example", "bob-pw")); imapCode(err) != imap.ResponseCodeAuthenticationFailed {
		t.Errorf("PLAIN with another identity: %v", err)
	}
	if err := cl.Authenticate(sasl.NewLoginClient("bob@council.example", "bob-pw")); err != nil {
		t.Errorf("AUTHENTICATE LOGIN: %v", err)
	}
	if logs := e.logs.String(); strings.Contains(logs, "bob-pw") || strings.Contains(logs, "lapsed-pw") {
		t.Fatalf("a password reached the log:\n%s", logs)
	}
	// The ledger has the sign-ins, without passwords.
	if n := ledgerCount(t, e, "signin"); n != 1 {
		t.Errorf("%d signin events, want 1", n)
	}
	if n := ledgerCount(t, e, "signin-failed"); n < 6 {
		t.Errorf("%d signin-failed events", n)
	}
}

func ledgerCount(t *testing.T, e *env, typ string) int {
	t.Helper()
	db, err := mailbox.OpenLedgerReader(e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM ledger_events WHERE type = ?`, typ).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSignInBlockedAfterFailures(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.AuthFailuresBeforeDelay, o.AuthFailuresBeforeBlock = 1, 3 })
	for i := 0; i < 3; i++ {
		if err := e.dial(t, nil).Login("bob@council.example", "wrong").Wait(); imapCode(err) != imap.ResponseCodeAuthenticationFailed {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	calls := e.dir.calls
	err := e.dial(t, nil).Login("bob@council.example", "bob-pw").Wait()
	if imapCode(err) != imap.ResponseCodeUnavailable || !strings.Contains(err.Error(), "Too many failed sign-ins") {
		t.Fatalf("after the limit: %v", err)
	}
	if e.dir.calls != calls {
		t.Fatal("a blocked sign-in still asked the directory")
	}
}

func TestConnectionAndSessionLimits(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.MaxConnectionsPerIP, o.MaxConnectionsPerUser = 3, 2 })
	e.login(t, "bob@council.example", nil)
	e.login(t, "bob@council.example", nil)
	c := e.dial(t, nil)
	if err := c.Login("bob@council.example", "bob-pw").Wait(); imapCode(err) != imap.ResponseCodeLimit {
		t.Fatalf("third session of one practitioner: %v", err)
	}
	// A fourth connection from the same address is refused before the greeting.
	var bye []byte
	raw, err := tls.Dial("tcp", e.imaps, e.clientTLS)
	if err == nil {
		raw.SetDeadline(time.Now().Add(5 * time.Second))
		bye, _ = io.ReadAll(raw)
		raw.Close()
	}
	if !strings.HasPrefix(string(bye), "* BYE [UNAVAILABLE] Too many IMAP connections from your address") || !strings.Contains(string(bye), "(ID ") {
		t.Fatalf("fourth connection: %q, %v", bye, err)
	}
	c.Close()
	waitFor(t, func() bool { return e.srv.conns.count() == 2 })
	e.login(t, "carol@council.example", nil)
}

func TestStandingRecheckEndsSession(t *testing.T) {
	var revoked error
	e := startEnv(t, func(o *Options) {
		o.StandingInterval = time.Nanosecond
		o.Standing = func(ctx context.Context, mail string) error { return revoked }
	})
	c := e.login(t, "bob@council.example", nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	revoked = directory.ErrUnavailable // a directory outage does not end sessions
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("noop while the directory is down: %v", err)
	}
	revoked = directory.ErrVettingLapsed
	err := c.Noop().Wait()
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Fatalf("session still open after the practitioner lapsed (noop: %v)", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
