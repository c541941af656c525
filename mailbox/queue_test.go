// Tests of the outbound queue: enqueue, claim with leases, outcomes with their ledger events and
// notices, encryption at rest, and concurrent claimers.

package mailbox

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

var qT0 = time.Date(2025, 3, 4, 6, 0, 0, 0, time.UTC)

// queueStore opens a store holding one accepted message "m1".
func qStore(t *testing.T) (*Store, Options) {
	t.Helper()
	opt := testOpts(t)
	s := openTest(t, opt)
	if err := s.Accept(context.Background(), msg("m1", body(1))); err != nil {
		t.Fatal(err)
	}
	return s, opt
}

func qOutbound(rcpt string) *Outbound {
	content := fmt.Sprintf("Message-ID: <pkg-%s@gw.example>\r\nFrom: alice@agency.example\r\nTo: %s\r\n\r\nsealed package for %s\r\n", rcpt, rcpt, rcpt)
	return &Outbound{MessageID: "m1", From: "alice@agency.example", Recipient: rcpt, Content: []byte(content)}
}

func qEnqueue(t *testing.T, s *Store, items ...*Outbound) []string {
	t.Helper()
	ids, err := s.Enqueue(context.Background(), items...)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return ids
}

func qClaim(t *testing.T, s *Store, opt ClaimOptions) []*Claimed {
	t.Helper()
	cs, err := s.Claim(context.Background(), opt)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return cs
}

func qEntry(t *testing.T, s *Store, id string) *QueueEntry {
	t.Helper()
	e, err := s.QueueGet(context.Background(), id)
	if err != nil {
		t.Fatalf("QueueGet(%s): %v", id, err)
	}
	return e
}

// events returns the ledger events (type and data) written about queue entry id, in order.
func qEvents(t *testing.T, s *Store, id string) []string {
	t.Helper()
	rows, err := s.rdb.Query(`SELECT type, data FROM ledger_events WHERE json_extract(data, '$.queue_id') = ? ORDER BY seq`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var typ, data string
		if err := rows.Scan(&typ, &data); err != nil {
			t.Fatal(err)
		}
		out = append(out, typ)
	}
	return out
}

func qEventData(t *testing.T, s *Store, id, typ string) map[string]any {
	t.Helper()
	var data string
	err := s.rdb.QueryRow(`SELECT data FROM ledger_events WHERE json_extract(data, '$.queue_id') = ? AND type = ?
		ORDER BY seq DESC LIMIT 1`, id, typ).Scan(&data)
	if err != nil {
		t.Fatalf("event %s of %s: %v", typ, id, err)
	}
	m := map[string]any{}
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestQueueDeliveredRoundTrip(t *testing.T) {
	s, opt := qStore(t)
	ctx := context.Background()
	o := qOutbound("bob@Council.example")
	ids := qEnqueue(t, s, o)
	e := qEntry(t, s, ids[0])
	if e.State != QueueQueued || e.Domain != "council.example" || e.HeaderMessageID != "<pkg-bob@Council.example@gw.example>" ||
		e.Kind != KindMessage || e.Size != len(o.Content) || !e.FirstQueued.Equal(opt.Now()) {
		t.Fatalf("entry = %+v", e)
	}
	cs := qClaim(t, s, ClaimOptions{Domain: "council.example", Limit: 5, Now: opt.Now(), Lease: time.Minute})
	if len(cs) != 1 || !bytes.Equal(cs[0].Content, o.Content) || cs[0].ContentErr != nil || cs[0].State != QueueSending {
		t.Fatalf("claimed %+v", cs)
	}
	if again := qClaim(t, s, ClaimOptions{Now: opt.Now()}); len(again) != 0 {
		t.Fatalf("a leased entry was claimed twice: %v", again)
	}
	if err := s.Done(ctx, cs[0].Lease, Outcome{At: opt.Now(), Host: "mx.council.example", Answer: "250 2.0.0 Ok:\r\n queued", TLS: "TLS1.3"}); err != nil {
		t.Fatal(err)
	}
	e = qEntry(t, s, ids[0])
	if e.State != QueueDelivered || e.Attempts != 1 || e.LastAnswer != "250 2.0.0 Ok: queued" || e.LastHost != "mx.council.example" {
		t.Fatalf("after Done: %+v", e)
	}
	if c, err := s.QueueContent(ctx, ids[0]); err != nil || c != nil {
		t.Fatalf("content not purged after delivery: %q, %v", c, err)
	}
	if n := count(t, rawDB(t, opt.Path), `SELECT count(*) FROM queue_contents WHERE id = '`+ids[0]+`'`); n != 0 {
		t.Fatalf("delivered entry's content row still stored (%d)", n)
	}
	if got := strings.Join(qEvents(t, s, ids[0]), ","); got != "queued,relayed" {
		t.Fatalf("events = %s", got)
	}
	d := qEventData(t, s, ids[0], EventRelayed)
	if d["host"] != "mx.council.example" || d["tls"] != "TLS1.3" || d["attempt"] != 1.0 || d["recipient"] != "bob@Council.example" {
		t.Fatalf("relayed data = %v", d)
	}
	if err := s.Done(ctx, cs[0].Lease, Outcome{At: opt.Now()}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("second Done = %v, want ErrLeaseLost", err)
	}
}

func TestQueueContentEncryptedAndBound(t *testing.T) {
	s, opt := qStore(t)
	ids := qEnqueue(t, s, qOutbound("bob@council.example"), qOutbound("carol@health.example"))
	raw := rawDB(t, opt.Path)
	if n := count(t, raw, `SELECT count(*) FROM queue_contents WHERE instr(content, 'sealed package') > 0`); n != 0 {
		t.Fatalf("%d queue rows hold plaintext", n)
	}
	// Swap the two rows' content: each must now fail to authenticate.
	var n0, c0, n1, c1 []byte
	if err := raw.QueryRow(`SELECT nonce, content FROM queue_contents WHERE id = ?`, ids[0]).Scan(&n0, &c0); err != nil {
		t.Fatal(err)
	}
	if err := raw.QueryRow(`SELECT nonce, content FROM queue_contents WHERE id = ?`, ids[1]).Scan(&n1, &c1); err != nil {
		t.Fatal(err)
	}
	for id, nc := range map[string][2][]byte{ids[0]: {n1, c1}, ids[1]: {n0, c0}} {
		if _, err := raw.Exec(`UPDATE queue_contents SET nonce = ?, content = ? WHERE id = ?`, nc[0], nc[1], id); err != nil {
			t.Fatal(err)
		}
	}
	cs := qClaim(t, s, ClaimOptions{Limit: 5, Now: opt.Now()})
	if len(cs) != 2 {
		t.Fatalf("claimed %d", len(cs))
	}
	for _, c := range cs {
		if !errors.Is(c.ContentErr, ErrCorrupt) || c.Content != nil {
			t.Errorf("%s: swapped content accepted: %v", c.ID, c.ContentErr)
		}
	}
	if _, err := s.QueueContent(context.Background(), ids[0]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("QueueContent = %v", err)
	}
}

func TestEnqueueRefusesBadEntries(t *testing.T) {
	s, _ := qStore(t)
	ctx := context.Background()
	dsn := qOutbound("alice@agency.example")
	dsn.Kind, dsn.From, dsn.About = KindDSN, "", "Qx/failed"
	for name, edit := range map[string]func(o *Outbound){
		"no Message-ID":      func(o *Outbound) { o.Content = []byte("From: a@b.example\r\n\r\nhi\r\n") },
		"no sender":          func(o *Outbound) { o.From = "" },
		"bad recipient":      func(o *Outbound) { o.Recipient = "bob@council.example>\r\nRCPT TO:<x@y" },
		"no domain":          func(o *Outbound) { o.Recipient = "bob@" },
		"unknown message":    func(o *Outbound) { o.MessageID = "no-such" },
		"DSN with a sender":  func(o *Outbound) { o.Kind, o.About = KindDSN, "x" },
		"DSN without about":  func(o *Outbound) { o.Kind, o.From = KindDSN, "" },
		"unknown kind":       func(o *Outbound) { o.Kind = "fax" },
		"no content":         func(o *Outbound) { o.Content = nil },
		"no message ID":      func(o *Outbound) { o.MessageID = "" },
		"space in recipient": func(o *Outbound) { o.Recipient = "bob smith@council.example" },
	} {
		o := qOutbound("bob@council.example")
		edit(o)
		if _, err := s.Enqueue(ctx, o); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Enqueue = %v, want ErrInvalid", name, err)
		}
	}
	if n := count(t, s.rdb, `SELECT count(*) FROM queue`); n != 0 {
		t.Fatalf("%d bad entries stored", n)
	}
	qEnqueue(t, s, qOutbound("bob@council.example"), dsn)
	if _, err := s.Enqueue(ctx, qOutbound("bob@council.example")); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate Enqueue = %v, want ErrDuplicate", err)
	}
	// One bad entry in a batch stores none of it.
	if _, err := s.Enqueue(ctx, qOutbound("dave@council.example"), &Outbound{MessageID: "m1"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("batch with a bad entry = %v", err)
	}
	if n := count(t, s.rdb, `SELECT count(*) FROM queue`); n != 2 {
		t.Fatalf("%d entries after a refused batch, want 2", n)
	}
}

func TestEnqueueTxRollsBackWithTheCaller(t *testing.T) {
	s, opt := qStore(t)
	ctx := context.Background()
	boom := errors.New("pipeline step failed")
	err := s.queueTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.EnqueueTx(ctx, tx, opt.Now(), qOutbound("bob@council.example")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("queueTx = %v", err)
	}
	if n := count(t, s.rdb, `SELECT count(*) FROM queue`) + count(t, s.rdb, `SELECT count(*) FROM ledger_events WHERE type = 'queued'`); n != 0 {
		t.Fatalf("rolled-back enqueue left %d rows", n)
	}
}

func TestQueueLapsedLeaseIsClaimedAgainAndRecorded(t *testing.T) {
	s, _ := qStore(t)
	ctx := context.Background()
	ids := qEnqueue(t, s, qOutbound("bob@council.example"))
	first := qClaim(t, s, ClaimOptions{Now: qT0, Lease: time.Minute})
	if len(first) != 1 {
		t.Fatal("not claimed")
	}
	if cs := qClaim(t, s, ClaimOptions{Now: qT0.Add(59 * time.Second)}); len(cs) != 0 {
		t.Fatal("claimed while the lease holds")
	}
	if err := s.Hold(ctx, ids[0]); !errors.Is(err, ErrBusy) {
		t.Fatalf("Hold while sending = %v, want ErrBusy", err)
	}
	second := qClaim(t, s, ClaimOptions{Now: qT0.Add(time.Minute), Lease: time.Minute})
	if len(second) != 1 || second[0].Attempts != 1 || second[0].Lease == first[0].Lease {
		t.Fatalf("re-claim after lapse: %+v", second)
	}
	if err := s.Done(ctx, first[0].Lease, Outcome{At: qT0}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Done with the lapsed lease = %v, want ErrLeaseLost", err)
	}
	if err := s.Retry(ctx, second[0].Lease, Outcome{At: qT0.Add(2 * time.Minute), Answer: "451 4.3.0 try later", Next: qT0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	e := qEntry(t, s, ids[0])
	if e.State != QueueQueued || e.Attempts != 2 || !e.NextAttempt.Equal(qT0.Add(time.Hour)) {
		t.Fatalf("after lapse and retry: %+v", e)
	}
	if got := strings.Join(qEvents(t, s, ids[0]), ","); got != "queued,lease-expired,deferred" {
		t.Fatalf("events = %s", got)
	}
	if cs := qClaim(t, s, ClaimOptions{Now: qT0.Add(59 * time.Minute)}); len(cs) != 0 {
		t.Fatal("claimed before its next attempt time")
	}
}

func TestQueueUnclaimKeepsAttempts(t *testing.T) {
	s, _ := qStore(t)
	ids := qEnqueue(t, s, qOutbound("bob@council.example"))
	cs := qClaim(t, s, ClaimOptions{Now: qT0})
	if err := s.Unclaim(context.Background(), cs[0].Lease, qT0); err != nil {
		t.Fatal(err)
	}
	if e := qEntry(t, s, ids[0]); e.State != QueueQueued || e.Attempts != 0 {
		t.Fatalf("after Unclaim: %+v", e)
	}
	if again := qClaim(t, s, ClaimOptions{Now: qT0}); len(again) != 1 || again[0].Lease.Token != cs[0].Lease.Token+1 {
		t.Fatalf("re-claim after Unclaim: %+v", again)
	}
	if err := s.Unclaim(context.Background(), cs[0].Lease, qT0); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Unclaim with a stale lease = %v", err)
	}
}

func qDSN(id, action string) *Outbound {
	return &Outbound{MessageID: "m1", Kind: KindDSN, About: id + "/" + action, Recipient: "alice@agency.example",
		Content: []byte("Message-ID: <dsn-" + id + "-" + action + "@gw.example>\r\nSubject: report\r\n\r\nreport\r\n")}
}

func TestQueueRetryQueuesTheDelayWarningOnce(t *testing.T) {
	s, _ := qStore(t)
	ctx := context.Background()
	ids := qEnqueue(t, s, qOutbound("bob@council.example"))
	for i := range 2 {
		cs := qClaim(t, s, ClaimOptions{Domain: "council.example", Now: qT0.Add(time.Duration(i) * time.Hour)})
		if len(cs) != 1 {
			t.Fatalf("round %d: claimed %d", i, len(cs))
		}
		out := Outcome{At: qT0, Host: "mx", Answer: "450 busy", Next: qT0.Add(time.Duration(i+1) * time.Hour), Notice: qDSN(ids[0], "delayed")}
		if err := s.Retry(ctx, cs[0].Lease, out); err != nil {
			t.Fatal(err)
		}
	}
	e := qEntry(t, s, ids[0])
	if !e.DelayWarned || e.Attempts != 2 {
		t.Fatalf("entry = %+v", e)
	}
	dsns, err := s.QueueList(ctx, QueueFilter{MessageID: "m1", State: QueueQueued})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dsns {
		if d.Kind == KindDSN {
			n++
			if d.From != "" || d.Recipient != "alice@agency.example" || d.About != ids[0]+"/delayed" {
				t.Errorf("notice entry = %+v", d)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d delay notices queued, want 1", n)
	}
	if d := qEventData(t, s, ids[0], EventDeferred); d["next"] == nil || d["answer"] != "450 busy" {
		t.Fatalf("deferred data = %v", d)
	}
	if err := s.Retry(ctx, Lease{ID: ids[0], Token: 99}, Outcome{Next: qT0}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Retry with a made-up lease = %v", err)
	}
}

func TestQueueFailQueuesTheBounceInTheSameTransaction(t *testing.T) {
	s, _ := qStore(t)
	ctx := context.Background()
	ids := qEnqueue(t, s, qOutbound("bob@council.example"))
	cs := qClaim(t, s, ClaimOptions{Now: qT0})
	if err := s.Fail(ctx, cs[0].Lease, Outcome{At: qT0, Answer: "550 5.1.1 no such user"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Fail without a cause = %v", err)
	}
	// A notice that cannot be queued fails the whole outcome: the entry stays leased.
	bad := qDSN(ids[0], "failed")
	bad.Content = []byte("no header\r\n")
	if err := s.Fail(ctx, cs[0].Lease, Outcome{At: qT0, Cause: CauseRejected, Notice: bad}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Fail with a bad notice = %v", err)
	}
	if e := qEntry(t, s, ids[0]); e.State != QueueSending {
		t.Fatalf("a refused Fail changed the entry: %+v", e)
	}
	err := s.Fail(ctx, cs[0].Lease, Outcome{At: qT0, Host: "mx", Answer: "550 5.1.1 no such user", Cause: CauseRejected, Notice: qDSN(ids[0], "failed")})
	if err != nil {
		t.Fatal(err)
	}
	if e := qEntry(t, s, ids[0]); e.State != QueueFailed || e.LastAnswer != "550 5.1.1 no such user" {
		t.Fatalf("after Fail: %+v", e)
	}
	d := qEventData(t, s, ids[0], EventBounced)
	notice, _ := d["notice"].(string)
	if d["cause"] != CauseRejected || notice == "" {
		t.Fatalf("bounced data = %v", d)
	}
	if n := qEntry(t, s, notice); n.Kind != KindDSN || n.State != QueueQueued {
		t.Fatalf("bounce entry = %+v", n)
	}
}

func TestQueueOperatorActions(t *testing.T) {
	s, opt := qStore(t)
	ctx := context.Background()
	ids := qEnqueue(t, s, qOutbound("bob@council.example"), qOutbound("carol@health.example"), qOutbound("dan@school.example"))
	if err := s.Hold(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Hold(ctx, ids[0]); err != nil {
		t.Fatalf("holding twice: %v", err)
	}
	if cs := qClaim(t, s, ClaimOptions{Domain: "council.example", Now: opt.Now().Add(time.Hour)}); len(cs) != 0 {
		t.Fatal("a held entry was claimed")
	}
	if err := s.RetryNow(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if e := qEntry(t, s, ids[0]); e.State != QueueQueued {
		t.Fatalf("RetryNow of a held entry: %+v", e)
	}
	if err := s.Hold(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, ids[1]); !errors.Is(err, ErrQueueState) {
		t.Fatalf("Release of a queued entry = %v", err)
	}
	if err := s.Drop(ctx, ids[2], " ", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Drop without a reason = %v", err)
	}
	if err := s.Drop(ctx, ids[2], "recipient left the service", qDSN(ids[2], "failed")); err != nil {
		t.Fatal(err)
	}
	if e := qEntry(t, s, ids[2]); e.State != QueueFailed || !strings.Contains(e.LastAnswer, "recipient left the service") {
		t.Fatalf("after Drop: %+v", e)
	}
	for name, err := range map[string]error{
		"hold dropped":  s.Hold(ctx, ids[2]),
		"retry dropped": s.RetryNow(ctx, ids[2]),
		"drop dropped":  s.Drop(ctx, ids[2], "again", nil),
	} {
		if !errors.Is(err, ErrQueueState) {
			t.Errorf("%s = %v, want ErrQueueState", name, err)
		}
	}
	if err := s.Hold(ctx, "Qnope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Hold of an unknown ID = %v", err)
	}
	want := map[string]string{ids[0]: "queued,held,released", ids[1]: "queued,held,released", ids[2]: "queued,dropped"}
	for id, w := range want {
		if got := strings.Join(qEvents(t, s, id), ","); got != w {
			t.Errorf("%s events = %s, want %s", id, got, w)
		}
	}
	if d := qEventData(t, s, ids[2], EventDropped); d["reason"] != "recipient left the service" || d["notice"] == "" {
		t.Fatalf("dropped data = %v", d)
	}
}

func TestQueueDueDomainsAndNextDue(t *testing.T) {
	s, opt := qStore(t)
	ctx := context.Background()
	if _, ok, err := s.NextDue(ctx); ok || err != nil {
		t.Fatalf("NextDue on an empty queue: %v %v", ok, err)
	}
	later := qOutbound("carol@health.example")
	later.NotBefore = opt.Now().Add(time.Hour)
	qEnqueue(t, s, qOutbound("bob@council.example"), qOutbound("eve@council.example"), later)
	due, err := s.DueDomains(ctx, opt.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].Domain != "council.example" || due[0].Due != 2 {
		t.Fatalf("due = %+v", due)
	}
	next, ok, err := s.NextDue(ctx)
	if err != nil || !ok || !next.Equal(opt.Now()) {
		t.Fatalf("NextDue = %v %v %v", next, ok, err)
	}
	qClaim(t, s, ClaimOptions{Domain: "council.example", Limit: 2, Now: opt.Now(), Lease: 10 * time.Minute})
	next, _, _ = s.NextDue(ctx)
	if !next.Equal(opt.Now().Add(10 * time.Minute)) {
		t.Fatalf("NextDue with two leased = %v, want the lease end", next)
	}
}

func TestQueueConcurrentClaimersTakeEachEntryOnce(t *testing.T) {
	s, opt := qStore(t)
	ctx := context.Background()
	var items []*Outbound
	for i := range 60 {
		items = append(items, qOutbound(fmt.Sprintf("r%d@council.example", i)))
	}
	qEnqueue(t, s, items...)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				cs, err := s.Claim(ctx, ClaimOptions{Domain: "council.example", Limit: 4, Now: opt.Now()})
				if err != nil {
					t.Error(err)
					return
				}
				if len(cs) == 0 {
					return
				}
				for _, c := range cs {
					mu.Lock()
					seen[c.ID]++
					mu.Unlock()
					if err := s.Done(ctx, c.Lease, Outcome{At: opt.Now(), Answer: "250 ok"}); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != 60 {
		t.Fatalf("%d entries claimed, want 60", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s claimed %d times", id, n)
		}
	}
}

func TestQueueRecordBatchKeepsGoodResults(t *testing.T) {
	s, _ := qStore(t)
	ctx := context.Background()
	ids := qEnqueue(t, s, qOutbound("a@council.example"), qOutbound("b@council.example"), qOutbound("c@council.example"))
	cs := qClaim(t, s, ClaimOptions{Domain: "council.example", Limit: 3, Now: qT0})
	byID := map[string]*Claimed{}
	for _, c := range cs {
		byID[c.ID] = c
	}
	bad := qDSN(ids[2], "failed")
	bad.Content = []byte("no header\r\n")
	errs, err := s.RecordOutcomes(ctx, []QueueResult{
		{Lease: byID[ids[0]].Lease, State: QueueDelivered, Outcome: Outcome{At: qT0, Answer: "250 ok"}},
		{Lease: Lease{ID: ids[1], Token: 42}, State: QueueDelivered, Outcome: Outcome{At: qT0}},
		{Lease: byID[ids[2]].Lease, State: QueueFailed, Outcome: Outcome{At: qT0, Cause: CauseRejected, Notice: bad}},
		{Lease: byID[ids[1]].Lease, State: QueueQueued, Outcome: Outcome{At: qT0}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || !errors.Is(errs[1], ErrLeaseLost) || !errors.Is(errs[2], ErrInvalid) || !errors.Is(errs[3], ErrInvalid) {
		t.Fatalf("errs = %v", errs)
	}
	want := map[string]string{ids[0]: QueueDelivered, ids[1]: QueueSending, ids[2]: QueueSending}
	for id, st := range want {
		if e := qEntry(t, s, id); e.State != st {
			t.Errorf("%s: state %s, want %s", id, e.State, st)
		}
	}
	if got := strings.Join(qEvents(t, s, ids[2]), ","); got != "queued" {
		t.Fatalf("a refused result left events: %s", got)
	}
	if n := count(t, s.rdb, `SELECT count(*) FROM queue WHERE kind = 'dsn'`); n != 0 {
		t.Fatalf("a refused result left %d notices", n)
	}
}
