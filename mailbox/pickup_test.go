package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testClock is a store clock tests move forward.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *testClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *testClock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }

// pickupStore opens a store with a movable clock and one accepted message "M1" for bob and carol.
func pickupStore(t *testing.T) (*Store, *testClock) {
	t.Helper()
	clk := newTestClock(time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC))
	opt := testOpts(t)
	opt.Now = clk.Now
	s := openTest(t, opt)
	if err := s.Accept(context.Background(), msg("M1", body(1))); err != nil {
		t.Fatal(err)
	}
	return s, clk
}

func notice(l *IssuedLink) (*Outbound, error) {
	content := fmt.Sprintf("From: gateway@gw.example\r\nTo: %s\r\nMessage-ID: <%s@gw.example>\r\nSubject: a package awaits you\r\n\r\nhttps://gw.example/pickup/l/%s\r\n",
		l.Recipient, l.ID, l.Token)
	return &Outbound{From: "gateway@gw.example", Recipient: l.Recipient, Content: []byte(content)}, nil
}

// issue issues a link with Notify and returns it with its token (captured from the builder).
func issue(t *testing.T, s *Store, req LinkRequest) (*Link, string) {
	t.Helper()
	var token string
	l, err := s.Notify(context.Background(), req, func(il *IssuedLink) (*Outbound, error) {
		token = il.Token
		return notice(il)
	})
	if err != nil {
		t.Fatalf("Notify: %v", err)
	}
	return l, token
}

func TestNotifyStoresOnlyTheHashAndQueuesTheNotice(t *testing.T) {
	s, _ := pickupStore(t)
	ctx := context.Background()
	l, token := issue(t, s, LinkRequest{MessageID: "M1", Recipient: "Bob@Council.example"})
	if len(token) != LinkTokenLen || l.Recipient != "bob@council.example" || l.QueueID == "" {
		t.Fatalf("link %+v token %q", l, token)
	}
	if got := l.Expires.Sub(l.Created); got != DefaultLinkLifetime || l.MaxDownloads != DefaultLinkMaxDownloads {
		t.Fatalf("defaults: lifetime %v, downloads %d", got, l.MaxDownloads)
	}
	db := rawDB(t, s.opt.Path)
	secret := token[linkIDLen:]
	var dump bytes.Buffer
	rows, err := db.Query(`SELECT id, secret_hash, message_id, recipient, queue_id FROM pickup_links`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, msgID, rcpt, q string
		var h []byte
		rows.Scan(&id, &h, &msgID, &rcpt, &q)
		fmt.Fprintf(&dump, "%s %x %s %s %s", id, h, msgID, rcpt, q)
	}
	rows.Close()
	if bytes.Contains(dump.Bytes(), []byte(secret)) || !bytes.Contains(dump.Bytes(), []byte(l.ID)) {
		t.Fatalf("stored row holds the secret or lacks the ID: %s", dump.String())
	}
	if n := count(t, db, `SELECT count(*) FROM ledger_events WHERE type = 'notified' AND message_id = 'M1'
		AND json_extract(data, '$.link') = ? AND instr(event, ?) = 0`, l.ID, secret); n != 1 {
		t.Fatalf("notified events without the secret: %d", n)
	}
	if n := count(t, db, `SELECT count(*) FROM queue WHERE id = ? AND recipient = 'bob@council.example'`, l.QueueID); n != 1 {
		t.Fatalf("notification queued: %d", n)
	}
	got, err := s.OpenLink(ctx, token)
	if err != nil || got.ID != l.ID || got.Agency != "agency" || got.Received.IsZero() {
		t.Fatalf("OpenLink: %+v, %v", got, err)
	}
}

func TestOpenLinkRefusesWrongTokensAndChangesNothing(t *testing.T) {
	s, _ := pickupStore(t)
	ctx := context.Background()
	l, token := issue(t, s, LinkRequest{MessageID: "M1", Recipient: "bob@council.example"})
	flip := []byte(token)
	flip[len(flip)-2] ^= 1
	other := []byte(token)
	other[3] = '0' + (other[3]-'0'+1)%10
	for _, bad := range []string{"", "x", token[:LinkTokenLen-1], token + "A", string(flip), string(other), "M" + token[1:]} {
		if _, err := s.OpenLink(ctx, bad); !errors.Is(err, ErrLinkNotFound) {
			t.Errorf("OpenLink(%q) = %v, want ErrLinkNotFound", bad, err)
		}
	}
	for range 5 {
		if _, err := s.OpenLink(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	after, err := s.LinkByID(ctx, l.ID)
	if err != nil || after.Downloads != 0 || after.State != LinkActive || !after.Opened.IsZero() || after.Failures != 0 {
		t.Fatalf("opening changed the link: %+v %v", after, err)
	}
}

func TestIssueLinkRefusesAStranger(t *testing.T) {
	s, _ := pickupStore(t)
	_, err := s.Notify(context.Background(), LinkRequest{MessageID: "M1", Recipient: "mallory@evil.example"}, notice)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("link for a non-recipient: %v", err)
	}
	_, err = s.Notify(context.Background(), LinkRequest{MessageID: "NOPE", Recipient: "bob@council.example"}, notice)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("link for an unknown message: %v", err)
	}
	if n := count(t, rawDB(t, s.opt.Path), `SELECT count(*) FROM pickup_links`); n != 0 {
		t.Fatalf("%d links stored", n)
	}
}

func TestDownloadLimitHoldsUnderParallelDownloads(t *testing.T) {
	s, _ := pickupStore(t)
	ctx := context.Background()
	l, _ := issue(t, s, LinkRequest{MessageID: "M1", Recipient: "bob@council.example", MaxDownloads: 3})
	var ok, usedUp atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.RecordPickup(ctx, l.ID, Pickup{Recipient: "bob@council.example", Action: PickupDownload, Document: i%2 + 1, Digest: "ab"})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrLinkUsedUp):
				usedUp.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 3 || usedUp.Load() != 7 {
		t.Fatalf("downloads: %d ok, %d used up; want 3 and 7", ok.Load(), usedUp.Load())
	}
	if n := count(t, rawDB(t, s.opt.Path), `SELECT count(*) FROM ledger_events WHERE type = 'picked-up'`); n != 3 {
		t.Fatalf("picked-up events: %d", n)
	}
	// The page may still be viewed; another practitioner may do nothing.
	if err := s.RecordPickup(ctx, l.ID, Pickup{Recipient: "bob@council.example", Action: PickupView}); err != nil {
		t.Fatalf("view of a used-up link: %v", err)
	}
	if err := s.RecordPickup(ctx, l.ID, Pickup{Recipient: "carol@health.example", Action: PickupView}); !errors.Is(err, ErrLinkNotFound) {
		t.Fatalf("view by another practitioner: %v", err)
	}
}

func TestExpiryAndRevocation(t *testing.T) {
	s, clk := pickupStore(t)
	ctx := context.Background()
	short, _ := issue(t, s, LinkRequest{MessageID: "M1", Recipient: "bob@council.example", Lifetime: time.Hour})
	long, _ := issue(t, s, LinkRequest{MessageID: "M1", Recipient: "carol@health.example", Episode: "CAF-2026-000001"})
	clk.Add(time.Hour)
	got, _ := s.LinkByID(ctx, short.ID)
	if err := got.Usable(clk.Now()); !errors.Is(err, ErrLinkExpired) {
		t.Fatalf("Usable at expiry: %v", err)
	}
	if err := s.RecordPickup(ctx, short.ID, Pickup{Recipient: "bob@council.example", Action: PickupView}); !errors.Is(err, ErrLinkExpired) {
		t.Fatalf("view after expiry: %v", err)
	}
	if n, err := s.ExpireLinks(ctx); err != nil || n != 1 {
		t.Fatalf("ExpireLinks = %d, %v", n, err)
	}
	if n, _ := s.ExpireLinks(ctx); n != 0 {
		t.Fatalf("second ExpireLinks expired %d", n)
	}
	if err := s.RevokeLink(ctx, short.ID, "admin:root", "sent to the wrong person"); !errors.Is(err, ErrLinkExpired) {
		t.Fatalf("revoking an expired link: %v", err)
	}
	// Consent withdrawn for the episode: the carol link goes, inside the caller's transaction.
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.RevokeLinksForEpisode(ctx, tx, "CAF-2026-000001", "consent withdrawn")
	if err != nil || n != 1 {
		t.Fatalf("RevokeLinksForEpisode = %d, %v", n, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got, _ = s.LinkByID(ctx, long.ID)
	if got.State != LinkRevoked || got.EndedBy != RevokedByGateway || got.EndReason != "consent withdrawn" {
		t.Fatalf("after withdrawal: %+v", got)
	}
	if err := s.RevokeLink(ctx, long.ID, "admin:root", "again"); !errors.Is(err, ErrLinkRevoked) {
		t.Fatalf("second revocation: %v", err)
	}
	db := rawDB(t, s.opt.Path)
	if n := count(t, db, `SELECT count(*) FROM ledger_events WHERE type = 'expired'`); n != 1 {
		t.Fatalf("expired events %d", n)
	}
	if n := count(t, db, `SELECT count(*) FROM ledger_events WHERE type = 'revoked' AND json_extract(data, '$.reason') = 'consent withdrawn'`); n != 1 {
		t.Fatalf("revoked events %d", n)
	}
}

func TestRevokeByPersonAndByRecipient(t *testing.T) {
	s, _ := pickupStore(t)
	ctx := context.Background()
	a, _ := issue(t, s, LinkRequest{MessageID: "M1", Recipient: "bob@council.example"})
	b, _ := issue(t, s, LinkRequest{MessageID: "M1", Recipient: "bob@council.example"})
	c, _ := issue(t, s, LinkRequest{MessageID: "M1", Recipient: "carol@health.example"})
	if err := s.RevokeLink(ctx, a.ID, "", "no one"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("revocation without who: %v", err)
	}
	if err := s.RevokeLink(ctx, "LNOPE", "admin:root", "x"); !errors.Is(err, ErrLinkNotFound) {
		t.Fatalf("unknown link: %v", err)
	}
	if err := s.RevokeLink(ctx, a.ID, "alice@agency.example", "wrong recipient"); err != nil {
		t.Fatal(err)
	}
	n, err := s.RevokeLinksForRecipient(ctx, nil, "BOB@council.example", "directory entry disabled")
	if err != nil || n != 1 {
		t.Fatalf("RevokeLinksForRecipient = %d, %v (only b was still active)", n, err)
	}
	for id, want := range map[string]string{a.ID: LinkRevoked, b.ID: LinkRevoked, c.ID: LinkActive} {
		if l, _ := s.LinkByID(ctx, id); l.State != want {
			t.Errorf("%s: %s, want %s", id, l.State, want)
		}
	}
	list, err := s.ListLinks(ctx, LinkFilter{State: LinkRevoked})
	if err != nil || len(list) != 2 {
		t.Fatalf("ListLinks revoked: %d %v", len(list), err)
	}
}

func TestSignInCountersAndLockOut(t *testing.T) {
	s, _ := pickupStore(t)
	ctx := context.Background()
	l, _ := issue(t, s, LinkRequest{MessageID: "M1", Recipient: "bob@council.example"})
	fail := PickupSignIn{Link: l.ID, MessageID: "M1", User: "bob@council.example", Remote: "192.0.2.9", Reason: "bad-code", AccountLimit: 3}
	for i := 1; i <= 3; i++ {
		out, err := s.RecordPickupSignIn(ctx, fail)
		if err != nil || out.LinkFailures != i || out.AccountLocked != (i == 3) {
			t.Fatalf("failure %d: %+v %v", i, out, err)
		}
	}
	// A success does not lift an account lock; the administrator does.
	ok := fail
	ok.OK, ok.Reason = true, ""
	out, err := s.RecordPickupSignIn(ctx, ok)
	if err != nil || out.LinkFailures != 0 {
		t.Fatalf("success: %+v %v", out, err)
	}
	if locked, _ := s.AccountLocked(ctx, "bob@council.example"); !locked {
		t.Fatal("lock lifted by a success")
	}
	if lifted, err := s.UnlockAccount(ctx, "bob@council.example"); !lifted || err != nil {
		t.Fatalf("UnlockAccount: %v %v", lifted, err)
	}
	if locked, _ := s.AccountLocked(ctx, "bob@council.example"); locked {
		t.Fatal("still locked")
	}
	// A password typed as the user name is never recorded.
	if _, err := s.RecordPickupSignIn(ctx, PickupSignIn{User: "hunter2 secret", Reason: "bad-credentials", AccountLimit: 3}); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, s.opt.Path)
	if n := count(t, db, `SELECT count(*) FROM ledger_events WHERE instr(event, 'hunter2') > 0`); n != 0 {
		t.Fatal("a malformed user name reached the ledger")
	}
	if n := count(t, db, `SELECT count(*) FROM ledger_events WHERE type = 'signin-failed' AND json_extract(data, '$.via') = 'pickup'`); n != 4 {
		t.Fatalf("signin-failed events: %d", n)
	}
	got, _ := s.LinkByID(ctx, l.ID)
	if got.Opened.IsZero() {
		t.Fatal("a successful sign-in did not mark the link opened")
	}
}
