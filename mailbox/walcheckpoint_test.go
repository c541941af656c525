package mailbox

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"
)

// TestWALCheckpointInBackground: the writer's commits leave the checkpoint to the background
// checkpointer (the write connection's automatic checkpoint is only the 64 MiB backstop), and the
// checkpointer copies the log so that it restarts: after 12 MiB of accepts and a checkpoint begun after them,
// the next commit finds the log emptied.
func TestWALCheckpointInBackground(t *testing.T) {
	s := openTest(t, testOpts(t))
	ctx := context.Background()
	var pages int
	if err := s.wdb.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&pages); err != nil || pages != writerAutoCheckpointPages {
		t.Fatalf("writer wal_autocheckpoint = %d (%v), want %d", pages, err, writerAutoCheckpointPages)
	}
	content := bytes.Repeat([]byte("0123456789abcdef"), (1<<20)/16)
	for i := range 12 {
		if err := s.Accept(ctx, msg(fmt.Sprint("big-", i), content)); err != nil {
			t.Fatal(err)
		}
	}
	// Two runs that end after the last commit: the second began after it, so it copied every page.
	after := s.Stats().WALCheckpoints
	for deadline := time.Now().Add(10 * time.Second); s.Stats().WALCheckpoints < after+2; {
		if time.Now().After(deadline) {
			t.Fatal("no background checkpoint within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Accept(ctx, msg("small", body(1))); err != nil { // restarts the log
		t.Fatal(err)
	}
	var busy, frames, copied int
	if err := rawDB(t, s.opt.Path).QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
		t.Fatal(err)
	}
	if frames > 100 {
		t.Fatalf("the log holds %d frames after a checkpoint and a small commit; want it restarted (12 MiB is over 3000)", frames)
	}
	for i := range 12 {
		if got, err := s.Message(ctx, fmt.Sprint("big-", i)); err != nil || !bytes.Equal(got.Content, content) {
			t.Fatalf("big-%d read back: %v", i, err)
		}
	}
}
