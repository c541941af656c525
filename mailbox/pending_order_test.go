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
	rows, err := s.rdb.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+pendingDeliveriesQuery, StatePending, 64)
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
	p := strings.Join(plan, "\n")
	if strings.Contains(p, "TEMP B-TREE") || !strings.Contains(p, "recipients_pending") {
		t.Errorf("query plan:\n%s", p)
	}
}
