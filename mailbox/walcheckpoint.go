// The background WAL checkpointer. Every commit appends to the write-ahead log and fsyncs it: that is
// the durable commit. Copying the log's pages into the database file (the checkpoint) is not needed for
// durability, yet SQLite's automatic checkpoint does it inside the commit that crosses 1000 pages, so
// one accept in four of 1 MiB waited for 4 MiB more of writes and a second fsync before its 250.
//
// Here the copying is done by a goroutine on a connection of its own, beside the writer: PASSIVE
// checkpoints, woken after every walKickBytes of content the writer commits and every walTick (for the
// writes that do not pass through the writer goroutine: delivery, IMAP, pickup, the API). A checkpoint
// that runs beside commits cannot finish the log (the commits keep adding to it), and SQLite restarts
// the log from its beginning only when a write finds every frame copied; a log that never restarts
// grows, and appending to a growing file costs more than overwriting one. So the checkpointer repeats
// its passes until what is left is small (catchUpFrames), then asks the writer goroutine to copy the
// rest itself on its own connection, after it has answered its batch and when no accept is waiting:
// no commit runs beside that short checkpoint, so it finishes the log, and the next commit restarts
// it. Under steady load there is no such pause; the write connection's own automatic checkpoint, a
// backstop at writerAutoCheckpointPages, then finishes the log (most of it already copied). Batches
// are also bounded in bytes (Options.MaxBatchBytes) so one transaction does not outgrow the log.

package mailbox

import (
	"context"
	"database/sql"
	"sync/atomic"
	"time"
)

const (
	// walKickBytes of committed content wake the checkpointer (about SQLite's own 1000 pages).
	walKickBytes = 4 << 20
	// walTick wakes it for writes that do not go through the writer goroutine.
	walTick = time.Second
	// catchUpFrames: once no more than this is left to copy, the writer goroutine copies the rest.
	catchUpFrames = 512
	// maxPasses bounds the checkpointer's passes per wake-up.
	maxPasses = 4
	// writerAutoCheckpointPages is the write connection's own automatic checkpoint: a backstop.
	writerAutoCheckpointPages = 16384 // 64 MiB of 4 KiB pages
	// walSizeLimit is what the WAL file is truncated to when it restarts after a burst.
	walSizeLimit = 64 << 20
)

// walCheckpointer is the goroutine's state.
type walCheckpointer struct {
	kick    chan struct{} // buffered 1: a pending wake-up
	done    chan struct{} // closed when the goroutine has returned
	catchUp atomic.Bool   // the checkpointer has copied most of the log: the writer copies the rest
	owed    int64         // content bytes committed since the last kick; the writer goroutine's alone
	failing bool          // the last checkpoint failed; the checkpointer goroutine's alone
}

// startCheckpointer opens the checkpointer's connection and starts its goroutine.
func (s *Store) startCheckpointer() error {
	db, err := openCheckpointer(s.opt.Path, s.opt.BusyTimeout)
	if err != nil {
		return err
	}
	s.cdb = db
	s.ckpt = &walCheckpointer{kick: make(chan struct{}, 1), done: make(chan struct{})}
	go s.runCheckpoints()
	return nil
}

// betweenBatches is called by the writer goroutine after it has answered a batch. When the
// checkpointer has asked for the catch-up and no accept is waiting, it copies the rest of the log on
// the write connection; when one is waiting, it takes it for the next batch instead (under steady
// load the catch-up waits for a pause, and the 64 MiB backstop restarts the log if none comes).
func (s *Store) betweenBatches() *pending {
	c := s.ckpt
	if c == nil || !c.catchUp.Load() {
		return nil
	}
	select {
	case p := <-s.reqs:
		return p
	default:
	}
	c.catchUp.Store(false)
	if _, _, err := walCheckpoint(s.wdb); err != nil {
		s.opt.Log.Warn("mailbox WAL catch-up checkpoint failed", "err", classify(err))
	}
	return nil
}

// committed is called by the writer goroutine after each commit with the content bytes it held: it
// wakes the checkpointer every walKickBytes.
func (s *Store) committed(bytes int) {
	c := s.ckpt
	if c == nil {
		return
	}
	if c.owed += int64(bytes); c.owed < walKickBytes {
		return
	}
	c.owed = 0
	select {
	case c.kick <- struct{}{}:
	default: // one is pending already
	}
}

func (s *Store) runCheckpoints() {
	c := s.ckpt
	defer close(c.done)
	t := time.NewTicker(walTick)
	defer t.Stop()
	for {
		select {
		case <-c.kick:
		case <-t.C:
		case <-s.closed:
			return
		}
		for range maxPasses {
			frames, copied, err := walCheckpoint(s.cdb)
			s.noteCheckpoint(err)
			if err != nil {
				break
			}
			if frames > 0 && frames-copied <= catchUpFrames {
				// Even with nothing left, the writer's next transaction most likely began during
				// this pass, so it cannot restart the log: the writer's catch-up, between its
				// transactions, lets the one after restart it.
				c.catchUp.Store(true)
				break
			}
		}
	}
}

// walCheckpoint runs a PASSIVE checkpoint on db and returns the frames in the log and how many of
// them are now in the database file.
func walCheckpoint(db *sql.DB) (frames, copied int, err error) {
	var busy int
	err = db.QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
	return frames, copied, err
}

// noteCheckpoint counts a run and logs a change between failing and working.
func (s *Store) noteCheckpoint(err error) {
	c := s.ckpt
	switch {
	case err != nil && !c.failing:
		c.failing = true
		s.opt.Log.Warn("mailbox WAL checkpoint failed; the writer's own checkpoint remains", "err", classify(err))
	case err == nil && c.failing:
		c.failing = false
		s.opt.Log.Info("mailbox WAL checkpoint works again")
	}
	if err == nil {
		s.walCheckpoints.Add(1)
	}
}

// stopCheckpointer waits for the goroutine to return (after s.closed).
func (s *Store) stopCheckpointer() error {
	if s.ckpt != nil {
		<-s.ckpt.done
	}
	return nil
}
