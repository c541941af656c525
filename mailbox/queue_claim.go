// Claiming: a relay worker takes due entries with a lease. A claim is not an outcome and writes no
// ledger event; each claim ends in exactly one of Done, Retry, Fail or Unclaim, or lapses. A lapsed
// lease (the worker crashed or hung) makes the entry due again: the next claim counts the lapsed one
// as an attempt and writes a "lease-expired" event, because that attempt may have reached the
// receiving MTA. So an entry is sent twice only when a crash falls between the receiving MTA's 250 and
// the commit of Done; that duplicate carries the same Message-ID header (QueueEntry.HeaderMessageID).

package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultLease is the lease ClaimOptions gets when it names none.
const DefaultLease = 30 * time.Minute

// ClaimOptions selects the entries Claim takes.
type ClaimOptions struct {
	Domain string        // only entries for this recipient domain (lower case); empty takes any
	Limit  int           // most entries; default 1
	Now    time.Time     // the clock: entries due at or before it are taken
	Lease  time.Duration // how long the claim holds; default DefaultLease
}

// Lease is the proof of a claim that Done, Retry, Fail and Unclaim present.
type Lease struct {
	ID    string // queue ID
	Token int64  // changes with every claim
}

// Claimed is one claimed entry with its content.
type Claimed struct {
	QueueEntry
	Lease   Lease
	Content []byte // decrypted; nil when ContentErr is set or the entry was queued by recipe
	// Recipe is what the entry's copy is built and sealed from when it is sent (Outbound.Recipe),
	// decrypted; nil for an entry queued with its content.
	Recipe []byte
	// ContentErr wraps ErrCorrupt when the stored content failed its integrity check; the entry can
	// only be failed (CauseCorrupt).
	ContentErr error
}

// Claim takes up to opt.Limit due entries (queued and due, or sending with a lapsed lease), oldest due
// first, marks them sending until opt.Now+opt.Lease, and returns them with their content.
func (s *Store) Claim(ctx context.Context, opt ClaimOptions) ([]*Claimed, error) {
	ctx = uncancelled(ctx)
	if opt.Limit <= 0 {
		opt.Limit = 1
	}
	if opt.Lease <= 0 {
		opt.Lease = DefaultLease
	}
	var out []*Claimed
	// A claim is a lease, not a fact: lost to a power failure, its entries are due again at once, as
	// they would be once the lease lapsed (lazyTx). It holds the writer only for the small rows; the
	// content (up to megabytes an entry) is read after it, on a reader: it never changes once queued.
	err := s.lazyTx(ctx, func(tx *sql.Tx) error {
		out = nil
		q := `SELECT ` + queueColumns + `, lease FROM queue
			WHERE state IN ('queued', 'sending') AND next_attempt_at <= ?`
		args := []any{formatTime(opt.Now)}
		if opt.Domain != "" {
			q += ` AND domain = ?`
			args = append(args, opt.Domain)
		}
		rows, err := tx.QueryContext(ctx, q+` ORDER BY next_attempt_at, id LIMIT ?`, append(args, opt.Limit)...)
		if err != nil {
			return err
		}
		for rows.Next() {
			c := &Claimed{}
			if err := scanQueueEntry(rows, &c.QueueEntry, &c.Lease.Token); err != nil {
				rows.Close()
				return err
			}
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, c := range out {
			if err := s.markSending(ctx, tx, c, opt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	contents, err := s.queueContents(ctx, out)
	if err != nil {
		// Claimed but not readable now (the store is failing): given back unattempted, so they are
		// due again at once (or, should that fail too, when their leases lapse).
		for _, u := range out {
			s.Unclaim(ctx, u.Lease, opt.Now)
		}
		return nil, classify(err)
	}
	for _, c := range out {
		sc, ok := contents[c.ID]
		switch {
		case !ok: // an entry claimable is never purged: its content row is missing
			c.ContentErr = fmt.Errorf("%w: queue entry %s has no stored content", ErrCorrupt, c.ID)
		case sc.form == formRecipe:
			c.Recipe, c.ContentErr = s.seal.openQueue(c.ID, formRecipe, sc.nonce, sc.sealed)
		default:
			c.Content, c.ContentErr = s.seal.openQueue(c.ID, formCopy, sc.nonce, sc.sealed)
			if c.ContentErr == nil && len(c.Content) != c.Size {
				c.Content, c.ContentErr = nil, fmt.Errorf("%w: queue entry %s content size differs", ErrCorrupt, c.ID)
			}
		}
	}
	return out, nil
}

// storedContent is one queue_contents row, still sealed.
type storedContent struct {
	form          string
	nonce, sealed []byte
}

// queueContents reads the stored contents of the claimed entries on a reader, in one query (one read
// transaction) for up to 500 entries instead of one per entry. An entry without a row is absent from
// the map.
func (s *Store) queueContents(ctx context.Context, claimed []*Claimed) (map[string]storedContent, error) {
	out := make(map[string]storedContent, len(claimed))
	for len(claimed) > 0 {
		n := min(len(claimed), 500) // far below SQLite's limit on bound parameters
		args := make([]any, n)
		for i, c := range claimed[:n] {
			args[i] = c.ID
		}
		claimed = claimed[n:]
		if err := s.readQueueContents(ctx, out, args); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readQueueContents adds to out the contents of the queue entries ids, read in one query.
func (s *Store) readQueueContents(ctx context.Context, out map[string]storedContent, ids []any) error {
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, form, nonce, content FROM queue_contents WHERE id IN (?`+
		strings.Repeat(", ?", len(ids)-1)+`)`, ids...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var sc storedContent
		if err := rows.Scan(&id, &sc.form, &sc.nonce, &sc.sealed); err != nil {
			return err
		}
		out[id] = sc
	}
	return rows.Err()
}

// markSending moves one selected entry to sending; a lapsed lease is counted as an attempt and recorded.
func (s *Store) markSending(ctx context.Context, tx *sql.Tx, c *Claimed, opt ClaimOptions) error {
	lapsed := c.State == QueueSending
	if lapsed {
		c.Attempts++
		err := appendEvent(ctx, tx, event{At: opt.Now, Type: EventLeaseExpired, MessageID: c.MessageID, Data: queueAdminData{
			QueueID: c.ID, Kind: c.Kind, Recipient: c.Recipient,
			Reason: "the previous attempt did not finish; the receiving MTA may have the message already (same Message-ID)",
		}})
		if err != nil {
			return err
		}
	}
	c.Lease = Lease{ID: c.ID, Token: c.Lease.Token + 1}
	c.State, c.NextAttempt, c.Updated = QueueSending, opt.Now.Add(opt.Lease).UTC(), opt.Now.UTC()
	_, err := tx.ExecContext(ctx, `UPDATE queue SET state = 'sending', lease = ?, attempts = ?,
		next_attempt_at = ?, updated_at = ? WHERE id = ?`,
		c.Lease.Token, c.Attempts, formatTime(c.NextAttempt), formatTime(opt.Now), c.ID)
	return err
}

// Unclaim gives a claimed entry back unattempted (the worker stopped before sending it): it is due at
// at, its attempt count unchanged. No ledger event: nothing happened to it.
func (s *Store) Unclaim(ctx context.Context, l Lease, at time.Time) error {
	ctx = uncancelled(ctx)
	return s.queueTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE queue SET state = 'queued', next_attempt_at = ?, updated_at = ?
			WHERE id = ? AND state = 'sending' AND lease = ?`, formatTime(at), formatTime(at), l.ID, l.Token)
		if err != nil {
			return err
		}
		return queueLeaseHeld(res, l)
	})
}

func queueLeaseHeld(res sql.Result, l Lease) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: queue entry %s, claim %d", ErrLeaseLost, l.ID, l.Token)
	}
	return nil
}

// DomainDue is one destination with entries due.
type DomainDue struct {
	Domain   string
	Due      int       // entries due now
	Earliest time.Time // the oldest due time among them
}

// DueDomains lists the destinations with entries due at now, the longest waiting first.
func (s *Store) DueDomains(ctx context.Context, now time.Time) ([]DomainDue, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT domain, count(*), min(next_attempt_at) FROM queue
		WHERE state IN ('queued', 'sending') AND next_attempt_at <= ? GROUP BY domain ORDER BY 3`, formatTime(now))
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []DomainDue
	for rows.Next() {
		var d DomainDue
		var earliest string
		if err := rows.Scan(&d.Domain, &d.Due, &earliest); err != nil {
			return nil, classify(err)
		}
		if d.Earliest, err = parseQueueTime(earliest); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, classify(rows.Err())
}

// NextDue returns when the next entry becomes due (a lease lapsing counts); ok is false when no entry
// is waiting for an attempt.
func (s *Store) NextDue(ctx context.Context) (at time.Time, ok bool, err error) {
	var next sql.NullString
	err = s.rdb.QueryRowContext(ctx, `SELECT min(next_attempt_at) FROM queue WHERE state IN ('queued', 'sending')`).Scan(&next)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, classify(err)
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	at, err = parseQueueTime(next.String)
	return at, err == nil, err
}
