// The outbound queue: one row per message to send to one recipient, content sealed at rest, moved by
// the relay through queued -> sending (a lease) -> delivered | queued again | failed, and by an operator
// through held, released, retried now or dropped. Every state change writes its ledger event in the
// same transaction; "sending" is a lease, not an outcome, so a claim writes none (see queue_claim.go).

package mailbox

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"

	"cafgate/mailbox/ledger"
)

// Queue states.
const (
	QueueQueued    = "queued"    // waiting for its next attempt
	QueueSending   = "sending"   // claimed by a relay worker until its lease lapses
	QueueHeld      = "held"      // kept back by an operator until released
	QueueDelivered = "delivered" // a receiving MTA accepted it (content purged)
	QueueFailed    = "failed"    // given up: rejected, expired or dropped (content purged)
)

// Queue entry kinds.
const (
	KindMessage = "message" // a package (or notice) for a recipient; its sender gets DSNs about it
	KindDSN     = "dsn"     // a delivery status notification; sent with the null reverse-path, never reported on
)

// Errors of the queue operations, tested with errors.Is.
var (
	// ErrLeaseLost: the lease presented is no longer the row's (it lapsed and was claimed again, or an
	// operator changed the row). The outcome was not recorded.
	ErrLeaseLost = errors.New("mailbox: queue lease lost")
	// ErrBusy: the entry is being sent right now; try again once the attempt is over.
	ErrBusy = errors.New("mailbox: queue entry is being sent")
	// ErrQueueState: the operation does not apply to the entry's state (such as holding a delivered one).
	ErrQueueState = errors.New("mailbox: operation not allowed in the queue entry's state")
)

// Outbound is one message to queue for one recipient.
type Outbound struct {
	MessageID string // the accepted message (messages.id) this belongs to or reports on
	Kind      string // KindMessage (default) or KindDSN
	About     string // for a DSN: what it reports, unique per message and recipient (e.g. "Q123/failed")
	From      string // envelope sender; must be empty for a DSN and set otherwise
	Recipient string
	Content   []byte // the whole RFC 5322 message; it must carry a Message-ID header
	NotBefore time.Time
	// Recipe, instead of Content, queues a package copy that the relay builds and seals when it sends
	// it (Claimed.Recipe): what to build it from, opaque to the store and encrypted at rest like
	// content. HeaderMessageID is then the copy's Message-ID (how a duplicate is recognised) and Size
	// the copy's size before sealing.
	Recipe          []byte
	HeaderMessageID string
	Size            int
	// Certificates (DER) that Recipe names by SHA-256, stored once each with the entry (Certificate
	// reads them back).
	Certificates [][]byte
}

// QueueEntry is a queue row's metadata; it never carries content.
type QueueEntry struct {
	ID              string
	MessageID       string
	Kind            string
	About           string
	From            string
	Recipient       string
	Domain          string
	HeaderMessageID string // Message-ID header of the content
	State           string
	Attempts        int
	NextAttempt     time.Time // while sending: when the lease lapses
	FirstQueued     time.Time
	Updated         time.Time
	DelayWarned     bool
	LastHost        string
	LastAnswer      string
	Size            int
}

// Enqueue queues items in one transaction of its own, at the store's clock, and returns their queue
// IDs in order. A second entry for the same message, recipient, kind and About wraps ErrDuplicate.
func (s *Store) Enqueue(ctx context.Context, items ...*Outbound) ([]string, error) {
	var ids []string
	err := s.queueTx(ctx, func(tx *sql.Tx) error {
		var err error
		ids, err = s.EnqueueTx(ctx, tx, s.opt.Now(), items...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// EnqueueTx queues items inside tx (the pipeline's transaction, so queueing and the step that decided
// it commit together) with first-queued time at, writing a "queued" ledger event for each. Content is
// sealed here, in the caller's goroutine. An item routed to a hosted mailbox (RouteLocally) is
// delivered there instead and its ID is empty.
func (s *Store) EnqueueTx(ctx context.Context, tx *sql.Tx, at time.Time, items ...*Outbound) ([]string, error) {
	ids := make([]string, 0, len(items))
	for _, o := range items {
		id, err := s.insertOutbound(ctx, tx, at, o, false)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// insertOutbound validates, seals and inserts o. With ifAbsent an entry with the same key is left as it
// is (a notice queued twice is queued once) and the returned ID is empty.
//
// Gateway-originated mail for a mailbox hosted here is stored in it instead (see RouteLocally); the
// returned ID is then empty.
func (s *Store) insertOutbound(ctx context.Context, tx *sql.Tx, at time.Time, o *Outbound, ifAbsent bool) (string, error) {
	if s.routeLocal(o) { // never a recipe: only notices and reports (About set) and DSNs are routed
		return "", s.deliverLocal(ctx, tx, at, o, ifAbsent)
	}
	r, err := s.prepareOutbound(o, at)
	if err != nil {
		return "", err
	}
	conflict := ""
	if ifAbsent {
		conflict = " ON CONFLICT (message_id, recipient, kind, about) DO NOTHING"
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO queue (id, message_id, kind, about, env_from, recipient, domain,
		header_message_id, state, next_attempt_at, first_queued_at, updated_at, size)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)`+conflict,
		r.id, o.MessageID, r.kind, o.About, o.From, o.Recipient, r.domain, r.headerID,
		formatTime(r.next), formatTime(at), formatTime(at), r.size)
	if isQueueForeignKey(err) {
		return "", fmt.Errorf("%w: queue entry for message %s: no such accepted message", ErrInvalid, o.MessageID)
	}
	if err != nil {
		return "", fmt.Errorf("queue entry for message %s: %w", o.MessageID, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", nil
	}
	for _, der := range o.Certificates {
		sum := sha256.Sum256(der)
		if _, err := tx.ExecContext(ctx, `INSERT INTO certificates (sha256, der) VALUES (?, ?) ON CONFLICT DO NOTHING`,
			sum[:], der); err != nil {
			return "", fmt.Errorf("queue entry for message %s: certificate: %w", o.MessageID, classify(err))
		}
	}
	// The content in a table of its own (migration 0011): the entry's state changes never rewrite it.
	if _, err := tx.ExecContext(ctx, `INSERT INTO queue_contents (id, form, nonce, content) VALUES (?, ?, ?, ?)`,
		r.id, r.form, r.nonce, r.sealed); err != nil {
		return "", fmt.Errorf("queue entry for message %s: content: %w", o.MessageID, classify(err))
	}
	return r.id, appendEvent(ctx, tx, event{At: at, Type: EventQueued, MessageID: o.MessageID, Data: queuedData{
		QueueID: r.id, Kind: r.kind, About: o.About, Recipient: o.Recipient, Size: r.size,
		HeaderMessageID: r.headerID,
	}})
}

// queueTx runs fn in one write transaction on the writer connection (BEGIN IMMEDIATE) and commits,
// durably (synchronous=FULL: the log is on the disk before it returns).
func (s *Store) queueTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.writeTx(ctx, true, fn)
}

// lazyTx is queueTx for what a power failure may lose without harm (the relay's claims, outcomes
// that tell nobody anything): committed with synchronous=NORMAL, so it waits for no fsync. SQLite's
// log is written in order, so such a transaction is on the disk at the next durable commit (or log
// checkpoint) at the latest, and an operating-system crash or power failure can lose only the last
// of them, never a durable one or anything after it: a ledger checkpoint is stored durably before it
// is signed into the checkpoint file, so no signed checkpoint covers an event that could be lost. A
// process crash (kill -9) loses nothing: the log is written before the commit returns.
func (s *Store) lazyTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.writeTx(ctx, false, fn)
}

func (s *Store) writeTx(ctx context.Context, durable bool, fn func(tx *sql.Tx) error) error {
	if s.wdb == nil {
		return fmt.Errorf("%w: store opened read-only", ErrUnavailable)
	}
	select {
	case <-s.closed:
		return fmt.Errorf("%w: store closed", ErrUnavailable)
	default:
	}
	if err := s.turn.acquire(ctx, false); err != nil {
		return classify(err)
	}
	defer s.turn.release()
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return classify(err)
	}
	defer conn.Close()
	if !durable {
		if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
			return classify(err)
		}
		defer func() {
			if _, err := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = FULL`); err != nil {
				// Never hand a connection that does not wait for the disk to a durable commit: this
				// one is closed, and the pool opens a fresh one (synchronous=FULL from its DSN).
				s.opt.Log.Error("mailbox: restoring synchronous=FULL failed; reopening the writer connection", "err", err)
				conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	txAppenders.Store(tx, (*ledger.Appender)(nil))
	defer txAppenders.Delete(tx)
	defer s.tellLocal() // after the commit or rollback: watchers look again either way
	if err := fn(tx); err != nil {
		tx.Rollback()
		return classifyQueue(err)
	}
	return classify(tx.Commit())
}

func isQueueForeignKey(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintForeignKey
}

// classifyQueue is classify for errors that may already be one of the queue's own sentinels.
func classifyQueue(err error) error {
	for _, known := range []error{ErrLeaseLost, ErrBusy, ErrQueueState, ErrNotFound, ErrInvalid, ErrCorrupt} {
		if errors.Is(err, known) {
			return err
		}
	}
	return classify(err)
}
