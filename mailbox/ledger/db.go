// The ledger tables (mailbox/migrations/0002_ledger.sql): appending an event with its leaf hash and
// the subtree hashes it completes, reading the tree back, and storing checkpoints.

package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Querier is what the ledger needs of a *sql.DB, *sql.Conn or *sql.Tx.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Head returns the number of events and the leaf hash of the last one (zero when there is none).
func Head(ctx context.Context, q Querier) (size uint64, last Hash, err error) {
	var seq int64
	var leaf []byte
	err = q.QueryRowContext(ctx, `SELECT seq, leaf FROM ledger_events ORDER BY seq DESC LIMIT 1`).Scan(&seq, &leaf)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, Hash{}, nil
	}
	if err != nil {
		return 0, Hash{}, err
	}
	if seq < 0 || len(leaf) != len(last) {
		return 0, Hash{}, fmt.Errorf("ledger: last event %d has a malformed leaf hash", seq)
	}
	copy(last[:], leaf)
	return uint64(seq) + 1, last, nil
}

// LoadTree reads the right edge of the stored tree from the stored subtree hashes: O(log n) rows.
func LoadTree(ctx context.Context, q Querier) (*Tree, error) {
	size, _, err := Head(ctx, q)
	if err != nil {
		return nil, err
	}
	levels, index := edgeSubtrees(size)
	edge := make([]Hash, len(levels))
	src := Nodes{Q: q}
	for i := range levels {
		if edge[i], err = src.Node(ctx, levels[i], index[i]); err != nil {
			return nil, err
		}
	}
	return NewTree(size, edge)
}

// Nodes reads stored subtree hashes: a leaf hash from its event row, a level-k subtree hash from the
// row of the leaf that completed it.
type Nodes struct{ Q Querier }

// Node implements NodeSource.
func (n Nodes) Node(ctx context.Context, level uint, index uint64) (Hash, error) {
	var h Hash
	seq := lastLeaf(level, index)
	col := "nodes"
	if level == 0 {
		col = "leaf"
	}
	var b []byte
	err := n.Q.QueryRowContext(ctx, `SELECT `+col+` FROM ledger_events WHERE seq = ?`, int64(seq)).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return h, fmt.Errorf("ledger: event %d is missing", seq)
	}
	if err != nil {
		return h, err
	}
	off := 0
	if level > 0 {
		off = int(level-1) * len(h)
	}
	if len(b) < off+len(h) {
		return h, fmt.Errorf("ledger: event %d does not hold the level-%d subtree hash", seq, level)
	}
	copy(h[:], b[off:])
	return h, nil
}

// LoadHead reads the stored right edge (ledger_head), which appends extend: one row.
func LoadHead(ctx context.Context, q Querier) (*Tree, error) {
	var size int64
	var edge []byte
	if err := q.QueryRowContext(ctx, `SELECT size, edge FROM ledger_head WHERE id = 1`).Scan(&size, &edge); err != nil {
		return nil, fmt.Errorf("ledger: reading the tree head: %w", err)
	}
	if size < 0 || len(edge)%len(Hash{}) != 0 {
		return nil, fmt.Errorf("ledger: the stored tree head is malformed")
	}
	hs := make([]Hash, len(edge)/len(Hash{}))
	for i := range hs {
		copy(hs[i][:], edge[i*len(Hash{}):])
	}
	return NewTree(uint64(size), hs)
}

// Appender appends events inside one write transaction (BEGIN IMMEDIATE, so no other connection
// appends in between). It keeps the tree head in memory between appends and writes it back with each
// one, on the condition that the stored head is still the one it knows: if other code appended in the
// same transaction meanwhile, it reloads the head and tries again. After an error the transaction must
// be rolled back and the appender dropped.
type Appender struct {
	q         Querier
	tree      *Tree
	completed []Hash
	nodes     []byte
	edge      []byte
	failed    error
}

// NewAppender reads the stored head (one row) and returns an appender continuing it.
func NewAppender(ctx context.Context, q Querier) (*Appender, error) {
	t, err := LoadHead(ctx, q)
	if err != nil {
		return nil, err
	}
	// Never nil: a nil []byte binds as NULL.
	return &Appender{q: q, tree: t, nodes: make([]byte, 0, 64*len(Hash{})), edge: make([]byte, 0, 64*len(Hash{}))}, nil
}

// Append sets e's version and number (and its time to at unless already set), checks its envelope, and
// inserts it with its leaf hash and the subtree hashes it completes. It returns e's number.
func (a *Appender) Append(ctx context.Context, at time.Time, e *Event) (uint64, error) {
	if a.failed != nil {
		return 0, fmt.Errorf("ledger: appender used after an error: %w", a.failed)
	}
	n, err := a.append(ctx, at, e)
	if err != nil {
		a.failed = err
	}
	return n, err
}

func (a *Appender) append(ctx context.Context, at time.Time, e *Event) (uint64, error) {
	if e.At == "" {
		e.At = FormatTime(at)
	}
	for attempt := 0; ; attempt++ {
		e.V, e.N = Version, a.tree.Size()
		if err := e.validateEnvelope(); err != nil {
			return 0, err
		}
		data, err := Encode(e) // compacting the data checks it is JSON
		if err != nil {
			return 0, err
		}
		leaf := LeafHash(data)
		old := a.tree.Size()
		a.completed = a.tree.Append(leaf, a.completed[:0])
		ok, err := a.storeHead(ctx, old)
		if err != nil {
			return 0, err
		}
		if !ok { // someone appended since the head was read: read it again
			if attempt > 0 {
				return 0, errors.New("ledger: the stored tree head keeps changing under the appender")
			}
			if a.tree, err = LoadHead(ctx, a.q); err != nil {
				return 0, err
			}
			continue
		}
		a.nodes = a.nodes[:0]
		for _, h := range a.completed {
			a.nodes = append(a.nodes, h[:]...)
		}
		_, err = a.q.ExecContext(ctx, `INSERT INTO ledger_events (seq, event, leaf, nodes) VALUES (?, ?, ?, ?)`,
			int64(e.N), string(data), leaf[:], a.nodes)
		return e.N, err
	}
}

// storeHead writes the appender's tree as the stored head if the stored size is still old.
func (a *Appender) storeHead(ctx context.Context, old uint64) (bool, error) {
	a.edge = a.edge[:0]
	for _, h := range a.tree.edge {
		a.edge = append(a.edge, h[:]...)
	}
	res, err := a.q.ExecContext(ctx, `UPDATE ledger_head SET size = ?, edge = ? WHERE id = 1 AND size = ?`,
		int64(a.tree.size), a.edge, int64(old))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Append appends evs inside q, a write transaction, with a new Appender. On error the transaction
// must be rolled back.
func Append(ctx context.Context, q Querier, at time.Time, evs ...*Event) error {
	a, err := NewAppender(ctx, q)
	if err != nil {
		return err
	}
	for _, e := range evs {
		if _, err := a.Append(ctx, at, e); err != nil {
			return err
		}
	}
	return nil
}

// ReadEvent returns the stored bytes and leaf hash of event n.
func ReadEvent(ctx context.Context, q Querier, n uint64) (data []byte, leaf Hash, err error) {
	var l []byte
	err = q.QueryRowContext(ctx, `SELECT event, leaf FROM ledger_events WHERE seq = ?`, int64(n)).Scan(&data, &l)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, leaf, fmt.Errorf("ledger: no event %d", n)
	}
	if err != nil {
		return nil, leaf, err
	}
	copy(leaf[:], l)
	return data, leaf, nil
}

// StoreCheckpoint records a signed checkpoint in the database.
func StoreCheckpoint(ctx context.Context, q Querier, c *Checkpoint, at time.Time) error {
	_, err := q.ExecContext(ctx, `INSERT INTO ledger_checkpoints (size, root, at, note) VALUES (?, ?, ?, ?)`,
		int64(c.Size), c.Root[:], FormatTime(at), string(c.Note))
	return err
}

// StoredCheckpoint is one row of ledger_checkpoints before its signature is checked.
type StoredCheckpoint struct {
	ID   int64
	At   string
	Note []byte
}

// StoredCheckpoints returns the checkpoints recorded in the database, oldest first; latestOnly returns
// only the newest.
func StoredCheckpoints(ctx context.Context, q Querier, latestOnly bool) ([]StoredCheckpoint, error) {
	query := `SELECT id, at, note FROM ledger_checkpoints ORDER BY id`
	if latestOnly {
		query = `SELECT id, at, note FROM ledger_checkpoints ORDER BY id DESC LIMIT 1`
	}
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []StoredCheckpoint
	for rows.Next() {
		var c StoredCheckpoint
		var note string
		if err := rows.Scan(&c.ID, &c.At, &note); err != nil {
			return nil, err
		}
		c.Note = []byte(note)
		out = append(out, c)
	}
	return out, rows.Err()
}
