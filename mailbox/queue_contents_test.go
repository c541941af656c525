package mailbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
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

	// Put the store back to schema 10: content in the queue rows, no queue_contents table, 0004's indexes.
	raw := rawDB(t, opt.Path)
	for _, q := range []string{
		`ALTER TABLE queue ADD COLUMN content_nonce BLOB`,
		`ALTER TABLE queue ADD COLUMN content BLOB`,
		`UPDATE queue SET (content_nonce, content) = (SELECT nonce, content FROM queue_contents c WHERE c.id = queue.id)`,
		`DROP TABLE queue_contents`,
		`DROP INDEX queue_header_id`, // and 0012's indexes
		`CREATE INDEX queue_message ON queue(message_id)`,
		`DROP TABLE certificates`, // and 0013's table
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
// ErrCorrupt (so the relay fails it), never sent empty; the others claimed with it (their contents
// read in the same query) keep theirs.
func TestQueueClaimMissingContentIsCorrupt(t *testing.T) {
	s, opt := qStore(t)
	items := []*Outbound{qOutbound("bob@council.example"), qOutbound("carol@council.example"), qOutbound("dan@council.example")}
	ids := qEnqueue(t, s, items...)
	raw := rawDB(t, opt.Path)
	if _, err := raw.Exec(`DELETE FROM queue_contents WHERE id = ?`, ids[1]); err != nil {
		t.Fatal(err)
	}
	cs := qClaim(t, s, ClaimOptions{Limit: 5, Now: opt.Now()})
	if len(cs) != 3 {
		t.Fatalf("claimed %d entries, want 3", len(cs))
	}
	for _, c := range cs {
		i := slices.Index(ids, c.ID)
		if i == 1 {
			if c.Content != nil || !errors.Is(c.ContentErr, ErrCorrupt) {
				t.Fatalf("claim of an entry without content: %+v", c)
			}
			continue
		}
		if c.ContentErr != nil || !bytes.Equal(c.Content, items[i].Content) {
			t.Fatalf("claim of entry %d beside it: %q, %v", i, c.Content, c.ContentErr)
		}
	}
}

// TestQueueRecipe: a package copy queued by recipe is claimed with its recipe (no content), stored
// encrypted and bound to its entry and form, and purged when delivered.
func TestQueueRecipe(t *testing.T) {
	ctx := context.Background()
	s, opt := qStore(t)
	recipe := []byte(`{"sections":["health"],"secret-looking":"recipe bytes"}`)
	ids, err := s.Enqueue(ctx, &Outbound{MessageID: "m1", From: "alice@agency.example", Recipient: "bob@council.example",
		Recipe: recipe, HeaderMessageID: "<m1.abc@gw.example>", Size: 4096})
	if err != nil {
		t.Fatal(err)
	}
	copyIDs := qEnqueue(t, s, qOutbound("carol@health.example"))
	raw := rawDB(t, opt.Path)
	if n := count(t, raw, `SELECT count(*) FROM queue_contents WHERE instr(content, 'recipe bytes') > 0`); n != 0 {
		t.Fatalf("%d recipes stored in plaintext", n)
	}
	e := qEntry(t, s, ids[0])
	if e.HeaderMessageID != "<m1.abc@gw.example>" || e.Size != 4096 || e.Domain != "council.example" {
		t.Fatalf("entry = %+v", e)
	}
	if c, err := s.QueueContent(ctx, ids[0]); err != nil || c != nil {
		t.Fatalf("QueueContent of a recipe entry = %q, %v; want nil (built when sent)", c, err)
	}
	cs := qClaim(t, s, ClaimOptions{Limit: 5, Now: opt.Now()})
	var got *Claimed
	for _, c := range cs {
		if c.ID == ids[0] {
			got = c
		}
	}
	if got == nil || got.ContentErr != nil || got.Content != nil || !bytes.Equal(got.Recipe, recipe) {
		t.Fatalf("claimed recipe entry: %+v", got)
	}
	if err := s.Done(ctx, got.Lease, Outcome{At: opt.Now(), Host: "mx.council.example", Answer: "250 ok"}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, raw, `SELECT count(*) FROM queue_contents WHERE id = ?`, ids[0]); n != 0 {
		t.Fatalf("delivered recipe entry's row still stored")
	}

	// A copy's content moved into a recipe's row (or the other way) does not authenticate.
	ids2, err := s.Enqueue(ctx, &Outbound{MessageID: "m1", From: "alice@agency.example", Recipient: "dave@council.example",
		Recipe: recipe, HeaderMessageID: "<m1.def@gw.example>", Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE queue_contents SET form = 'copy' WHERE id = ?`, ids2[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE queue_contents SET form = 'recipe' WHERE id = ?`, copyIDs[0]); err != nil {
		t.Fatal(err)
	}
	cs = qClaim(t, s, ClaimOptions{Limit: 5, Now: opt.Now().Add(time.Hour)})
	if len(cs) != 2 {
		t.Fatalf("claimed %d", len(cs))
	}
	for _, c := range cs {
		if !errors.Is(c.ContentErr, ErrCorrupt) || c.Content != nil || c.Recipe != nil {
			t.Errorf("%s with its form changed: content %q, recipe %q, err %v", c.ID, c.Content, c.Recipe, c.ContentErr)
		}
	}
}

// TestQueueRecipeRefused: recipes that could not be built, sent or reported on are refused.
func TestQueueRecipeRefused(t *testing.T) {
	s, _ := qStore(t)
	ok := func() *Outbound {
		return &Outbound{MessageID: "m1", From: "alice@agency.example", Recipient: "bob@council.example",
			Recipe: []byte("r"), HeaderMessageID: "<m1.abc@gw.example>", Size: 1}
	}
	for name, change := range map[string]func(*Outbound){
		"with content":       func(o *Outbound) { o.Content = []byte("Message-ID: <x@y>\r\n\r\nx") },
		"a DSN":              func(o *Outbound) { o.Kind, o.From, o.About = KindDSN, "", "Q/failed" },
		"no size":            func(o *Outbound) { o.Size = 0 },
		"no Message-ID":      func(o *Outbound) { o.HeaderMessageID = "" },
		"Message-ID with LF": func(o *Outbound) { o.HeaderMessageID = "<a\n@b>" },
		"bad recipient":      func(o *Outbound) { o.Recipient = "bob" },
		"empty certificate":  func(o *Outbound) { o.Certificates = [][]byte{{}} },
	} {
		o := ok()
		change(o)
		if _, err := s.Enqueue(context.Background(), o); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Enqueue = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := s.Enqueue(context.Background(), ok()); err != nil {
		t.Fatalf("the good recipe: %v", err)
	}
	c := qOutbound("carol@health.example")
	c.Certificates = [][]byte{[]byte("cert")}
	if _, err := s.Enqueue(context.Background(), c); !errors.Is(err, ErrInvalid) {
		t.Errorf("certificates with a copy's content: Enqueue = %v, want ErrInvalid", err)
	}
}

// TestRecipeCertificates: the certificates a recipe names are stored once each, read back by their
// SHA-256, and one not stored, or whose stored bytes were changed, is ErrCorrupt.
func TestRecipeCertificates(t *testing.T) {
	ctx := context.Background()
	s, opt := qStore(t)
	a, b := []byte("certificate A (DER)"), []byte("certificate B (DER)")
	for i, rcpt := range []string{"bob@council.example", "dave@council.example"} {
		_, err := s.Enqueue(ctx, &Outbound{MessageID: "m1", From: "alice@agency.example", Recipient: rcpt,
			Recipe: []byte("r"), HeaderMessageID: fmt.Sprintf("<m1.%d@gw.example>", i), Size: 1, Certificates: [][]byte{a, b}})
		if err != nil {
			t.Fatal(err)
		}
	}
	raw := rawDB(t, opt.Path)
	if n := count(t, raw, `SELECT count(*) FROM certificates`); n != 2 {
		t.Fatalf("%d certificates stored for two entries naming the same two", n)
	}
	for _, der := range [][]byte{a, b} {
		sum := sha256.Sum256(der)
		if got, err := s.Certificate(ctx, sum[:]); err != nil || !bytes.Equal(got, der) {
			t.Fatalf("Certificate(%x) = %q, %v", sum, got, err)
		}
	}
	none := sha256.Sum256([]byte("never stored"))
	if _, err := s.Certificate(ctx, none[:]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a certificate not stored: %v, want ErrCorrupt", err)
	}
	sum := sha256.Sum256(a)
	if _, err := raw.Exec(`UPDATE certificates SET der = ? WHERE sha256 = ?`, []byte("certificate X (DER)"), sum[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Certificate(ctx, sum[:]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a changed certificate: %v, want ErrCorrupt", err)
	}
}

// TestOneAppenderPerTransaction: the events of one transaction (a group of outcomes, written again
// with savepoints after a refusal) extend the ledger from one appender, and the ledger verifies with
// each event once.
func TestOneAppenderPerTransaction(t *testing.T) {
	s, opt := qStore(t)
	ctx := context.Background()
	var outs []*Outbound
	for _, r := range []string{"a", "b", "c", "d", "e", "f"} {
		outs = append(outs, qOutbound(r+"@council.example"))
	}
	ids := qEnqueue(t, s, outs...)
	cs := qClaim(t, s, ClaimOptions{Domain: "council.example", Limit: 10, Now: qT0})
	if len(cs) != len(ids) {
		t.Fatalf("claimed %d", len(cs))
	}
	var results []QueueResult
	for i, c := range cs {
		l := c.Lease
		if i == 3 {
			l.Token = 99 // refused: the whole group is written again with savepoints
		}
		results = append(results, QueueResult{Lease: l, State: QueueDelivered, Outcome: Outcome{At: qT0, Answer: "250 ok"}})
	}
	errs, err := s.RecordOutcomes(ctx, results)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if (i == 3) != errors.Is(e, ErrLeaseLost) || (i != 3 && e != nil) {
			t.Fatalf("errs = %v", errs)
		}
	}
	for i, c := range cs {
		want := "queued,relayed"
		if i == 3 {
			want = "queued"
		}
		if got := strings.Join(qEvents(t, s, c.ID), ","); got != want {
			t.Errorf("%s: events %s, want %s", c.ID, got, want)
		}
	}
	s.Close()
	verifyLedger(t, opt)
}
