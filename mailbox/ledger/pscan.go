// The parallel pass of Verify: the events are cut into batches of 2^batchLevel aligned positions;
// several read connections each take every W-th batch, read its rows straight from the driver (no
// database/sql conversions, buffers reused), hash the leaves and rebuild the batch's own perfect
// subtree, comparing every stored subtree hash that lies inside it. One goroutine then takes the
// batches in order and continues the tree above them (the batch roots are the leaves of a tree
// 2^batchLevel times smaller), checking the higher subtree hashes and the checkpoints. It finds
// exactly what the one-connection pass (scan) finds, and names the same first problem.

package ledger

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"sync"
	"unsafe"
)

// batchLevel sets the batch size, 2^batchLevel events (4096). Tests lower it to cut small ledgers
// into many batches.
var batchLevel uint = 12

// batchResult is what a worker found in one batch [a, a+2^batchLevel).
type batchResult struct {
	rows  uint64 // rows that passed, from a on
	bytes int64
	bad   bool     // the row at a+rows is not the event expected there (classify names it)
	fail  *Finding // or a stored subtree hash inside the batch does not match, at row a+rows
	root  Hash     // the batch's subtree root, when all 2^batchLevel rows passed
	top   []byte   // the last row's subtree hashes above batchLevel (checked by the combiner)
	edge  []Hash   // the batch's right edge after its last row that passed
	edges map[uint64][]Hash
	rots  []uint64 // positions of key rotation events
	err   error
}

// scanParallel is scan over workers connections of readers besides q (one read transaction, where the
// first problem is classified). The workers' transactions start after q's: since events are only ever
// appended, they see the same rows below q's end.
func scanParallel(ctx context.Context, q Querier, readers *sql.DB, workers int, cps []*Checkpoint, rep *Report) (*Finding, error) {
	var lo, hi sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT min(seq), max(seq) FROM ledger_events`).Scan(&lo, &hi); err != nil {
		return nil, err
	}
	if !lo.Valid { // no events
		rep.Root = EmptyRoot()
		return nil, nil
	}
	if lo.Int64 != 0 || hi.Int64 < 0 { // the first row is not event 0
		return classify(ctx, q, 0)
	}
	end := uint64(hi.Int64) + 1
	bsize := uint64(1) << batchLevel
	nb := (end + bsize - 1) / bsize
	workers = max(1, min(workers, int(min(nb, 64))))
	sizes := make([]uint64, len(cps))
	for i, c := range cps {
		sizes[i] = c.Size
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chans := make([]chan *batchResult, workers)
	var wg sync.WaitGroup
	for w := range workers {
		chans[w] = make(chan *batchResult, 2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(chans[w])
			runWorker(wctx, readers, uint64(w), uint64(workers), nb, end, sizes, chans[w])
		}()
	}
	defer wg.Wait() // after cancel (deferred later, so run first)
	defer cancel()

	super := &Tree{} // the tree over the batch roots
	var completed []Hash
	next := 0 // next checkpoint
	good := uint64(0)
	checkAt := func(root Hash, n uint64) *Finding { // compare the root of the first n events with the checkpoint
		cp := cps[next]
		if root != cp.Root {
			return &Finding{Kind: KindRewritten, Event: good, Last: n - 1, Detail: fmt.Sprintf(
				"the first %d events do not match %s (root %s, recomputed %s): an event among these was altered, inserted, removed or reordered and every hash after it recomputed; the checkpoints before it match",
				n, cp.Source, cp.Root, root)}
		}
		good = n
		rep.Checkpoints = append(rep.Checkpoints, cp)
		next++
		return nil
	}
	for b := uint64(0); b < nb; b++ {
		r, ok := <-chans[b%uint64(workers)]
		if !ok {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return nil, errors.New("ledger: a verify worker stopped early")
		}
		if r.err != nil {
			return nil, r.err
		}
		a := b * bsize
		rep.Bytes += r.bytes
		for _, p := range r.rots {
			if p < a+r.rows {
				rep.rotations = append(rep.rotations, p)
			}
		}
		full := r.rows == bsize
		// Checkpoints reached inside the batch (before its failing row, or before its end).
		for next < len(cps) && cps[next].Size <= a+r.rows && cps[next].Size < a+bsize {
			n := cps[next].Size
			t, err := NewTree(n, append(super.Edge(), r.edges[n]...))
			if err != nil {
				return nil, err
			}
			if f := checkAt(t.Root(), n); f != nil {
				rep.Events = n
				return f, nil
			}
		}
		rep.Events = a + r.rows
		switch {
		case r.bad:
			return classify(ctx, q, a+r.rows)
		case r.fail != nil:
			return r.fail, nil
		case full:
			completed = super.Append(r.root, completed[:0])
			p := a + bsize - 1
			for i, h := range completed {
				if string(h[:]) != string(r.top[i*len(h):(i+1)*len(h)]) {
					rep.Events = p
					return nodeMismatch(p, batchLevel+uint(i)+1), nil
				}
			}
			for next < len(cps) && cps[next].Size == a+bsize {
				if f := checkAt(super.Root(), a+bsize); f != nil {
					return f, nil
				}
			}
		default: // the last batch, not full
			t, err := NewTree(a+r.rows, append(super.Edge(), r.edge...))
			if err != nil {
				return nil, err
			}
			rep.Root = t.Root()
			return nil, nil
		}
	}
	rep.Root = super.Root()
	return nil, nil
}

// runWorker verifies batches w, w+n, w+2n… below nb on its own connection and read transaction,
// sending each result on out, until they are done or ctx ends.
func runWorker(ctx context.Context, readers *sql.DB, w, n, nb, end uint64, sizes []uint64, out chan<- *batchResult) {
	fail := func(err error) {
		select {
		case out <- &batchResult{err: err}:
		case <-ctx.Done():
		}
	}
	conn, err := readers.Conn(ctx)
	if err != nil {
		fail(err)
		return
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		beginner, ok1 := dc.(driver.ConnBeginTx)
		queryer, ok2 := dc.(driver.QueryerContext)
		if !ok1 || !ok2 {
			return errors.New("ledger: the database driver cannot run queries directly")
		}
		tx, err := beginner.BeginTx(ctx, driver.TxOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer tx.Rollback()
		v := &batchVerifier{d: sha256.New(), sizes: sizes, dest: make([]driver.Value, 4)}
		bsize := uint64(1) << batchLevel
		for b := w; b < nb; b += n {
			if err := ctx.Err(); err != nil {
				return err
			}
			a := b * bsize
			rows, err := queryer.QueryContext(ctx,
				`SELECT seq, length(leaf), length(nodes), CAST(event AS BLOB) || leaf || nodes FROM ledger_events WHERE seq >= ? AND seq < ? ORDER BY seq`,
				[]driver.NamedValue{{Ordinal: 1, Value: int64(a)}, {Ordinal: 2, Value: int64(min(a+bsize, end))}})
			if err != nil {
				return err
			}
			r, err := v.batch(rows, a, min(bsize, end-a))
			rows.Close()
			if err != nil {
				return err
			}
			select {
			case out <- r:
			case <-ctx.Done():
				return ctx.Err()
			}
			if r.bad || r.fail != nil {
				return nil // the combiner stops here
			}
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		fail(err)
	}
}

// batchVerifier is one worker's reusable state.
type batchVerifier struct {
	d         hash.Hash
	sizes     []uint64 // checkpoint sizes, ascending
	dest      []driver.Value
	completed []Hash
}

// batch checks the rows of the batch starting at position a, of which want are expected. Each row
// comes as its number, the lengths of its leaf and nodes, and event||leaf||nodes in one value: one
// allocation in the driver instead of three (the concatenation copies bytes as they are in a UTF-8
// database; a value that does not split is a bad row).
func (v *batchVerifier) batch(rows driver.Rows, a, want uint64) (*batchResult, error) {
	r := &batchResult{}
	t := &Tree{}
	ci := sort.Search(len(v.sizes), func(i int) bool { return v.sizes[i] > a })
	for t.Size() < want {
		if err := rows.Next(v.dest); err != nil {
			if errors.Is(err, io.EOF) {
				r.bad = true // a row is missing
				break
			}
			return nil, err
		}
		p := a + t.Size()
		seq, _ := v.dest[0].(int64)
		nl, _ := v.dest[1].(int64)
		nn, _ := v.dest[2].(int64)
		var row []byte
		switch x := v.dest[3].(type) {
		case []byte:
			row = x
		case string:
			row = unsafe.Slice(unsafe.StringData(x), len(x))
		}
		ne := int64(len(row)) - nl - nn
		if nl < 0 || nn < 0 || ne < 0 {
			r.bad = true
			break
		}
		event, leaf, nodes := row[:ne], row[ne:ne+nl], row[ne+nl:]
		var h Hash
		v.d.Reset()
		v.d.Write([]byte{0})
		v.d.Write(event)
		v.d.Sum(h[:0])
		if c, ok := claimedNumber(event); seq < 0 || uint64(seq) != p || !ok || c != p || string(h[:]) != string(leaf) {
			r.bad = true
			break
		}
		r.bytes += int64(len(event))
		if isRotation(event) {
			r.rots = append(r.rots, p)
		}
		v.completed = t.Append(h, v.completed[:0])
		global := completedBy(p)
		if len(nodes) != global*len(h) {
			r.fail = &Finding{Kind: KindTree, Event: p, Last: p, Detail: fmt.Sprintf(
				"the row of event %d holds %d bytes of subtree hashes, want %d", p, len(nodes), global*len(h))}
			break
		}
		if f := checkLevels(p, v.completed, nodes); f != nil {
			r.fail = f
			break
		}
		if len(v.completed) < global { // the batch's last row: the levels above are the combiner's
			r.top = append([]byte(nil), nodes[len(v.completed)*len(h):]...)
		}
		r.rows++
		for ; ci < len(v.sizes) && v.sizes[ci] == p+1; ci++ {
			if r.edges == nil {
				r.edges = map[uint64][]Hash{}
			}
			r.edges[p+1] = t.Edge()
		}
	}
	if r.rows == uint64(1)<<batchLevel {
		r.root = t.Root()
	}
	r.edge = t.Edge()
	return r, nil
}

// checkLevels compares the recomputed subtree hashes completed by leaf p (levels 1 up) with the first
// ones stored in nodes.
func checkLevels(p uint64, completed []Hash, nodes []byte) *Finding {
	for i, h := range completed {
		if string(h[:]) != string(nodes[i*len(h):(i+1)*len(h)]) {
			return nodeMismatch(p, uint(i+1))
		}
	}
	return nil
}

// nodeMismatch is the finding for a stored level-level subtree hash ending at leaf p that does not
// match the events.
func nodeMismatch(p uint64, level uint) *Finding {
	first := p + 1 - 1<<level
	return &Finding{Kind: KindTree, Event: first, Last: p, Detail: fmt.Sprintf(
		"the stored hash of the subtree over events %d to %d does not match them: one of these events was altered and its own hash recomputed, or the stored hash was changed", first, p)}
}
