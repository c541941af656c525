package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"
)

// writerSynchronous is the writer connection's synchronous setting (2 = FULL, 1 = NORMAL).
func writerSynchronous(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.wdb.QueryRow(`PRAGMA synchronous`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLazyTransactionsHandBackAFullConnection: a lazy transaction runs with synchronous=NORMAL, and the
// writer connection is back at FULL afterwards, when it failed too, so no durable commit ever runs on a
// connection that does not wait for the disk; durable ones run at FULL.
func TestLazyTransactionsHandBackAFullConnection(t *testing.T) {
	s, _ := qStore(t)
	ctx := context.Background()
	syncIn := func(tx *sql.Tx) int {
		var n int
		if err := tx.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var lazy, durable int
	if err := s.lazyTx(ctx, func(tx *sql.Tx) error { lazy = syncIn(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	if lazy != 1 || writerSynchronous(t, s) != 2 {
		t.Fatalf("lazy transaction ran at synchronous=%d (want 1), left the connection at %d (want 2)", lazy, writerSynchronous(t, s))
	}
	boom := errors.New("boom")
	if err := s.lazyTx(ctx, func(tx *sql.Tx) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failed lazy transaction: %v", err)
	}
	if n := writerSynchronous(t, s); n != 2 {
		t.Fatalf("after a failed lazy transaction the connection runs synchronous=%d, want 2", n)
	}
	if err := s.queueTx(ctx, func(tx *sql.Tx) error { durable = syncIn(tx); return nil }); err != nil || durable != 2 {
		t.Fatalf("durable transaction ran at synchronous=%d (%v), want 2", durable, err)
	}
	// The relay's path: a claim and a plain outcome.
	qEnqueue(t, s, qOutbound("bob@council.example"))
	cs := qClaim(t, s, ClaimOptions{Now: time.Now(), Limit: 5})
	if len(cs) != 1 {
		t.Fatalf("claimed %d entries, want 1", len(cs))
	}
	errs, err := s.RecordOutcomes(ctx, []QueueResult{{Lease: cs[0].Lease, State: QueueDelivered, Outcome: Outcome{At: time.Now(), Answer: "250 ok"}}})
	if err != nil || errs[0] != nil {
		t.Fatalf("RecordOutcomes: %v %v", err, errs)
	}
	if n := writerSynchronous(t, s); n != 2 {
		t.Fatalf("after a claim and an outcome the connection runs synchronous=%d, want 2", n)
	}
	if e, err := s.QueueGet(ctx, cs[0].ID); err != nil || e.State != QueueDelivered {
		t.Fatalf("entry after the outcome: %+v, %v", e, err)
	}
}
