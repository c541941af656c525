// Tests of reading: tamper detection, row swapping, listing, Verify, read-only opening, wrong key.

package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
)

func acceptN(t *testing.T, s *Store, prefix string, n int) {
	t.Helper()
	for i := range n {
		if err := s.Accept(context.Background(), msg(fmt.Sprintf("%s%d", prefix, i), body(i))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTamperedCiphertextDetected(t *testing.T) {
	opt := testOpts(t)
	s := openTest(t, opt)
	acceptN(t, s, "t", 3)
	raw := rawDB(t, opt.Path)
	var blob []byte
	if err := raw.QueryRow(`SELECT content FROM messages WHERE id = 't1'`).Scan(&blob); err != nil {
		t.Fatal(err)
	}
	blob[len(blob)/2] ^= 0x01
	if _, err := raw.Exec(`UPDATE messages SET content = ? WHERE id = 't1'`, blob); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Message(context.Background(), "t1"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Message(tampered) = %v, want ErrCorrupt", err)
	}
	if _, err := s.Message(context.Background(), "t0"); err != nil {
		t.Fatalf("untouched message: %v", err)
	}
	rep, err := s.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Messages != 3 || rep.OK != 2 || !slices.Equal(rep.Failed, []string{"t1"}) {
		t.Fatalf("Verify = %+v", rep)
	}
}

func TestSwappedRowsDetected(t *testing.T) {
	opt := testOpts(t)
	s := openTest(t, opt)
	acceptN(t, s, "s", 2)
	raw := rawDB(t, opt.Path)
	// Move s0's sealed content (and nonce and digest, so only the ID binding can catch it) onto s1.
	_, err := raw.Exec(`UPDATE messages SET (content_nonce, content, digest, size) =
		(SELECT content_nonce, content, digest, size FROM messages WHERE id = 's0') WHERE id = 's1'`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Message(context.Background(), "s1"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Message(swapped) = %v, want ErrCorrupt", err)
	}
}

func TestTamperedDigestDetected(t *testing.T) {
	opt := testOpts(t)
	s := openTest(t, opt)
	acceptN(t, s, "h", 1)
	if _, err := rawDB(t, opt.Path).Exec(`UPDATE messages SET digest = replace(digest, substr(digest, 1, 1),
		CASE substr(digest, 1, 1) WHEN '0' THEN '1' ELSE '0' END) WHERE id = 'h0'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Message(context.Background(), "h0"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Message = %v, want ErrCorrupt", err)
	}
}

func TestMessageNotFound(t *testing.T) {
	s := openTest(t, testOpts(t))
	if _, err := s.Message(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

func TestListPages(t *testing.T) {
	s := openTest(t, testOpts(t))
	acceptN(t, s, "l", 5)
	var ids []string
	var after int64
	for {
		page, err := s.List(context.Background(), ListOptions{Limit: 2, After: after})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 2 {
			t.Fatalf("page of %d, limit 2", len(page))
		}
		for _, sum := range page {
			ids = append(ids, sum.ID)
			if len(sum.Recipients) != 2 || sum.Size != len(body(0)) || len(sum.Digest) != 64 || sum.Via != "submission" {
				t.Errorf("summary %+v", sum)
			}
		}
		after = page[len(page)-1].Seq
	}
	if !slices.Equal(ids, []string{"l0", "l1", "l2", "l3", "l4"}) {
		t.Fatalf("ids = %v", ids)
	}
}

func TestReadOnlyBesideWriter(t *testing.T) {
	opt := testOpts(t)
	s := openTest(t, opt)
	acceptN(t, s, "r", 2)
	ro, err := OpenReadOnly(context.Background(), opt.Path, opt.ContentKey)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	acceptN(t, s, "q", 1) // written after the reader opened
	got, err := ro.Message(context.Background(), "q0")
	if err != nil || !bytes.Equal(got.Content, body(0)) {
		t.Fatalf("read-only Message: %v", err)
	}
	if err := ro.Accept(context.Background(), msg("ro", body(1))); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("read-only Accept = %v, want ErrUnavailable", err)
	}
	if _, err := ro.rdb.Exec(`DELETE FROM recipients`); err == nil {
		t.Fatal("read-only pool accepted a write")
	}
}

func TestReadOnlyAfterDaemonStopped(t *testing.T) {
	opt := testOpts(t)
	s := openTest(t, opt)
	acceptN(t, s, "c", 2)
	s.Close()
	ro, err := OpenReadOnly(context.Background(), opt.Path, opt.ContentKey)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rep, err := ro.Verify(context.Background())
	if err != nil || rep.OK != 2 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

func TestReadOnlyMissingFile(t *testing.T) {
	opt := testOpts(t)
	if _, err := OpenReadOnly(context.Background(), opt.Path, opt.ContentKey); err == nil {
		t.Fatal("opened a missing database read-only")
	}
}

func TestWrongKeyRefused(t *testing.T) {
	opt := testOpts(t)
	s := openTest(t, opt)
	acceptN(t, s, "k", 1)
	s.Close()
	other := opt
	other.ContentKey = testKey(9)
	if _, err := Open(context.Background(), other); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with another key = %v, want ErrWrongKey", err)
	}
	if _, err := OpenReadOnly(context.Background(), opt.Path, other.ContentKey); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("OpenReadOnly with another key = %v, want ErrWrongKey", err)
	}
}

func TestVerifyManyPages(t *testing.T) {
	opt := testOpts(t)
	opt.MaxBatch = 200
	s := openTest(t, opt)
	errs := acceptAll(s, manyMessages("v", verifyPage*2+3, 10))
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	rep, err := s.Verify(context.Background())
	if err != nil || rep.Messages != verifyPage*2+3 || rep.OK != rep.Messages {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

// TestMessageContent: the content alone, as Message has it, with the same checks.
func TestMessageContent(t *testing.T) {
	ctx := context.Background()
	opt := testOpts(t)
	s := openTest(t, opt)
	if err := s.Accept(ctx, msg("m1", body(3))); err != nil {
		t.Fatal(err)
	}
	full, err := s.Message(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.MessageContent(ctx, "m1")
	if err != nil || !bytes.Equal(c, full.Content) {
		t.Fatalf("MessageContent = %d bytes, %v; Message has %d", len(c), err, len(full.Content))
	}
	if _, err := s.MessageContent(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing message: %v", err)
	}
	raw := rawDB(t, opt.Path)
	if _, err := raw.Exec(`UPDATE messages SET size = size + 1 WHERE id = 'm1'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MessageContent(ctx, "m1"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("size changed: %v, want ErrCorrupt", err)
	}
	// Content moved from another message does not authenticate under this one's ID.
	if err := s.Accept(ctx, msg("m2", body(4))); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE messages SET (size, content_nonce, content) =
		(SELECT size, content_nonce, content FROM messages WHERE id = 'm2') WHERE id = 'm1'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MessageContent(ctx, "m1"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("another message's content: %v, want ErrCorrupt", err)
	}
}
