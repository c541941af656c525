// The writer goroutine: group commit. It takes one pending accept, gathers whatever else is waiting (up
// to MaxBatch, for at most MaxDelay), writes them all in one transaction, commits, and answers each.

package mailbox

import "time"

// run is the single writer loop; it returns after Close, having answered every accept it took.
func (s *Store) run() {
	defer close(s.done)
	var next *pending // an accept taken between batches
	for {
		p := next
		next = nil
		if p == nil {
			select {
			case p = <-s.reqs:
			case <-s.closed:
				return
			}
		}
		if batch := s.collect(p); len(batch) > 0 {
			s.commit(batch)
			next = s.betweenBatches()
		}
	}
}

// collect gathers a batch starting with first, up to MaxBatch accepts and MaxBatchBytes of content.
// Accepts whose context ended before being taken are answered with that error and left out.
func (s *Store) collect(first *pending) []*pending {
	batch := make([]*pending, 0, s.opt.MaxBatch)
	batch = s.take(batch, first)
	full := func() bool {
		if len(batch) >= s.opt.MaxBatch {
			return true
		}
		n := 0
		for _, p := range batch {
			if p.row != nil {
				n += len(p.row.sealed)
			}
		}
		return n >= s.opt.MaxBatchBytes
	}
	var timeout <-chan time.Time
	if s.opt.MaxDelay > 0 {
		t := time.NewTimer(s.opt.MaxDelay)
		defer t.Stop()
		timeout = t.C
	}
	for !full() {
		if timeout == nil {
			select {
			case p := <-s.reqs:
				batch = s.take(batch, p)
				continue
			default:
				return batch
			}
		}
		select {
		case p := <-s.reqs:
			batch = s.take(batch, p)
		case <-timeout:
			return batch
		case <-s.closed:
			return batch
		}
	}
	return batch
}

func (s *Store) take(batch []*pending, p *pending) []*pending {
	if err := p.ctx.Err(); err != nil {
		p.done <- err
		return batch
	}
	return append(batch, p)
}

// commit writes batch in one transaction. If that fails because of one message (a constraint, such as
// a duplicate ID), each message is retried in its own transaction so the others are not refused;
// any other failure (full, unavailable) is given to every member and nothing of the batch is stored.
func (s *Store) commit(batch []*pending) {
	if s.opt.testBatchHook != nil {
		s.opt.testBatchHook(len(batch))
	}
	err := s.writeBatch(batch)
	if err != nil && len(batch) > 1 && perMessage(err) {
		s.opt.Log.Warn("mailbox batch refused; retrying one by one", "size", len(batch), "err", err)
		for _, p := range batch {
			s.answer([]*pending{p}, s.writeBatch([]*pending{p}))
		}
		return
	}
	s.answer(batch, err)
}

// answer records the outcome and wakes every caller in batch.
func (s *Store) answer(batch []*pending, err error) {
	if err != nil {
		err = classify(err)
		s.failed.Add(uint64(len(batch)))
		s.opt.Log.Warn("mailbox commit failed", "size", len(batch), "err", err)
	} else {
		s.batches.Add(1)
		written := 0
		for _, p := range batch {
			if p.row != nil { // not the lone ledger events
				s.messages.Add(1)
				written += len(p.row.sealed)
			}
		}
		s.committed(written)
	}
	for _, p := range batch {
		p.done <- err
	}
}
