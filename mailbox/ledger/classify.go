// Naming what happened at the first event that fails: every event carries its own number ("n") and
// its recorded leaf hash, so the rows around it tell an alteration from an insertion, a removal or a
// reordering.

package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// slot is what the verifier sees at one position.
type slot struct {
	exists  bool
	seq     uint64 // the row's number (may differ from the position after a gap)
	claim   uint64 // the number inside the event
	claimed bool   // the event starts like a canonical event
	leafOK  bool   // the event's bytes hash to its recorded leaf hash
}

// at returns the row with the smallest number ≥ pos.
func at(ctx context.Context, q Querier, pos uint64) (slot, error) {
	var s slot
	var seq int64
	var data, leaf []byte
	err := q.QueryRowContext(ctx, `SELECT seq, event, leaf FROM ledger_events WHERE seq >= ? ORDER BY seq LIMIT 1`,
		int64(pos)).Scan(&seq, &data, &leaf)
	if errors.Is(err, sql.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	h := LeafHash(data)
	s.exists, s.seq, s.leafOK = true, uint64(seq), string(h[:]) == string(leaf)
	s.claim, s.claimed = claimedNumber(data)
	return s, nil
}

// exactly returns the row numbered pos, if there is one.
func exactly(ctx context.Context, q Querier, pos uint64) (slot, error) {
	s, err := at(ctx, q, pos)
	if err != nil || s.seq != pos {
		return slot{}, err
	}
	return s, nil
}

// classify names the problem found at position p, the first position that failed.
func classify(ctx context.Context, q Querier, p uint64) (*Finding, error) {
	here, err := at(ctx, q, p)
	if err != nil {
		return nil, err
	}
	one := func(kind, format string, args ...any) (*Finding, error) {
		return &Finding{Kind: kind, Event: p, Last: p, Detail: fmt.Sprintf(format, args...)}, nil
	}
	if here.exists && here.seq > p {
		detail := fmt.Sprintf("the ledger jumps from event %d to event %d", p-1, here.seq)
		if p == 0 {
			detail = fmt.Sprintf("the ledger starts at event %d", here.seq)
		}
		return &Finding{Kind: KindRemoved, Event: p, Last: here.seq - 1, Detail: detail}, nil
	}
	next, err := exactly(ctx, q, p+1)
	if err != nil {
		return nil, err
	}
	if here.claimed && here.claim != p {
		other, err := exactly(ctx, q, here.claim)
		if err != nil {
			return nil, err
		}
		if other.exists && other.claimed && other.claim == p {
			return &Finding{Kind: KindReordered, Event: min(p, here.claim), Last: max(p, here.claim), Detail: fmt.Sprintf(
				"events %d and %d have changed places", p, here.claim)}, nil
		}
	}
	if next.exists && next.claimed && next.claim == p && next.leafOK {
		return one(KindInserted, "an event was inserted at position %d: the event written as number %d now sits at %d", p, p, p+1)
	}
	switch {
	case !here.claimed:
		return one(KindAltered, "event %d does not start like a ledger event (version 1, its number): its bytes were changed", p)
	case here.claim == p:
		return one(KindAltered, "event %d no longer matches its recorded hash: its bytes were changed", p)
	case here.claim > p && here.leafOK && (!next.exists || (next.claimed && next.claim == here.claim+1)):
		missing := fmt.Sprintf("event %d is missing", p)
		if here.claim-1 > p {
			missing = fmt.Sprintf("events %d to %d are missing", p, here.claim-1)
		}
		return &Finding{Kind: KindRemoved, Event: p, Last: here.claim - 1, Detail: fmt.Sprintf(
			"position %d holds event %d and the events after it were renumbered: %s", p, here.claim, missing)}, nil
	case here.claim > p:
		return one(KindReordered, "position %d holds the event numbered %d", p, here.claim)
	default:
		return one(KindReordered, "position %d holds a copy or a move of earlier event %d", p, here.claim)
	}
}
