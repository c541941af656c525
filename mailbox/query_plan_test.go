package mailbox

import (
	"context"
	"strings"
	"testing"
)

// TestPendingDeliveriesUseTheIndex: taking a round's pending recipients walks an index in acceptance
// order and stops at the limit, instead of sorting every pending recipient (which grew with a backlog).
func TestPendingDeliveriesUseTheIndex(t *testing.T) {
	s := openTest(t, testOpts(t))
	p := queryPlan(t, s, pendingDeliveriesQuery, StatePending, 64)
	if strings.Contains(p, "TEMP B-TREE") || !strings.Contains(p, "recipients_pending") {
		t.Errorf("query plan:\n%s", p)
	}
}

// TestQueueLookUpsUseIndexes: a read receipt finds its copy by Message-ID through an index, not by
// scanning the queue (which keeps every entry ever sent), and the look-ups by message ID use the
// UNIQUE index that starts with it.
func TestQueueLookUpsUseIndexes(t *testing.T) {
	s := openTest(t, testOpts(t))
	p := queryPlan(t, s, packageSentToQueueQuery, "<m.x@gw>", "bob@example.org")
	if !strings.Contains(p, "USING INDEX queue_header_id") {
		t.Errorf("a read receipt's look-up by Message-ID:\n%s", p)
	}
	p = queryPlan(t, s, `SELECT recipient FROM queue WHERE message_id = ? AND kind = 'message'`, "m1")
	if !strings.Contains(p, "SEARCH queue USING COVERING INDEX sqlite_autoindex_queue_") || !strings.Contains(p, "(message_id=?)") {
		t.Errorf("a look-up by message ID:\n%s", p)
	}
}

// queryPlan is SQLite's plan for q, its lines joined.
func queryPlan(t *testing.T, s *Store, q string, args ...any) string {
	t.Helper()
	rows, err := s.rdb.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}
