package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/mail"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	_ "github.com/mattn/go-sqlite3" // reading the recipients' states from the store of record
)

// TestCrashDelivery kills the gateway with SIGKILL again and again while packages to three hosted
// recipients each are being accepted and delivered (each copy signed and encrypted to the recipient,
// then stored in their hosted mailbox), restarts it each time, kills it a few more times while the
// backlog drains, and then lets it settle. It then reads the three mailboxes over IMAP and requires:
//   - every stored package (as `cafgate message list` shows them, including any whose 250 a crash
//     lost) is in the mailbox of each recipient consent allows exactly once, by the copy's Message-ID;
//   - a recipient consent refuses (for the second sample episode) has none of it;
//   - no mailbox holds a copy of anything else;
//   - in the store of record every such recipient is "delivered" and every other "refused", none
//     left pending;
//   - every package answered 250 is stored;
//   - the ledger holds exactly one "delivered" event for each such copy and none for anything else;
//   - `cafgate ledger verify` and `cafgate message verify` pass.
//
// By default it sends 60 packages, with about 10 kills (measured 12 to 15 s under -race on the shared
// 2-core machine; 100 packages took 23 to 29 s). CAFGATE_CRASH_PACKAGES=500 runs the full
// count (measured 31 s with 46 kills on a quieter moment; allow a few minutes). -short skips it.
func TestCrashDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	t.Parallel()
	target := envCount(t, "CAFGATE_CRASH_PACKAGES", 60)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d packages", seed, target)
	rng := rand.New(rand.NewPCG(seed, 7))

	g := startGateway(t)
	info := g.Info()
	accounts := map[string]account{}
	for _, a := range info.Accounts {
		accounts[a.Mail] = a
	}
	// The sender and recipients are on both sample episodes' team; every recipient has a certificate
	// and a hosted mailbox, so every allowed copy is sealed and stored in IMAP.
	sender := accounts["harriet.example@school.cafgate.test"]
	rcpts := []string{"gwen.testcase@socialcare.cafgate.test", "priya.placeholder@health.cafgate.test", "rita.notreal@police.cafgate.test"}
	for _, r := range rcpts {
		if accounts[r].Cert == "" || accounts[r].Status != "active" {
			t.Fatalf("dev.json: %s should be active with a certificate", r)
		}
	}
	// Consent of the second sample episode refuses Eastshire Police, and withholds from Eastshire
	// Children's Services the sections a plain e-mail's text falls in, so Gwen gets nothing of it either.
	refused := map[string]map[string]bool{"[CAF-2026-000002]": {"rita.notreal@police.cafgate.test": true,
		"gwen.testcase@socialcare.cafgate.test": true}}

	conf := tlsConfig(t, info)
	var cur atomic.Pointer[devInfo]
	cur.Store(info)
	led := &deliveryLedger{episode: map[string]string{}, acked: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := deliveryClient{id: w, cur: &cur, conf: conf, from: sender, to: rcpts, led: led, target: target,
				rng: rand.New(rand.NewPCG(seed, uint64(w)+11))}
			c.run(ctx)
		}()
	}

	// Kill while packages are accepted (and delivered behind them) ...
	start := time.Now()
	kills := led.killWhileSubmitting(t, &wg, cancel, target, 10*time.Minute,
		func() time.Duration { return time.Duration(80+rng.IntN(250)) * time.Millisecond },
		func() { g.kill(); cur.Store(g.start()) })
	// ... and while the backlog drains.
	for range 6 {
		time.Sleep(time.Duration(200+rng.IntN(500)) * time.Millisecond)
		g.kill()
		kills++
		cur.Store(g.start())
	}
	t.Logf("%d kills in %v; %s", kills, time.Since(start).Round(time.Millisecond), led.summary())

	stored := g.messages()
	exp := map[string]map[string]bool{} // recipient -> expected copy Message-IDs
	for _, r := range rcpts {
		exp[r] = map[string]bool{}
	}
	byID := map[string]bool{}
	nothingForGwen := map[string]bool{} // packages Gwen was allowed at acceptance but gets nothing of
	for _, m := range stored {
		byID[m.ID] = true
		ep, ok := led.episodeOf(m.SHA256)
		if !ok {
			t.Errorf("stored message %s (sha256 %s) is not one the clients sent", m.ID, m.SHA256)
			continue
		}
		if ep == "[CAF-2026-000002]" {
			nothingForGwen[m.ID] = true
		}
		for _, r := range rcpts {
			if !refused[ep][r] {
				exp[r][copyMessageID(m.ID, r, info.Hostname)] = true
			}
		}
	}
	for sha, id := range led.acked {
		if !byID[id] {
			t.Errorf("package %s (sha256 %s) was answered 250 but is not stored", id, sha)
		}
	}

	// Settle: wait until every expected copy is in its mailbox (or the time is up), then look once more.
	settle := time.Now()
	var got map[string]map[string]int
	for {
		got = mailboxMessageIDs(t, cur.Load(), accounts, rcpts)
		missing := 0
		for r, ids := range exp {
			for id := range ids {
				if got[r][id] == 0 {
					missing++
				}
			}
		}
		if missing == 0 || time.Since(settle) > 3*time.Minute {
			t.Logf("settled in %v with %d copies missing", time.Since(settle).Round(time.Millisecond), missing)
			break
		}
		time.Sleep(time.Second)
	}
	time.Sleep(2 * time.Second) // anything delivered twice late would show now
	got = mailboxMessageIDs(t, cur.Load(), accounts, rcpts)
	for _, f := range checkCopies(exp, got) {
		t.Error(f)
	}
	g.stop()
	for _, f := range checkRecipientStates(t, filepath.Join(g.dir, "data", "cafgate.db"), info.Hostname, exp, rcpts, byID) {
		t.Error(f)
	}
	for _, f := range checkDeliveredEvents(g, info.Hostname, exp) {
		t.Error(f)
	}
	for _, f := range checkNotDeliveredEvents(g, "gwen.testcase@socialcare.cafgate.test", nothingForGwen) {
		t.Error(f)
	}
	if out, errs, code := g.cli("ledger", "verify"); code != 0 {
		t.Errorf("cafgate ledger verify exited %d:\n%s%s", code, out, errs)
	}
	g.requireVerifyClean(len(stored))
}

// checkRecipientStates reads each stored package's recipients' delivery state from the store of record
// (read-only, the gateway stopped) and requires every allowed recipient "delivered" and every other one
// "refused": none left pending, which would be a recipient neither served nor told about.
func checkRecipientStates(t *testing.T, dbPath, host string, exp map[string]map[string]bool, rcpts []string, stored map[string]bool) (faults []string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT message_id, rcpt, state FROM recipients`)
	if err != nil {
		t.Fatalf("reading recipients' states: %v", err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var id, rcpt, state string
		if err := rows.Scan(&id, &rcpt, &state); err != nil {
			t.Fatal(err)
		}
		if !stored[id] {
			continue
		}
		seen++
		want := "refused"
		if exp[rcpt][copyMessageID(id, rcpt, host)] {
			want = "delivered"
		}
		if state != want {
			faults = append(faults, fmt.Sprintf("package %s recipient %s: state %q, want %q", id, rcpt, state, want))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(stored)*len(rcpts) {
		faults = append(faults, fmt.Sprintf("%d recipient rows for %d packages of %d recipients", seen, len(stored), len(rcpts)))
	}
	sort.Strings(faults)
	return faults
}

// checkDeliveredEvents requires exactly one "delivered" ledger event for each expected copy and none
// for anything else (`cafgate ledger show`).
func checkDeliveredEvents(g *gateway, host string, exp map[string]map[string]bool) (faults []string) {
	shown, err := showDeliveryEvents(g, "delivered")
	if err != nil {
		return []string{err.Error()}
	}
	got := map[string]int{}
	for _, e := range shown {
		if e.Event.Data.Notice != "" {
			continue
		}
		got[copyMessageID(e.Event.Package, e.Event.Data.Recipient, host)]++
	}
	want := map[string]bool{}
	for r, ids := range exp {
		for id := range ids {
			want[id] = true
			if got[id] != 1 {
				faults = append(faults, fmt.Sprintf("%d delivered events for %s to %s, want 1", got[id], id, r))
			}
		}
	}
	for id, n := range got {
		if !want[id] {
			faults = append(faults, fmt.Sprintf("%d delivered events for %s, which should not be delivered", n, id))
		}
	}
	sort.Strings(faults)
	return faults
}

// copyMessageID is the Message-ID the pipeline gives a package's copy for one recipient.
func copyMessageID(pkg, rcpt, host string) string {
	h := sha256.Sum256([]byte(rcpt))
	return "<" + pkg + "." + hex.EncodeToString(h[:6]) + "@" + host + ">"
}

// checkCopies compares the copies found in each mailbox (Message-ID -> how many) with those expected.
func checkCopies(exp map[string]map[string]bool, got map[string]map[string]int) (faults []string) {
	for r, ids := range exp {
		for id := range ids {
			if n := got[r][id]; n != 1 {
				faults = append(faults, fmt.Sprintf("%s holds %d copies of %s, want exactly 1", r, n, id))
			}
		}
		for id, n := range got[r] {
			if !ids[id] {
				faults = append(faults, fmt.Sprintf("%s holds %d copies of %s, which it should not have", r, n, id))
			}
		}
	}
	sort.Strings(faults)
	return faults
}

// mailboxMessageIDs signs in to each recipient's hosted mailbox over IMAPS and counts the Message-IDs
// in INBOX.
func mailboxMessageIDs(t *testing.T, info *devInfo, accounts map[string]account, rcpts []string) map[string]map[string]int {
	t.Helper()
	out := map[string]map[string]int{}
	for _, r := range rcpts {
		ids, err := inboxMessageIDs(info, tlsConfig(t, info), accounts[r])
		if err != nil {
			t.Fatalf("IMAP as %s: %v", r, err)
		}
		out[r] = ids
	}
	return out
}

func inboxMessageIDs(info *devInfo, conf *tls.Config, a account) (map[string]int, error) {
	c, err := imapclient.DialTLS(info.Listen["imaps"], &imapclient.Options{TLSConfig: conf})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Login(a.Mail, a.Password).Wait(); err != nil {
		return nil, err
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, err
	}
	ids := map[string]int{}
	if sel.NumMessages == 0 {
		return ids, nil
	}
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(seqRange(sel.NumMessages)...), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return nil, err
	}
	if len(msgs) != int(sel.NumMessages) {
		return nil, fmt.Errorf("FETCH returned %d of %d messages", len(msgs), sel.NumMessages)
	}
	for _, m := range msgs {
		h, err := mail.ReadMessage(bytes.NewReader(append(m.FindBodySection(section), "\r\n"...)))
		id := ""
		if err == nil {
			id = strings.TrimSpace(h.Header.Get("Message-Id"))
		}
		ids[id]++
	}
	_ = c.Logout().Wait()
	return ids, nil
}

func seqRange(n uint32) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(i) + 1
	}
	return out
}

// deliveryLedger is what the clients sent and saw acknowledged.
type deliveryLedger struct {
	mu      sync.Mutex
	episode map[string]string // digest of every message sent completely -> its episode tag
	acked   map[string]string // digest -> ID from the 250
	other   atomic.Int64      // transactions that ended without 250 (mostly cut by a kill)
}

// killWhileSubmitting kills the gateway and starts it again (restart), a pause apart, until the
// clients (wg) have had target packages acknowledged and stopped, and returns how many kills that took.
// It fails the test when they have not within limit.
func (l *deliveryLedger) killWhileSubmitting(t *testing.T, wg *sync.WaitGroup, cancel context.CancelFunc, target int,
	limit time.Duration, pause func() time.Duration, restart func()) int {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	deadline := time.Now().Add(limit)
	for kills := 0; ; kills++ {
		select {
		case <-done:
			return kills
		case <-time.After(pause()):
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("only %d of %d packages acknowledged in %v", l.ackedCount(), target, limit)
		}
		restart()
	}
}

func (l *deliveryLedger) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

func (l *deliveryLedger) episodeOf(sha string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ep, ok := l.episode[sha]
	return ep, ok
}

func (l *deliveryLedger) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("sent completely %d, answered 250 %d, ended otherwise %d", len(l.episode), len(l.acked), l.other.Load())
}

// deliveryClient submits packages until the ledger holds target acknowledged ones.
type deliveryClient struct {
	id     int
	cur    *atomic.Pointer[devInfo]
	conf   *tls.Config
	from   account
	to     []string
	led    *deliveryLedger
	target int
	rng    *rand.Rand
	seq    int
	// firstEpisodeOnly sends every package for the first sample episode (otherwise one in four is
	// for the second); pause is the least time between two packages on a session and its random
	// spread (zero: up to 40 ms); markers, when set, records each package's marker line by digest.
	firstEpisodeOnly bool
	pause            [2]time.Duration
	markers          *markerBook
}

// markerBook holds the marker line of each package sent, by the digest of the package.
type markerBook struct {
	mu sync.Mutex
	m  map[string]string
}

func (b *markerBook) get(sha string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m[sha]
}

func (c *deliveryClient) run(ctx context.Context) {
	pause := c.pause
	if pause == [2]time.Duration{} {
		pause[1] = 40 * time.Millisecond
	}
	for ctx.Err() == nil && c.led.ackedCount() < c.target {
		s, _ := openSession(c.cur.Load(), []string{"submission", "submissions"}[c.rng.IntN(2)], c.conf, c.from, 10*time.Second)
		if s == nil {
			time.Sleep(time.Duration(10+c.rng.IntN(30)) * time.Millisecond)
			continue
		}
		for ctx.Err() == nil && c.led.ackedCount() < c.target && c.sendOne(s) {
			time.Sleep(pause[0] + time.Duration(c.rng.Int64N(int64(pause[1])))) // spread the packages over several kills
		}
		s.c.close()
	}
}

// sendOne sends one package and reports whether the session is still usable.
func (c *deliveryClient) sendOne(s *session) bool {
	c.seq++
	ep := "[CAF-2026-000001]"
	if !c.firstEpisodeOnly && c.rng.IntN(4) == 0 {
		ep = "[CAF-2026-000002]"
	}
	marker := fmt.Sprintf("Worker-%d-package-%d-%s", c.id, c.seq, randomToken(16))
	body := fmt.Appendf(nil, "From: <%s>\r\nTo: <%s>\r\nSubject: %s crash delivery %d-%d\r\nDate: %s\r\n"+
		"Message-ID: <%s@it.cafgate.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"%s\r\n%s", c.from.Mail, strings.Join(c.to, ">, <"), ep, c.id, c.seq,
		time.Now().Format(time.RFC1123Z), randomToken(12), marker,
		strings.Repeat("An assessment line of ordinary length for the crash test.\r\n", c.rng.IntN(40)))
	sha := digest(body)
	if c.markers != nil {
		c.markers.mu.Lock()
		c.markers.m[sha] = marker
		c.markers.mu.Unlock()
	}
	r := s.send(c.to, body)
	c.led.mu.Lock()
	defer c.led.mu.Unlock()
	if r.SentAll {
		c.led.episode[sha] = ep
	}
	if id := r.Reply.AcceptedID(); r.Stage == "" && id != "" {
		c.led.acked[sha] = id
		return true
	}
	c.led.other.Add(1)
	return false
}

// TestCheckCopiesFindsFaults feeds the crash test's mailbox check a missing copy, a duplicate and a
// copy that should not be there, so a check that passes everything cannot go unnoticed.
func TestCheckCopiesFindsFaults(t *testing.T) {
	t.Parallel()
	exp := map[string]map[string]bool{"a@x.test": {"<1>": true, "<2>": true}, "b@x.test": {"<1b>": true}}
	good := map[string]map[string]int{"a@x.test": {"<1>": 1, "<2>": 1}, "b@x.test": {"<1b>": 1}}
	if f := checkCopies(exp, good); len(f) != 0 {
		t.Fatalf("a correct set: %v", f)
	}
	bad := map[string]map[string]int{"a@x.test": {"<1>": 2}, "b@x.test": {"<1b>": 1, "<2>": 1}}
	f := strings.Join(checkCopies(exp, bad), "\n")
	for _, want := range []string{"a@x.test holds 2 copies of <1>", "a@x.test holds 0 copies of <2>", "b@x.test holds 1 copies of <2>, which it should not"} {
		if !strings.Contains(f, want) {
			t.Errorf("faults %q lack %q", f, want)
		}
	}
}

// checkNotDeliveredEvents requires exactly one "not-delivered" event (reason nothing-allowed) for rcpt
// and each package in want, and no other "not-delivered" event: a recipient the acceptance allowed who
// gets nothing after all is a state change the ledger records, once even across kills.
func checkNotDeliveredEvents(g *gateway, rcpt string, want map[string]bool) (faults []string) {
	shown, err := showDeliveryEvents(g, "not-delivered")
	if err != nil {
		return []string{err.Error()}
	}
	got := map[string]int{}
	for _, e := range shown {
		if e.Event.Data.Recipient != rcpt || e.Event.Data.Reason != "nothing-allowed" {
			faults = append(faults, fmt.Sprintf("not-delivered event for %s to %s (%s): none expected",
				e.Event.Package, e.Event.Data.Recipient, e.Event.Data.Reason))
			continue
		}
		got[e.Event.Package]++
	}
	for id := range want {
		if got[id] != 1 {
			faults = append(faults, fmt.Sprintf("%d not-delivered events for %s to %s, want 1", got[id], id, rcpt))
		}
	}
	for id, n := range got {
		if !want[id] {
			faults = append(faults, fmt.Sprintf("%d not-delivered events for %s, which Gwen may receive", n, id))
		}
	}
	sort.Strings(faults)
	return faults
}

// shownEvent is a delivery event as `cafgate ledger show --json` prints it.
type shownEvent struct {
	Event struct {
		Package string `json:"package"`
		Data    struct {
			Recipient string `json:"recipient"`
			Notice    string `json:"notice"` // delivered: a report or DSN about the package, not a copy of it
			Reason    string `json:"reason"` // not-delivered: why
		} `json:"data"`
	} `json:"event"`
}

// showDeliveryEvents reads every ledger event of type typ through `cafgate ledger show`.
func showDeliveryEvents(g *gateway, typ string) ([]shownEvent, error) {
	out, errs, code := g.cli("ledger", "show", "--type", typ, "--since", "2000-01-01", "--operator", "it",
		"--reason", "crash test of delivery", "--json", "--limit", "100000000")
	if code != 0 {
		return nil, fmt.Errorf("ledger show exited %d: %s", code, errs)
	}
	var shown []shownEvent
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		return nil, fmt.Errorf("ledger show --json: %v in %s", err, truncate(out, 300))
	}
	return shown, nil
}
