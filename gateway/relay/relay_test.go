// Delivery against a real SMTP server (go-smtp's, on 127.0.0.1): delivered, a 4xx then delivered, a
// 5xx bounced at once, the lifetime running out (with one delay warning), TLS that does not verify,
// STARTTLS missing, plain text only when configured, a smart host with implicit TLS and AUTH, MX
// fallback and unroutable domains, connection limits and the Run loop.

package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"cafgate/gateway/dsn"
	"cafgate/mailbox"
)

// dsnFields parses a DSN as received and returns the per-recipient fields, the top header, and
// whether the original body leaked into it.
func dsnFields(t *testing.T, data []byte) (map[string]string, mail.Header) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	fields := map[string]string{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Header.Get("Content-Type") != "message/delivery-status" {
			continue
		}
		tp := textproto.NewReader(bufio.NewReader(p))
		for {
			h, err := tp.ReadMIMEHeader()
			for k, v := range h {
				fields[k] = v[0]
			}
			if err != nil {
				break
			}
		}
	}
	if bytes.Contains(data, []byte("SECRET-BODY")) {
		t.Fatal("the DSN carries the original message's body")
	}
	return fields, m.Header
}

func TestDelivered(t *testing.T) {
	r := newRig(t)
	m := startMTA(t, mtaOpts{tls: r.serverTLS()})
	r.mx(m)
	id := r.enqueue(t, "bob@council.test")
	r.flush(t, r.relay(t))
	got := m.messages()
	if len(got) != 1 {
		t.Fatalf("MTA received %d messages, want 1", len(got))
	}
	g := got[0]
	if !bytes.Equal(g.data, pkg("bob@council.test")) || g.from != "alice@agency.test" || g.rcpt != "bob@council.test" ||
		g.helo != "gw.test" || !g.tls {
		t.Fatalf("received %+v\n%s", g, g.data)
	}
	e := r.entry(t, id)
	if e.State != mailbox.QueueDelivered || e.Attempts != 1 || e.LastHost != "mx.council.test" || !strings.HasPrefix(e.LastAnswer, "250 ") {
		t.Fatalf("entry = %+v", e)
	}
	if len(r.dsns(t, id)) != 0 {
		t.Fatal("a DSN was queued for a delivered message")
	}
}

func TestTemporaryFailureThenDelivered(t *testing.T) {
	r := newRig(t)
	m := startMTA(t, mtaOpts{tls: r.serverTLS(), answer: func(_ string, try int) *smtp.SMTPError {
		if try == 1 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted, come back later"}
		}
		return nil
	}})
	r.mx(m)
	id := r.enqueue(t, "bob@council.test")
	rl := r.relay(t)
	r.flush(t, rl)
	e := r.entry(t, id)
	if e.State != mailbox.QueueQueued || e.LastAnswer != "451 4.7.1 greylisted, come back later" ||
		!e.NextAttempt.Equal(tStart.Add(5*time.Minute)) {
		t.Fatalf("after the 451: %+v", e)
	}
	r.clock.Advance(4 * time.Minute)
	r.flush(t, rl)
	if len(m.messages()) != 0 || m.triesOf("bob@council.test") != 1 {
		t.Fatal("retried before the backoff ended")
	}
	r.clock.Advance(time.Minute)
	r.flush(t, rl)
	if len(m.messages()) != 1 {
		t.Fatalf("MTA received %d messages after the retry, want 1", len(m.messages()))
	}
	if e := r.entry(t, id); e.State != mailbox.QueueDelivered || e.Attempts != 2 {
		t.Fatalf("after the retry: %+v", e)
	}
	if len(r.dsns(t, id)) != 0 {
		t.Fatal("a DSN was queued although delivery succeeded before the delay warning")
	}
}

func TestPermanentFailureBouncesAtOnce(t *testing.T) {
	r := newRig(t)
	m := startMTA(t, mtaOpts{tls: r.serverTLS(), answer: func(rcpt string, _ int) *smtp.SMTPError {
		if rcpt == "nobody@council.test" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
		}
		return nil
	}})
	r.mx(m)
	id := r.enqueue(t, "nobody@council.test")
	r.flush(t, r.relay(t)) // the bounce, then (second round) the DSN to the sender
	e := r.entry(t, id)
	if e.State != mailbox.QueueFailed || e.Attempts != 1 || e.LastAnswer != "550 5.1.1 no such user here" {
		t.Fatalf("entry = %+v", e)
	}
	if m.triesOf("nobody@council.test") != 1 {
		t.Fatalf("a 5xx was retried: %d tries", m.triesOf("nobody@council.test"))
	}
	ds := r.dsns(t, id)
	if len(ds) != 1 || ds[0].About != id+"/failed" || ds[0].State != mailbox.QueueDelivered || ds[0].Recipient != "alice@agency.test" {
		t.Fatalf("DSN entries = %+v", ds)
	}
	got := m.messages()
	if len(got) != 1 || got[0].from != "" || got[0].rcpt != "alice@agency.test" {
		t.Fatalf("the DSN did not arrive as a null-sender message to the sender: %+v", got)
	}
	f, h := dsnFields(t, got[0].data)
	if f["Action"] != "failed" || f["Status"] != "5.1.1" || f["Final-Recipient"] != "rfc822; nobody@council.test" ||
		f["Remote-Mta"] != "dns; mx.council.test" || !strings.Contains(f["Diagnostic-Code"], "550 5.1.1 no such user here") {
		t.Fatalf("DSN fields = %v", f)
	}
	if h.Get("Subject") != "Undelivered Mail Returned to Sender" || h.Get("In-Reply-To") != "<pkg.nobody.council.test@gw.test>" {
		t.Fatalf("DSN header = %v", h)
	}
}

func TestLifetimeExpiresWithOneDelayWarning(t *testing.T) {
	r := newRig(t)
	m := startMTA(t, mtaOpts{tls: r.serverTLS(), answer: func(rcpt string, _ int) *smtp.SMTPError {
		if rcpt == "bob@council.test" {
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
		}
		return nil
	}})
	r.mx(m)
	id := r.enqueue(t, "bob@council.test")
	rl := r.relay(t)
	var waits []time.Duration
	for i := 0; i < 100; i++ {
		r.flush(t, rl)
		e := r.entry(t, id)
		if e.State != mailbox.QueueQueued {
			break
		}
		waits = append(waits, e.NextAttempt.Sub(r.clock.Now()))
		r.clock.Advance(e.NextAttempt.Sub(r.clock.Now()))
	}
	e := r.entry(t, id)
	if e.State != mailbox.QueueFailed || !strings.Contains(e.LastAnswer, "452 4.2.2 mailbox full") ||
		!r.clock.Now().Equal(tStart.Add(24*time.Hour)) {
		t.Fatalf("entry = %+v at %v", e, r.clock.Now())
	}
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour}
	for i, w := range want {
		if waits[i] != w {
			t.Fatalf("waits = %v, want them to start %v", waits, want)
		}
	}
	ds := r.dsns(t, id)
	if len(ds) != 2 || ds[0].About != id+"/delayed" || ds[1].About != id+"/failed" {
		t.Fatalf("DSNs = %+v", ds)
	}
	var delayed, failed map[string]string
	for _, g := range m.messages() {
		f, _ := dsnFields(t, g.data)
		switch f["Action"] {
		case "delayed":
			delayed = f
		case "failed":
			failed = f
		}
	}
	if delayed == nil || delayed["Status"] != "4.2.2" || delayed["Will-Retry-Until"] == "" {
		t.Fatalf("delay warning = %v", delayed)
	}
	if failed == nil || failed["Status"] != "5.4.7" || !strings.Contains(failed["Diagnostic-Code"], "mailbox full") {
		t.Fatalf("failure report = %v", failed)
	}
}

func TestTLSCertificateThatDoesNotVerify(t *testing.T) {
	r := newRig(t)
	other := newTestCA(t, "mx.council.test") // the MTA's certificate comes from a CA the relay does not trust
	m := startMTA(t, mtaOpts{tls: &tls.Config{Certificates: []tls.Certificate{other.cert}}})
	r.mx(m)
	id := r.enqueue(t, "bob@council.test")
	r.flush(t, r.relay(t))
	if n := len(m.messages()); n != 0 {
		t.Fatalf("delivered %d messages over TLS that did not verify", n)
	}
	e := r.entry(t, id)
	if e.State != mailbox.QueueQueued || !strings.Contains(e.LastAnswer, "TLS certificate of mx.council.test did not verify") {
		t.Fatalf("entry = %+v", e)
	}
	// The wrong host name fails the same way with a trusted CA.
	r2 := newRig(t)
	m2 := startMTA(t, mtaOpts{tls: r2.serverTLS()})
	r2.opt.Resolver = resolver{mx: map[string][]*net.MX{"council.test": {{Host: "mail.elsewhere.test", Pref: 1}}}}
	r2.opt.Dial = dialer(map[string]string{"mail.elsewhere.test:25": m2.addr})
	id2 := r2.enqueue(t, "bob@council.test")
	r2.flush(t, r2.relay(t))
	if e := r2.entry(t, id2); len(m2.messages()) != 0 || !strings.Contains(e.LastAnswer, "did not verify") {
		t.Fatalf("wrong host name: %d delivered, entry %+v", len(m2.messages()), e)
	}
}

func TestSTARTTLSRequired(t *testing.T) {
	r := newRig(t)
	m := startMTA(t, mtaOpts{}) // offers no STARTTLS
	r.mx(m)
	id := r.enqueue(t, "bob@council.test")
	r.flush(t, r.relay(t))
	e := r.entry(t, id)
	if len(m.messages()) != 0 || e.State != mailbox.QueueQueued || !strings.Contains(e.LastAnswer, "does not offer STARTTLS") {
		t.Fatalf("%d delivered; entry = %+v", len(m.messages()), e)
	}
}

func TestPlainTextOnlyWhenConfiguredAndLogged(t *testing.T) {
	r := newRig(t)
	m := startMTA(t, mtaOpts{tls: r.serverTLS()})
	r.mx(m)
	r.opt.Routes = []Route{{Domains: []string{"council.test"}, TLS: None}}
	id := r.enqueue(t, "bob@council.test")
	r.flush(t, r.relay(t))
	got := m.messages()
	if len(got) != 1 || got[0].tls {
		t.Fatalf("received %+v", got)
	}
	if e := r.entry(t, id); e.State != mailbox.QueueDelivered {
		t.Fatalf("entry = %+v", e)
	}
	if n := strings.Count(r.log.String(), "PLAIN TEXT"); n < 2 {
		t.Fatalf("plain text was logged %d times, want at start and per connection:\n%s", n, r.log.String())
	}
	if _, err := New(r.store, Options{Hostname: "gw.test", Routes: []Route{{Domains: []string{"x.test"}, TLS: None, SmartHost: "h:25", Username: "u", Password: "p"}}}); err == nil {
		t.Fatal("AUTH over plain text was accepted")
	}
}

func TestSmartHostImplicitTLSWithAuth(t *testing.T) {
	r := newRig(t)
	m := startMTA(t, mtaOpts{tls: r.serverTLS(), implicit: true, password: "s3cret"})
	r.opt.Dial = dialer(map[string]string{"smart.test:465": m.addr})
	r.opt.Resolver = resolver{}
	r.opt.Routes = []Route{{Domains: []string{"*"}, SmartHost: "smart.test:465", ImplicitTLS: true, Username: "relay", Password: "wrong"}}
	id := r.enqueue(t, "bob@council.test")
	r.flush(t, r.relay(t))
	if e := r.entry(t, id); e.State != mailbox.QueueQueued || !strings.Contains(e.LastAnswer, "535") {
		t.Fatalf("with a wrong password: %+v", e)
	}
	r.opt.Routes[0].Password = "s3cret"
	r.clock.Advance(time.Hour)
	r.flush(t, r.relay(t))
	got := m.messages()
	if len(got) != 1 || got[0].user != "relay" || !got[0].tls {
		t.Fatalf("received %+v", got)
	}
	if e := r.entry(t, id); e.State != mailbox.QueueDelivered || e.LastHost != "smart.test" {
		t.Fatalf("entry = %+v", e)
	}
}

func TestMXFallbackAndUnroutableDomains(t *testing.T) {
	r := newRig(t)
	m := startMTA(t, mtaOpts{tls: r.serverTLS()})
	r.opt.Resolver = resolver{mx: map[string][]*net.MX{
		"council.test": {{Host: "mx.council.test", Pref: 20}, {Host: "down.council.test", Pref: 10}},
		"nomail.test":  {{Host: ".", Pref: 0}},
		"agency.test":  {{Host: "mx.council.test", Pref: 10}},
	}}
	r.opt.Dial = dialer(map[string]string{"mx.council.test:25": m.addr}) // down.council.test refuses
	ok := r.enqueue(t, "bob@council.test")
	nullMX := r.enqueue(t, "eve@nomail.test")
	gone := r.enqueue(t, "zed@nonexistent.test")
	r.flush(t, r.relay(t))
	if e := r.entry(t, ok); e.State != mailbox.QueueDelivered || e.LastHost != "mx.council.test" {
		t.Fatalf("fallback to the second MX: %+v", e)
	}
	if e := r.entry(t, nullMX); e.State != mailbox.QueueFailed || !strings.Contains(e.LastAnswer, "null MX") {
		t.Fatalf("null MX: %+v", e)
	}
	if e := r.entry(t, gone); e.State != mailbox.QueueFailed || !strings.Contains(e.LastAnswer, "does not exist") {
		t.Fatalf("missing domain: %+v", e)
	}
	if len(r.dsns(t, nullMX)) != 1 || len(r.dsns(t, gone)) != 1 {
		t.Fatal("unroutable recipients were not reported to the sender")
	}
}

// TestConnectionLimitPerDestination holds every session open until several are waiting, and checks
// no more than the limit were ever open at once.
func TestConnectionLimitPerDestination(t *testing.T) {
	r := newRig(t)
	var open, peak atomic.Int32
	var mu sync.Mutex
	m := startMTA(t, mtaOpts{tls: r.serverTLS(), answer: func(string, int) *smtp.SMTPError {
		mu.Lock()
		n := open.Add(1)
		if n > peak.Load() {
			peak.Store(n)
		}
		mu.Unlock()
		time.Sleep(30 * time.Millisecond)
		open.Add(-1)
		return nil
	}})
	r.mx(m)
	r.opt.MaxPerDestination, r.opt.MessagesPerConnection = 2, 1
	for _, u := range []string{"a", "b", "c", "d", "e", "f"} {
		r.enqueue(t, u+"@council.test")
	}
	r.flush(t, r.relay(t))
	if n := len(m.messages()); n != 6 {
		t.Fatalf("delivered %d, want 6", n)
	}
	if p := peak.Load(); p > 2 || p < 1 {
		t.Fatalf("peak concurrent transactions = %d, limit 2", p)
	}
}

// TestLapsedLeaseIsSentAgainWithTheSameMessageID: a worker that claimed an entry and died is replaced
// after the lease; the copy sent carries the same Message-ID, and the ledger records the lapse.
func TestLapsedLeaseIsSentAgainWithTheSameMessageID(t *testing.T) {
	r := newRig(t)
	m := startMTA(t, mtaOpts{tls: r.serverTLS()})
	r.mx(m)
	id := r.enqueue(t, "bob@council.test")
	if cs, err := r.store.Claim(context.Background(), mailbox.ClaimOptions{Now: r.clock.Now(), Lease: time.Minute}); err != nil || len(cs) != 1 {
		t.Fatalf("claim: %v %d", err, len(cs))
	}
	rl := r.relay(t)
	r.flush(t, rl)
	if len(m.messages()) != 0 {
		t.Fatal("sent while another worker held the lease")
	}
	r.clock.Advance(time.Minute)
	r.flush(t, rl)
	got := m.messages()
	if len(got) != 1 || !bytes.Contains(got[0].data, []byte("Message-ID: <pkg.bob.council.test@gw.test>")) {
		t.Fatalf("received %d", len(got))
	}
	if e := r.entry(t, id); e.State != mailbox.QueueDelivered || e.Attempts != 2 {
		t.Fatalf("entry = %+v", e)
	}
}

func TestRunDeliversWhenWokenAndStops(t *testing.T) {
	r := newRig(t)
	m := startMTA(t, mtaOpts{tls: r.serverTLS()})
	r.mx(m)
	r.opt.PollInterval = time.Hour // only Wake can make it look
	rl := r.relay(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rl.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	id := r.enqueue(t, "bob@council.test")
	rl.Wake()
	deadline := time.Now().Add(10 * time.Second)
	for r.entry(t, id).State != mailbox.QueueDelivered {
		if time.Now().After(deadline) {
			t.Fatal("Run did not deliver after Wake")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestInternationalisedAddressNeedsSMTPUTF8(t *testing.T) {
	r := newRig(t)
	m := startMTA(t, mtaOpts{tls: r.serverTLS()}) // go-smtp's server offers no SMTPUTF8 unless enabled
	r.mx(m)
	id := r.enqueue(t, "zoë@council.test")
	r.flush(t, r.relay(t))
	if e := r.entry(t, id); e.State != mailbox.QueueFailed || !strings.Contains(e.LastAnswer, "SMTPUTF8") {
		t.Fatalf("entry = %+v", e)
	}
	if m.triesOf("zoë@council.test") != 0 {
		t.Fatal("RCPT was sent although the server cannot take the address")
	}
}

// TestShutdownEndsAHangingAttempt: the receiving MTA never answers RCPT; once Run's context ends the
// attempt is cut after ShutdownGrace, recorded as a temporary failure, and Run returns.
func TestShutdownEndsAHangingAttempt(t *testing.T) {
	r := newRig(t)
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	m := startMTA(t, mtaOpts{tls: r.serverTLS(), answer: func(string, int) *smtp.SMTPError {
		<-hang
		return nil
	}})
	r.mx(m)
	r.opt.ShutdownGrace = 200 * time.Millisecond
	id := r.enqueue(t, "bob@council.test")
	rl := r.relay(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rl.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for m.triesOf("bob@council.test") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the attempt never reached RCPT")
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return: the hanging attempt was not cut")
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("Run returned after %v, before the grace period", d)
	}
	if e := r.entry(t, id); e.State != mailbox.QueueQueued || e.Attempts != 1 || !strings.Contains(e.LastAnswer, "broke during RCPT TO") {
		t.Fatalf("entry = %+v", e)
	}
}

func TestNoReportAboutAReport(t *testing.T) {
	e := &mailbox.QueueEntry{ID: "Q1", MessageID: "m1", Kind: mailbox.KindDSN, Recipient: "alice@agency.test"}
	if o, err := Notice("gw.test", e, nil, dsn.Recipient{Action: dsn.Failed}, "", tStart); o != nil || err != nil {
		t.Fatalf("Notice about a DSN = %v, %v", o, err)
	}
	e.Kind, e.From = mailbox.KindMessage, "alice@agency.test"
	o, err := Notice("gw.test", e, []byte("Message-ID: <a@b>\r\nSubject: s\r\n\r\nSECRET-BODY\r\n"), dsn.Recipient{Action: dsn.Failed}, "", tStart)
	if err != nil || o == nil || o.Kind != mailbox.KindDSN || o.From != "" || o.Recipient != "alice@agency.test" ||
		o.About != "Q1/failed" || bytes.Contains(o.Content, []byte("SECRET-BODY")) {
		t.Fatalf("Notice = %+v, %v", o, err)
	}
}
