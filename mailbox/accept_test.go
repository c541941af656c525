// Tests of Accept: round trip, durability, group commit, batch failure, duplicates, error
// classification, cancellation and closing.

package mailbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	s := openTest(t, testOpts(t))
	ctx := context.Background()
	m := msg("id-1", body(1))
	m.Recipients = []string{"bob@council.example", "carol@health.example", "bob@council.example"}
	if err := s.Accept(ctx, m); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	got, err := s.Message(ctx, "id-1")
	if err != nil {
		t.Fatalf("Message: %v", err)
	}
	if !bytes.Equal(got.Content, m.Content) {
		t.Errorf("content = %q, want %q", got.Content, m.Content)
	}
	want := []string{"bob@council.example", "carol@health.example"}
	if fmt.Sprint(got.Recipients) != fmt.Sprint(want) {
		t.Errorf("recipients = %v, want %v (deduplicated, in order)", got.Recipients, want)
	}
	if got.Sender != m.Sender || got.SenderDN != m.SenderDN || got.Agency != m.Agency || got.Via != m.Via ||
		got.RemoteAddr != m.RemoteAddr || !got.ReceivedAt.Equal(m.ReceivedAt) || got.Size != len(m.Content) ||
		got.Digest != fmt.Sprintf("%x", m.Digest) {
		t.Errorf("metadata mismatch: %+v", got.Summary)
	}
	if !got.AcceptedAt.Equal(s.opt.Now()) {
		t.Errorf("AcceptedAt = %v, want the injected clock %v", got.AcceptedAt, s.opt.Now())
	}
	if st := s.Stats(); st.Messages != 1 || st.Batches != 1 || st.Failed != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestContentEncryptedAtRest(t *testing.T) {
	opt := testOpts(t)
	s := openTest(t, opt)
	content := []byte("Subject: secret-subject\r\n\r\nchild-identifier-XYZ\r\n")
	if err := s.Accept(context.Background(), msg("id-enc", content)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	raw := rawDB(t, opt.Path)
	var blob []byte
	if err := raw.QueryRow(`SELECT content FROM messages WHERE id = 'id-enc'`).Scan(&blob); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, []byte("child-identifier")) || bytes.Contains(blob, []byte("secret-subject")) {
		t.Fatal("plaintext found in the content column")
	}
	if n := count(t, raw, `SELECT count(*) FROM ledger_events WHERE data LIKE '%secret%' OR data LIKE '%child%'`); n != 0 {
		t.Fatal("ledger data mentions content")
	}
}

func TestAcceptedLedgerEvent(t *testing.T) {
	opt := testOpts(t)
	s := openTest(t, opt)
	m := msg("id-led", body(2))
	if err := s.Accept(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	var typ, at, data string
	err := rawDB(t, opt.Path).QueryRow(`SELECT type, at, data FROM ledger_events WHERE message_id = 'id-led'`).Scan(&typ, &at, &data)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		t.Fatal(err)
	}
	if typ != EventAccepted || at != formatTime(s.opt.Now()) || d["digest"] != fmt.Sprintf("%x", m.Digest) ||
		d["sender"] != m.Sender || fmt.Sprint(d["recipients"]) != "[bob@council.example carol@health.example]" || d["size"] != float64(len(m.Content)) || d["via"] != "submission" {
		t.Errorf("event = %s %s %s", typ, at, data)
	}
	if strings.Contains(data, "assessment") {
		t.Error("ledger data contains the subject")
	}
}

func TestLedgerAppendOnly(t *testing.T) {
	opt := testOpts(t)
	s := openTest(t, opt)
	if err := s.Accept(context.Background(), msg("id-a", body(1))); err != nil {
		t.Fatal(err)
	}
	raw := rawDB(t, opt.Path)
	if _, err := raw.Exec(`UPDATE ledger_events SET type = 'x'`); err == nil {
		t.Error("UPDATE of ledger_events succeeded")
	}
	if _, err := raw.Exec(`DELETE FROM ledger_events`); err == nil {
		t.Error("DELETE of ledger_events succeeded")
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	opt := testOpts(t)
	s := openTest(t, opt)
	for i := range 20 {
		if err := s.Accept(context.Background(), msg(fmt.Sprint("d-", i), body(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, opt)
	for i := range 20 {
		got, err := s2.Message(context.Background(), fmt.Sprint("d-", i))
		if err != nil || !bytes.Equal(got.Content, body(i)) {
			t.Fatalf("message %d after reopen: %v", i, err)
		}
	}
	rep, err := s2.Verify(context.Background())
	if err != nil || rep.Messages != 20 || rep.OK != 20 || len(rep.Failed) != 0 || rep.SQLiteCheck != "ok" {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

// acceptAll runs Accept for every message concurrently and returns the errors by index.
func acceptAll(s *Store, ms []*Incoming) []error {
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() { errs[i] = s.Accept(context.Background(), m) })
	}
	wg.Wait()
	return errs
}

func manyMessages(prefix string, n, size int) []*Incoming {
	ms := make([]*Incoming, n)
	for i := range ms {
		ms[i] = msg(fmt.Sprintf("%s-%d", prefix, i), bytes.Repeat([]byte{byte('a' + i%26)}, size))
	}
	return ms
}

func TestGroupCommitFillsBatches(t *testing.T) {
	opt := testOpts(t)
	opt.MaxBatch = 16
	opt.MaxDelay = 5 * time.Second // batches close by filling up, long before this
	s := openTest(t, opt)
	for i, err := range acceptAll(s, manyMessages("g", 64, 100)) {
		if err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
	}
	if st := s.Stats(); st.Batches != 4 || st.Messages != 64 {
		t.Fatalf("Stats = %+v, want 4 batches of 16", st)
	}
}

// TestGroupCommitBatchBytes: a batch closes at MaxBatchBytes of content, however many accepts wait.
func TestGroupCommitBatchBytes(t *testing.T) {
	opt := testOpts(t)
	opt.MaxBatch = 16
	opt.MaxBatchBytes = 3000 // two messages of 2000 bytes (sealed 2016)
	opt.MaxDelay = 5 * time.Second
	var mu sync.Mutex
	var sizes []int
	opt.testBatchHook = func(n int) {
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
	}
	s := openTest(t, opt)
	for i, err := range acceptAll(s, manyMessages("bytes", 12, 2000)) {
		if err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
	}
	if st := s.Stats(); st.Batches != 6 || st.Messages != 12 {
		t.Fatalf("Stats = %+v (batch sizes %v), want 6 batches of 2", st, sizes)
	}
}

func TestGroupCommitBatchesWhileWriterBusy(t *testing.T) {
	opt := testOpts(t)
	var once sync.Once
	var mu sync.Mutex
	var sizes []int
	opt.testBatchHook = func(n int) {
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
		once.Do(func() { time.Sleep(200 * time.Millisecond) }) // the others queue up meanwhile
	}
	s := openTest(t, opt)
	for i, err := range acceptAll(s, manyMessages("b", 64, 100)) {
		if err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
	}
	st := s.Stats()
	if st.Messages != 64 || st.Batches > 4 {
		t.Fatalf("Stats = %+v (batch sizes %v), want 64 messages in a few batches", st, sizes)
	}
	if n := count(t, s.rdb, `SELECT count(*) FROM messages`); n != 64 {
		t.Fatalf("%d messages stored", n)
	}
}

// fillDisk caps the writer connection's database at its current size, so the next insert that needs a
// new page fails with SQLITE_FULL.
func fillDisk(t *testing.T, s *Store) {
	t.Helper()
	var pages int
	if err := s.wdb.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
}

func TestFullIsClassified(t *testing.T) {
	s := openTest(t, testOpts(t))
	fillDisk(t, s)
	err := s.Accept(context.Background(), msg("full-1", bytes.Repeat([]byte("x"), 20000)))
	if !errors.Is(err, ErrFull) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrFull", err)
	}
	if _, err := s.Message(context.Background(), "full-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("message stored after ErrFull: %v", err)
	}
}

func TestBatchFailureFailsEveryMemberAndStoresNone(t *testing.T) {
	opt := testOpts(t)
	opt.MaxBatch = 8
	opt.MaxDelay = 5 * time.Second
	var sizes []int
	opt.testBatchHook = func(n int) { sizes = append(sizes, n) }
	s := openTest(t, opt)
	for _, err := range acceptAll(s, manyMessages("before", 8, 100)) { // full batches: no MaxDelay wait
		if err != nil {
			t.Fatal(err)
		}
	}
	fillDisk(t, s)
	for i, err := range acceptAll(s, manyMessages("f", 8, 6000)) {
		if !errors.Is(err, ErrFull) {
			t.Errorf("accept %d: err = %v, want ErrFull", i, err)
		}
	}
	if len(sizes) != 2 || sizes[1] != 8 {
		t.Fatalf("batch sizes %v, want the 8 in one batch", sizes)
	}
	if n := count(t, s.rdb, `SELECT count(*) FROM messages`); n != 8 {
		t.Errorf("%d messages stored, want only the 8 from before", n)
	}
	if n := count(t, s.rdb, `SELECT count(*) FROM ledger_events`) + count(t, s.rdb, `SELECT count(*) FROM recipients`); n != 8+16 {
		t.Errorf("ledger+recipient rows = %d, want 24 (from before)", n)
	}
	if st := s.Stats(); st.Failed != 8 || st.Messages != 8 {
		t.Errorf("Stats = %+v", st)
	}
	// Space comes back: the store recovers without a restart.
	if _, err := s.wdb.Exec(`PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	for _, err := range acceptAll(s, manyMessages("after", 8, 100)) {
		if err != nil {
			t.Fatalf("accept after space freed: %v", err)
		}
	}
}

func TestDuplicateID(t *testing.T) {
	s := openTest(t, testOpts(t))
	ctx := context.Background()
	if err := s.Accept(ctx, msg("dup", []byte("first\r\n"))); err != nil {
		t.Fatal(err)
	}
	err := s.Accept(ctx, msg("dup", []byte("second\r\n")))
	if !errors.Is(err, ErrDuplicate) {
		t.Fatalf("err = %v, want ErrDuplicate", err)
	}
	got, err := s.Message(ctx, "dup")
	if err != nil || string(got.Content) != "first\r\n" {
		t.Fatalf("original changed: %q %v", got.Content, err)
	}
}

func TestDuplicateInBatchFailsOnlyItself(t *testing.T) {
	opt := testOpts(t)
	opt.MaxBatch = 5
	opt.MaxDelay = 5 * time.Second
	var sizes []int
	opt.testBatchHook = func(n int) { sizes = append(sizes, n) }
	s := openTest(t, opt)
	ms := manyMessages("m", 5, 50)
	ms[4] = msg(ms[0].ID, []byte("same ID, other content\r\n"))
	errs := acceptAll(s, ms)
	dups := 0
	for _, err := range errs {
		switch {
		case errors.Is(err, ErrDuplicate):
			dups++
		case err != nil:
			t.Errorf("unexpected error %v", err)
		}
	}
	if dups != 1 || sizes[0] != 5 {
		t.Fatalf("errors %v, batch sizes %v: want one ErrDuplicate from a batch of 5", errs, sizes)
	}
	if n := count(t, s.rdb, `SELECT count(*) FROM messages`); n != 4 {
		t.Fatalf("%d messages stored, want 4", n)
	}
}

func TestInvalidRefused(t *testing.T) {
	s := openTest(t, testOpts(t))
	noRcpt := msg("x1", body(1))
	noRcpt.Recipients = []string{""}
	badDigest := msg("x2", body(2))
	badDigest.Digest[0] ^= 1
	noID := msg("", body(3))
	for _, m := range []*Incoming{noRcpt, badDigest, noID, nil} {
		if err := s.Accept(context.Background(), m); !errors.Is(err, ErrInvalid) {
			t.Errorf("Accept(%v) = %v, want ErrInvalid", m, err)
		}
	}
	if n := count(t, s.rdb, `SELECT count(*) FROM messages`); n != 0 {
		t.Fatalf("%d stored", n)
	}
}

// TestDigestTakenOrChecked: a zero digest is taken by the store from the content it seals (and read
// back intact); a given one is checked, on the small path and on the large one that hashes beside
// the seal.
func TestDigestTakenOrChecked(t *testing.T) {
	s := openTest(t, testOpts(t))
	ctx := context.Background()
	for _, size := range []int{100, parallelSealBytes + 1} {
		content := bytes.Repeat([]byte("x"), size)
		m := msg(fmt.Sprint("taken-", size), content)
		m.Digest = [32]byte{}
		if err := s.Accept(ctx, m); err != nil {
			t.Fatalf("%d bytes, no digest: %v", size, err)
		}
		if m.Digest != sha256.Sum256(content) {
			t.Fatalf("%d bytes: Incoming.Digest not set to the content's", size)
		}
		got, err := s.Message(ctx, m.ID)
		if err != nil || !bytes.Equal(got.Content, content) || got.Digest != hex.EncodeToString(m.Digest[:]) {
			t.Fatalf("%d bytes read back: %v", size, err)
		}
		bad := msg(fmt.Sprint("bad-", size), content)
		bad.Digest[31] ^= 1
		if err := s.Accept(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%d bytes, wrong digest: %v, want ErrInvalid", size, err)
		}
	}
	if n := count(t, s.rdb, `SELECT count(*) FROM messages`); n != 2 {
		t.Fatalf("%d stored, want the 2 without a digest", n)
	}
}

func TestBusyIsUnavailable(t *testing.T) {
	opt := testOpts(t)
	opt.BusyTimeout = 50 * time.Millisecond
	s := openTest(t, opt)
	conn, err := rawDB(t, opt.Path).Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	err = s.Accept(context.Background(), msg("busy", body(1)))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if _, err := conn.ExecContext(context.Background(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if err := s.Accept(context.Background(), msg("busy", body(1))); err != nil {
		t.Fatalf("after the lock is released: %v", err)
	}
}

func TestClosedIsUnavailable(t *testing.T) {
	s := openTest(t, testOpts(t))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Accept(context.Background(), msg("late", body(1))); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// blockingHook returns a batch hook that blocks the first batch until release is closed, and a channel
// that is closed once the writer is inside that first batch.
func blockingHook() (hook func(int), entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	return func(int) {
		once.Do(func() {
			close(entered)
			<-release
		})
	}, entered, release
}

func TestCancelBeforeTakenIsNotWritten(t *testing.T) {
	opt := testOpts(t)
	hook, entered, release := blockingHook()
	opt.testBatchHook = hook
	s := openTest(t, opt)
	first := make(chan error, 1)
	go func() { first <- s.Accept(context.Background(), msg("first", body(1))) }()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() { second <- s.Accept(ctx, msg("second", body(2))) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Fatalf("second = %v, want context.Canceled", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Message(context.Background(), "second"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancelled message was written: %v", err)
	}
}

func TestCancelAfterTakenWaitsForCommit(t *testing.T) {
	opt := testOpts(t)
	hook, entered, release := blockingHook()
	opt.testBatchHook = hook
	s := openTest(t, opt)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- s.Accept(ctx, msg("taken", body(1))) }()
	<-entered
	cancel()
	select {
	case err := <-res:
		t.Fatalf("Accept returned %v before its batch committed", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-res; err != nil {
		t.Fatalf("Accept = %v, want nil (the batch committed)", err)
	}
	if _, err := s.Message(context.Background(), "taken"); err != nil {
		t.Fatal(err)
	}
}

func TestCloseDrainsWriter(t *testing.T) {
	opt := testOpts(t)
	hook, entered, release := blockingHook()
	opt.testBatchHook = hook
	s := openTest(t, opt)
	first := make(chan error, 1)
	go func() { first <- s.Accept(context.Background(), msg("in-flight", body(1))) }()
	<-entered
	second := make(chan error, 1)
	go func() { second <- s.Accept(context.Background(), msg("waiting", body(2))) }()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	<-s.closed
	if err := <-second; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("waiting accept = %v, want ErrUnavailable", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("in-flight accept = %v, want nil", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, Options{Path: opt.Path, ContentKey: opt.ContentKey})
	if _, err := s2.Message(context.Background(), "in-flight"); err != nil {
		t.Fatalf("in-flight message lost: %v", err)
	}
	if _, err := s2.Message(context.Background(), "waiting"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused message stored: %v", err)
	}
}

// TestPrepareAccept: a message prepared ahead (digest and seal in the background) is stored as it was
// when prepared, with its decisions; one abandoned after Wait is not stored; an invalid one is refused
// at AcceptPrepared.
func TestPrepareAccept(t *testing.T) {
	s := openTest(t, testOpts(t))
	ctx := context.Background()
	content := bytes.Repeat([]byte("prepared "), 20000)
	m := msg("prep-1", content)
	m.Digest = [32]byte{}
	p := s.PrepareAccept(m)
	m.ID, m.Sender = "changed", "someone@else.example" // the prepared copy keeps what was given
	if err := s.AcceptPrepared(ctx, p, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Message(ctx, "prep-1")
	if err != nil || !bytes.Equal(got.Content, content) || got.Sender != "alice@agency.example" {
		t.Fatalf("read back: %+v %v", got, err)
	}
	sum := sha256.Sum256(content)
	if got.Digest != hex.EncodeToString(sum[:]) {
		t.Fatalf("digest %s", got.Digest)
	}
	s.PrepareAccept(msg("prep-abandoned", body(2))).Wait()
	bad := msg("prep-bad", body(3))
	bad.Recipients = nil
	if err := s.AcceptPrepared(ctx, s.PrepareAccept(bad), nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid prepared: %v, want ErrInvalid", err)
	}
	if n := count(t, s.rdb, `SELECT count(*) FROM messages`); n != 1 {
		t.Fatalf("%d stored, want 1", n)
	}
}
