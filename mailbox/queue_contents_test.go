package mailbox

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// TestQueueContentsMigration: a version-10 store, whose queue rows hold their content, is migrated to
// the content table of its own (0011) with every entry still readable and sendable, and its
// content columns gone from the queue.
func TestQueueContentsMigration(t *testing.T) {
	ctx := context.Background()
	s, opt := qStore(t)
	ids := qEnqueue(t, s, qOutbound("bob@council.example"), qOutbound("carol@health.example"))
	want := map[string][]byte{}
	for _, id := range ids {
		c, err := s.QueueContent(ctx, id)
		if err != nil || c == nil {
			t.Fatalf("QueueContent(%s) = %q, %v", id, c, err)
		}
		want[id] = c
	}
	s.Close()

	// Put the store back to schema 10: content in the queue rows, no queue_contents table.
	raw := rawDB(t, opt.Path)
	for _, q := range []string{
		`ALTER TABLE queue ADD COLUMN content_nonce BLOB`,
		`ALTER TABLE queue ADD COLUMN content BLOB`,
		`UPDATE queue SET (content_nonce, content) = (SELECT nonce, content FROM queue_contents c WHERE c.id = queue.id)`,
		`DROP TABLE queue_contents`,
		`PRAGMA user_version = 10`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	s = openTest(t, opt)
	for _, id := range ids {
		c, err := s.QueueContent(ctx, id)
		if err != nil || !bytes.Equal(c, want[id]) {
			t.Fatalf("after the migration, QueueContent(%s) = %q, %v; want %q", id, c, err, want[id])
		}
	}
	cs := qClaim(t, s, ClaimOptions{Limit: 5, Now: opt.Now()})
	if len(cs) != 2 {
		t.Fatalf("claimed %d after the migration", len(cs))
	}
	for _, c := range cs {
		if c.ContentErr != nil || !bytes.Equal(c.Content, want[c.ID]) {
			t.Fatalf("claimed %s: %q, %v", c.ID, c.Content, c.ContentErr)
		}
	}
	raw = rawDB(t, opt.Path)
	if n := count(t, raw, `SELECT count(*) FROM pragma_table_info('queue') WHERE name LIKE 'content%'`); n != 0 {
		t.Fatalf("queue still has %d content columns", n)
	}
}

// TestQueueClaimMissingContentIsCorrupt: an entry whose content row is gone is claimed with
// ErrCorrupt (so the relay fails it), never sent empty.
func TestQueueClaimMissingContentIsCorrupt(t *testing.T) {
	s, opt := qStore(t)
	ids := qEnqueue(t, s, qOutbound("bob@council.example"))
	raw := rawDB(t, opt.Path)
	if _, err := raw.Exec(`DELETE FROM queue_contents WHERE id = ?`, ids[0]); err != nil {
		t.Fatal(err)
	}
	cs := qClaim(t, s, ClaimOptions{Limit: 5, Now: opt.Now()})
	if len(cs) != 1 || cs[0].Content != nil || !errors.Is(cs[0].ContentErr, ErrCorrupt) {
		t.Fatalf("claim of an entry without content: %+v", cs)
	}
}
