// Verify: recompute every leaf hash and the whole tree from the stored events, compare them with the
// stored hashes and with every signed checkpoint (from the database and from outside it), and name the
// first event that was altered, inserted, removed or reordered.

package ledger

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sort"

	"golang.org/x/mod/sumdb/note"
)

// Finding kinds.
const (
	KindAltered    = "altered"    // an event's bytes no longer match its recorded hash
	KindInserted   = "inserted"   // an event was put in that the ledger never wrote
	KindRemoved    = "removed"    // events are missing (deleted, or the tail truncated)
	KindReordered  = "reordered"  // events are out of their order
	KindRewritten  = "rewritten"  // events and hashes were recomputed: only a signed checkpoint shows it
	KindTree       = "tree"       // a stored subtree hash does not match the events
	KindCheckpoint = "checkpoint" // a checkpoint does not verify, or two disagree
)

// Finding is one problem: its kind, the first (and last) event number concerned and an explanation.
type Finding struct {
	Kind   string
	Event  uint64 // first event concerned
	Last   uint64 // last event concerned (Event when it is one)
	Detail string
}

func (f *Finding) String() string {
	span := fmt.Sprintf("event %d", f.Event)
	if f.Last > f.Event {
		span = fmt.Sprintf("events %d to %d", f.Event, f.Last)
	}
	return fmt.Sprintf("%s: %s: %s", f.Kind, span, f.Detail)
}

// VerifyOptions are the trust anchors for Verify.
type VerifyOptions struct {
	// Keys are the public keys (NAME+HASH+BASE64) trusted to sign checkpoints: any key of the log's
	// key chain (the current one, the first, or all of them). The chain's other keys are learnt from
	// the key rotation events, each signed by the key before and the key after it. Without keys (and
	// without Verifier) checkpoints are not used, and Verify says so.
	Keys []string
	// Verifier is a trusted key given as a verifier (matched to the chain by name and key hash).
	Verifier note.Verifier
	// External are checkpoints kept outside the database (the checkpoint file, a witness), already
	// opened. They are what shows a log that was truncated and rebuilt.
	External []*Checkpoint
	// ExternalFile is the contents of the checkpoint file (read before the snapshot was taken), opened
	// with the key chain; ExternalName names it in findings.
	ExternalFile []byte
	ExternalName string
	// Readers, when set, is a pool of read connections to the same database: the events are then read
	// and hashed on Workers connections of it in parallel (scanParallel). Without it, one pass over q.
	Readers *sql.DB
	// Workers is the number of parallel readers; 0: one per CPU (GOMAXPROCS).
	Workers int
}

// Report is the outcome of Verify.
type Report struct {
	Events      uint64        // events read and hashed
	Bytes       int64         // event bytes hashed
	Root        Hash          // recomputed root of all the events
	Checkpoints []*Checkpoint // checkpoints that matched the recomputed tree
	Findings    []Finding     // problems, the first event-level one first; empty when intact
	Warnings    []string
	Keys        []ChainKey // the checkpoint keys used, oldest first, with the sizes each signs
	Incomplete  bool       // the checkpoint file ends with a record cut short

	rotations []uint64 // positions of the key rotation events the pass saw
}

// OK reports whether nothing was found.
func (r *Report) OK() bool { return len(r.Findings) == 0 }

// Verify checks the ledger in q, which should be one read transaction (a consistent snapshot). Read
// any external checkpoints before starting the transaction: every checkpoint written before it is then
// covered by it. The error is for failures to read at all.
func Verify(ctx context.Context, q Querier, opt VerifyOptions) (*Report, error) {
	rep := &Report{}
	cps, listed, err := checkpointsToCheck(ctx, q, opt, rep)
	if err != nil {
		return rep, err
	}
	var f *Finding
	if opt.Readers != nil {
		workers := opt.Workers
		if workers <= 0 {
			workers = runtime.GOMAXPROCS(0)
		}
		if m := opt.Readers.Stats().MaxOpenConnections; m > 0 {
			workers = min(workers, m-1) // q may hold one of the pool's connections
		}
		if workers >= 1 {
			f, err = scanParallel(ctx, q, opt.Readers, workers, cps, rep)
		} else {
			f, err = scan(ctx, q, cps, rep)
		}
	} else {
		f, err = scan(ctx, q, cps, rep)
	}
	if err != nil || f != nil {
		if f != nil {
			rep.Findings = append([]Finding{*f}, rep.Findings...)
		}
		return rep, err
	}
	if keyed(opt) {
		checkRotationList(rep, listed)
	}
	if len(cps) > 0 && cps[len(cps)-1].Size > rep.Events {
		last := cps[len(cps)-1]
		rep.Findings = append([]Finding{{Kind: KindRemoved, Event: rep.Events, Last: last.Size - 1,
			Detail: fmt.Sprintf("the ledger holds %d events but the checkpoint in %s covers %d: the tail was removed",
				rep.Events, last.Source, last.Size)}}, rep.Findings...)
	}
	return rep, nil
}

// keyed reports whether Verify was given any public key.
func keyed(opt VerifyOptions) bool { return len(opt.Keys) > 0 || opt.Verifier != nil }

// checkpointsToCheck follows the key chain from the given keys, opens the database's checkpoints and
// the external ones with it, adds the rotation statements (each is the retiring key's last word on
// the tree), and returns them sorted by size, one per size, with the rotation events the settings
// list. Bad signatures, retired keys used again and disagreeing checkpoints become findings.
func checkpointsToCheck(ctx context.Context, q Querier, opt VerifyOptions, rep *Report) ([]*Checkpoint, []uint64, error) {
	stored, err := StoredCheckpoints(ctx, q, false)
	if err != nil {
		return nil, nil, err
	}
	if !keyed(opt) {
		if len(stored) > 0 || len(opt.External) > 0 || len(opt.ExternalFile) > 0 {
			rep.Warnings = append(rep.Warnings, "no public key given: checkpoints were not checked, so a rewritten ledger would pass")
		}
		return nil, nil, nil
	}
	nums, evs, err := rotationEvents(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	var rots []*Rotation
	for i, n := range nums {
		r, err := openRotation(n, evs[i])
		if err != nil {
			rep.Findings = append(rep.Findings, Finding{Kind: KindCheckpoint, Event: n, Last: n, Detail: err.Error()})
			break // the keys after a broken link are unknown
		}
		rots = append(rots, r)
	}
	chain, err := buildChain(rots, anchorsOf(opt))
	if err != nil {
		rep.Findings = append(rep.Findings, Finding{Kind: KindCheckpoint, Detail: err.Error()})
		rots = nil
	}
	rep.Keys = chain
	all := append([]*Checkpoint(nil), opt.External...)
	for _, r := range rots {
		if r.Event > 0 {
			all = append(all, &Checkpoint{Origin: chain[0].Verifier.Name(), Size: r.Event, Root: r.Root, Key: r.Old,
				Source: fmt.Sprintf("key rotation event %d", r.Event)})
		}
	}
	for data, rec := opt.ExternalFile, 1; len(data) > 0; rec++ {
		msg, rest, ok := nextRecord(data)
		if !ok {
			rep.Incomplete = true
			break
		}
		data = rest
		c, err := openWithChain(msg, chain)
		if err != nil {
			rep.Findings = append(rep.Findings, Finding{Kind: KindCheckpoint,
				Detail: fmt.Sprintf("%s record %d does not verify: %v", opt.ExternalName, rec, err)})
			continue
		}
		c.Source = fmt.Sprintf("%s record %d", opt.ExternalName, rec)
		all = append(all, c)
	}
	for _, s := range stored {
		c, err := openWithChain(s.Note, chain)
		if err != nil {
			rep.Findings = append(rep.Findings, Finding{Kind: KindCheckpoint,
				Detail: fmt.Sprintf("database checkpoint %d (%s) does not verify: %v", s.ID, s.At, err)})
			continue
		}
		c.Source = fmt.Sprintf("database checkpoint %d", s.ID)
		all = append(all, c)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Size < all[j].Size })
	var out []*Checkpoint
	for _, c := range all {
		if c.Size == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Size == c.Size {
			if out[n-1].Root != c.Root {
				rep.Findings = append(rep.Findings, Finding{Kind: KindCheckpoint, Event: c.Size - 1, Last: c.Size - 1,
					Detail: fmt.Sprintf("%s and %s are both signed for %d events but name different roots: the ledger was forked",
						out[n-1].Source, c.Source, c.Size)})
			}
			continue
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		rep.Warnings = append(rep.Warnings, "no signed checkpoint to compare with: a rewritten ledger would pass")
	}
	return out, nums, nil
}

// anchorsOf lists the trusted keys of opt.
func anchorsOf(opt VerifyOptions) []anchor {
	var out []anchor
	for _, k := range opt.Keys {
		if v, err := note.NewVerifier(k); err == nil {
			out = append(out, anchor{vkey: k, v: v})
		}
	}
	if opt.Verifier != nil {
		out = append(out, anchor{v: opt.Verifier})
	}
	return out
}

// checkRotationList compares the key rotation events the pass saw with those the settings list (which
// told Verify where to find the keys before the pass): a rotation left out of the list is named.
func checkRotationList(rep *Report, listed []uint64) {
	var want []uint64
	for _, n := range listed {
		if n < rep.Events {
			want = append(want, n)
		}
	}
	for i, n := range rep.rotations {
		if i >= len(want) || want[i] != n {
			rep.Findings = append(rep.Findings, Finding{Kind: KindCheckpoint, Event: n, Last: n, Detail: fmt.Sprintf(
				"event %d is a key rotation the list of rotations (settings %s) leaves out: the list was changed", n, rotationSetting)})
			return
		}
	}
}

// scan streams the events in order, recomputing leaves, subtrees and roots. It stops at the first
// problem and returns it.
func scan(ctx context.Context, q Querier, cps []*Checkpoint, rep *Report) (*Finding, error) {
	rows, err := q.QueryContext(ctx, `SELECT seq, event, leaf, nodes FROM ledger_events ORDER BY seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	v := &scanner{t: &Tree{}, cps: cps, rep: rep}
	for rows.Next() {
		var seq int64
		var event, leaf, nodes sql.RawBytes
		if err := rows.Scan(&seq, &event, &leaf, &nodes); err != nil {
			return nil, err
		}
		f, bad := v.row(seq, event, leaf, nodes)
		if bad {
			rows.Close() // closed before the lookups that name the problem
			return classify(ctx, q, v.t.Size())
		}
		if f != nil {
			return f, nil
		}
		if v.t.Size()%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rep.Root = v.t.Root()
	return nil, nil
}

// scanner is the state of one pass over the events.
type scanner struct {
	t         *Tree
	completed []Hash
	cps       []*Checkpoint
	next      int    // the next checkpoint to reach
	good      uint64 // size of the last checkpoint that matched
	rep       *Report
}

// row checks the next row. bad means the row is not the event expected at this position (classify
// names what happened); a Finding is a problem found in the tree or at a checkpoint.
func (v *scanner) row(seq int64, event, leaf, nodes []byte) (f *Finding, bad bool) {
	p := v.t.Size()
	h := LeafHash(event)
	v.rep.Bytes += int64(len(event))
	if c, ok := claimedNumber(event); seq < 0 || uint64(seq) != p || !ok || c != p || !bytes.Equal(h[:], leaf) {
		return nil, true
	}
	if isRotation(event) {
		v.rep.rotations = append(v.rep.rotations, p)
	}
	v.completed = v.t.Append(h, v.completed[:0])
	if f := checkNodes(p, v.completed, nodes); f != nil {
		return f, false
	}
	v.rep.Events = v.t.Size()
	for ; v.next < len(v.cps) && v.cps[v.next].Size == v.t.Size(); v.next++ {
		cp := v.cps[v.next]
		if root := v.t.Root(); root != cp.Root {
			return &Finding{Kind: KindRewritten, Event: v.good, Last: v.t.Size() - 1, Detail: fmt.Sprintf(
				"the first %d events do not match %s (root %s, recomputed %s): an event among these was altered, inserted, removed or reordered and every hash after it recomputed; the checkpoints before it match",
				v.t.Size(), cp.Source, cp.Root, root)}, false
		}
		v.good = v.t.Size()
		v.rep.Checkpoints = append(v.rep.Checkpoints, cp)
	}
	return nil, false
}

// checkNodes compares the subtree hashes stored with leaf p with the recomputed ones.
func checkNodes(p uint64, completed []Hash, nodes []byte) *Finding {
	if len(nodes) != len(completed)*len(Hash{}) {
		return &Finding{Kind: KindTree, Event: p, Last: p, Detail: fmt.Sprintf(
			"the row of event %d holds %d bytes of subtree hashes, want %d", p, len(nodes), len(completed)*len(Hash{}))}
	}
	for i, h := range completed {
		if !bytes.Equal(h[:], nodes[i*len(h):(i+1)*len(h)]) {
			level := uint(i + 1)
			first := p + 1 - 1<<level
			return &Finding{Kind: KindTree, Event: first, Last: p, Detail: fmt.Sprintf(
				"the stored hash of the subtree over events %d to %d does not match them: one of these events was altered and its own hash recomputed, or the stored hash was changed", first, p)}
		}
	}
	return nil
}

// VerifyDatabase verifies the ledger in db against its own checkpoints and those of the checkpoint
// file (empty: none), and checks the stored tree head appends extend. The file is read before the
// database snapshot is taken, so every checkpoint in it is covered by the snapshot.
func VerifyDatabase(ctx context.Context, db *sql.DB, v note.Verifier, checkpointFile string) (*Report, error) {
	return verifyDatabase(ctx, db, v, checkpointFile, db, 0)
}

// verifyDatabase is VerifyDatabase reading the events on workers connections of readers (nil: on the
// snapshot's own connection).
func verifyDatabase(ctx context.Context, db *sql.DB, v note.Verifier, checkpointFile string, readers *sql.DB, workers int) (*Report, error) {
	return verifyDatabaseKeys(ctx, db, VerifyOptions{Verifier: v, Readers: readers, Workers: workers}, checkpointFile)
}

// VerifyDatabaseKeys is VerifyDatabase trusting the public keys in keys (any keys of the log's key
// chain; see VerifyOptions.Keys).
func VerifyDatabaseKeys(ctx context.Context, db *sql.DB, keys []string, checkpointFile string) (*Report, error) {
	return verifyDatabaseKeys(ctx, db, VerifyOptions{Keys: keys, Readers: db}, checkpointFile)
}

func verifyDatabaseKeys(ctx context.Context, db *sql.DB, opt VerifyOptions, checkpointFile string) (*Report, error) {
	var warnings []string
	switch {
	case !keyed(opt):
	case checkpointFile == "":
		warnings = append(warnings, "no checkpoint file given: a ledger truncated and rebuilt together with its database checkpoints would pass")
	default:
		data, err := os.ReadFile(checkpointFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			warnings = append(warnings, fmt.Sprintf("checkpoint file %s: %v: a ledger truncated and rebuilt together with its database checkpoints would pass", checkpointFile, err))
		case err != nil:
			return nil, err
		}
		opt.ExternalFile, opt.ExternalName = data, checkpointFile
	}
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rep, err := Verify(ctx, tx, opt)
	if err != nil {
		return rep, err
	}
	if rep.Incomplete {
		warnings = append(warnings, fmt.Sprintf("checkpoint file %s ends with an incomplete record (ignored)", checkpointFile))
	}
	rep.Warnings = append(warnings, rep.Warnings...)
	if rep.OK() {
		head, err := LoadHead(ctx, tx)
		if err != nil || head.Size() != rep.Events || head.Root() != rep.Root {
			rep.Findings = append(rep.Findings, Finding{Kind: KindTree, Event: rep.Events, Last: rep.Events,
				Detail: "the stored tree head (ledger_head) does not match the events: the next append would extend a wrong tree"})
		}
	}
	return rep, nil
}
