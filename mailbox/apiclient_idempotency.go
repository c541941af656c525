// Idempotency keys of the HTTPS API: a retried upload is answered with the first answer and never
// accepted twice. The key is reserved (a durable "pending" row) before the message is accepted and
// bound to the message ID after; the message's own commit is the intake's, in between. The crash
// windows and how each is closed:
//
//   - crash before the reservation commits: nothing is stored; a retry starts afresh.
//   - crash after the reservation, before the message commits: the row is pending and no message
//     matches it; a retry (once the holder is known dead or its lease has lapsed) takes the key over.
//   - crash after the message commits, before the binding: the row is pending and the message is
//     stored; a retry finds it (same sender, same content digest, accepted after the reservation, over
//     HTTPS, bound to no other key), binds it, and answers with it.
//   - crash after the binding: a retry is answered from the binding.
//
// "Known dead" is a holder other than the running process: each gateway start has its own holder ID,
// and one gateway process serves the API over a database. A pending row of the running process is "in
// progress" (the client is asked to retry later) until its lease lapses.

package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// IdemOutcome is what a reservation found.
type IdemOutcome int

const (
	// IdemReserved: the key is the caller's; accept the message, then Complete (or Release on failure).
	IdemReserved IdemOutcome = iota
	// IdemReplay: the key was used for this request before; MessageID is the first answer.
	IdemReplay
	// IdemInProgress: the same request is being accepted right now; retry after RetryAfter.
	IdemInProgress
	// IdemMismatch: the key was used for a different request.
	IdemMismatch
)

// IdemRequest reserves one idempotency key.
type IdemRequest struct {
	ClientID    string
	Key         string
	RequestHash string        // what the request asked for; a retry must ask for the same
	Sender      string        // the practitioner the upload is made for
	Digest      string        // SHA-256 (hex) of the message about to be accepted
	Holder      string        // the running process's holder ID
	Lease       time.Duration // how long a pending key of this holder counts as in progress
	TTL         time.Duration // how long a completed key is remembered
}

// IdemResult is the outcome of a reservation.
type IdemResult struct {
	Outcome    IdemOutcome
	MessageID  string        // for IdemReplay
	RetryAfter time.Duration // for IdemInProgress
}

// maxKeyPurge is how many expired keys one reservation deletes, so purging never takes long.
const maxKeyPurge = 64

// ReserveIdempotencyKey reserves r.Key for r.ClientID, or reports the first answer, a request under
// way, or a different request under the same key. It resolves a pending key left by a dead holder as
// described at the top of this file.
func (s *Store) ReserveIdempotencyKey(ctx context.Context, r IdemRequest) (*IdemResult, error) {
	if r.ClientID == "" || r.Key == "" || r.RequestHash == "" || r.Holder == "" {
		return nil, fmt.Errorf("%w: an idempotency reservation needs a client, key, request hash and holder", ErrInvalid)
	}
	now := s.opt.Now()
	var res *IdemResult
	err := s.episodeTx(ctx, func(tx *sql.Tx) error {
		if err := purgeKeys(ctx, tx, now.Add(-r.TTL)); err != nil {
			return err
		}
		row, err := loadKey(ctx, tx, r.ClientID, r.Key)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			res = &IdemResult{Outcome: IdemReserved}
			return insertKey(ctx, tx, r, now)
		case err != nil:
			return err
		}
		res, err = s.resolveKey(ctx, tx, r, row, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// storedKey is an api_idempotency row.
type storedKey struct {
	requestHash, state, holder, sender, digest string
	seqFloor                                   int64
	messageID                                  sql.NullString
	updated                                    time.Time
}

// resolveKey decides about a key that is already stored.
func (s *Store) resolveKey(ctx context.Context, tx *sql.Tx, r IdemRequest, k *storedKey, now time.Time) (*IdemResult, error) {
	if !equalConstantTime(k.requestHash, r.RequestHash) {
		return &IdemResult{Outcome: IdemMismatch}, nil
	}
	if k.state == "done" {
		return &IdemResult{Outcome: IdemReplay, MessageID: k.messageID.String}, nil
	}
	if left := k.updated.Add(r.Lease).Sub(now); k.holder == r.Holder && left > 0 {
		return &IdemResult{Outcome: IdemInProgress, RetryAfter: left}, nil
	}
	id, err := findUnboundMessage(ctx, tx, k)
	if err != nil {
		return nil, err
	}
	if id != "" {
		_, err := tx.ExecContext(ctx, `UPDATE api_idempotency SET state = 'done', message_id = ?, updated_at = ?
			WHERE client_id = ? AND key = ?`, id, formatTime(now), r.ClientID, r.Key)
		s.opt.Log.Warn("idempotency key recovered after an interrupted upload", "client", r.ClientID, "message", id)
		return &IdemResult{Outcome: IdemReplay, MessageID: id}, classify(err)
	}
	floor, err := maxSeq(ctx, tx)
	if err != nil {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, `UPDATE api_idempotency SET holder = ?, sender = ?, digest = ?, seq_floor = ?, updated_at = ?
		WHERE client_id = ? AND key = ?`, r.Holder, r.Sender, r.Digest, floor, formatTime(now), r.ClientID, r.Key)
	s.opt.Log.Info("idempotency key taken over after an interrupted upload", "client", r.ClientID)
	return &IdemResult{Outcome: IdemReserved}, classify(err)
}

// findUnboundMessage looks for the message a pending key's holder may have committed before it died.
func findUnboundMessage(ctx context.Context, tx *sql.Tx, k *storedKey) (string, error) {
	var id string
	err := tx.QueryRowContext(ctx, `SELECT m.id FROM messages m WHERE m.seq > ? AND m.sender = ? AND m.digest = ?
		AND m.via = 'https' AND NOT EXISTS (SELECT 1 FROM api_idempotency i WHERE i.message_id = m.id)
		ORDER BY m.seq LIMIT 1`, k.seqFloor, k.sender, k.digest).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, classify(err)
}

func loadKey(ctx context.Context, tx *sql.Tx, client, key string) (*storedKey, error) {
	var k storedKey
	var updated string
	err := tx.QueryRowContext(ctx, `SELECT request_hash, state, holder, sender, digest, seq_floor, message_id, updated_at
		FROM api_idempotency WHERE client_id = ? AND key = ?`, client, key).
		Scan(&k.requestHash, &k.state, &k.holder, &k.sender, &k.digest, &k.seqFloor, &k.messageID, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if err != nil {
		return nil, classify(err)
	}
	if k.updated, err = parseTime(updated); err != nil {
		return nil, fmt.Errorf("mailbox: idempotency key of client %s: %w", client, err)
	}
	return &k, nil
}

func insertKey(ctx context.Context, tx *sql.Tx, r IdemRequest, now time.Time) error {
	floor, err := maxSeq(ctx, tx)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO api_idempotency
		(client_id, key, request_hash, state, holder, sender, digest, seq_floor, created_at, updated_at)
		VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)`, r.ClientID, r.Key, r.RequestHash, r.Holder, r.Sender, r.Digest,
		floor, formatTime(now), formatTime(now))
	return classify(err)
}

func maxSeq(ctx context.Context, tx *sql.Tx) (int64, error) {
	var n int64
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM messages`).Scan(&n)
	return n, classify(err)
}

// purgeKeys forgets a few completed keys created before cutoff (and pending ones abandoned that long).
func purgeKeys(ctx context.Context, tx *sql.Tx, cutoff time.Time) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM api_idempotency WHERE rowid IN
		(SELECT rowid FROM api_idempotency WHERE created_at < ? LIMIT ?)`, formatTime(cutoff), maxKeyPurge)
	return classify(err)
}

// CompleteIdempotencyKey binds a reserved key to the accepted message. It returns false (and no
// error) when the key is no longer the holder's: its lease lapsed and another request took it over.
func (s *Store) CompleteIdempotencyKey(ctx context.Context, clientID, key, holder, messageID string) (bool, error) {
	var done bool
	err := s.episodeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_idempotency SET state = 'done', message_id = ?, updated_at = ?
			WHERE client_id = ? AND key = ? AND holder = ? AND state = 'pending'`,
			messageID, formatTime(s.opt.Now()), clientID, key, holder)
		if err != nil {
			return classify(err)
		}
		n, _ := res.RowsAffected()
		done = n == 1
		return nil
	})
	return done, err
}

// ReleaseIdempotencyKey gives a reserved key up after the upload was refused, so a retry starts afresh.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, clientID, key, holder string) error {
	return s.episodeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM api_idempotency WHERE client_id = ? AND key = ? AND holder = ? AND state = 'pending'`,
			clientID, key, holder)
		return classify(err)
	})
}
