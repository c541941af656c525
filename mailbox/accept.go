// Accept: validate and encrypt in the caller's goroutine, hand the row to the writer, and return only
// once the writer reports the transaction holding it committed (or failed).

package mailbox

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"time"

	"cafgate/mailbox/ledger"
)

// pending is one accept (or one lone ledger event) waiting for the writer.
type pending struct {
	ctx   context.Context
	row   *row
	event *ledger.Event // set instead of row for RecordEvent
	done  chan error    // buffered 1; the writer sends exactly once
}

// row is what the writer inserts for one message: metadata and sealed content.
type row struct {
	id, sender, senderDN, agency, via, remote string
	recipients                                []string
	receivedAt                                time.Time
	size                                      int
	digest                                    string
	nonce, sealed                             []byte
	decisions                                 *PackageDecision // written in the same transaction; nil: none
	overrideReason                            *sealedReason    // sealed when an override let a copy through
}

// Accept commits m durably: its messages row, recipient rows and "accepted" ledger event are written in
// one transaction (shared with concurrent accepts), committed with synchronous=FULL, and only then does
// Accept return nil. Errors wrap ErrFull, ErrUnavailable, ErrDuplicate or ErrInvalid where they apply;
// on error nothing of m is stored. If ctx ends before the writer takes m, Accept returns ctx's error and
// m is not written; once taken, Accept waits for the commit outcome whatever ctx does.
func (s *Store) Accept(ctx context.Context, m *Incoming) error {
	return s.AcceptDecided(ctx, m, nil)
}

// AcceptDecided is Accept with the package's per-recipient decisions (DecidePackage): they, their
// "decisions" event and any override are written in the message's own transaction, so an accepted
// package never lacks its decisions, even after a crash. pd nil is Accept.
func (s *Store) AcceptDecided(ctx context.Context, m *Incoming, pd *PackageDecision) error {
	if err := s.writable(ctx); err != nil {
		return err
	}
	r, err := s.prepare(m)
	if err != nil {
		return err
	}
	return s.acceptRow(ctx, m.ID, r, pd)
}

// Prepared is a message whose digest the store is taking ahead of its commit (PrepareAccept), so that
// the caller's own checks of the message run meanwhile.
type Prepared struct {
	m    Incoming      // a copy: the caller's fields may change afterwards
	sum  [32]byte      // the content's SHA-256, once done is closed
	done chan struct{} // nil: the digest is taken when the message is sealed
}

// PrepareAccept starts taking the SHA-256 of m's content in a goroutine of its own (for content of
// parallelSealBytes and more) and returns at once; AcceptPrepared then seals and commits the message
// as it was when prepared, Wait abandons it. The bytes of m.Content must not change until Wait or
// AcceptPrepared has returned.
func (s *Store) PrepareAccept(m *Incoming) *Prepared {
	p := &Prepared{}
	if m != nil { // nil is refused as a zero message by validate
		p.m = *m
	}
	if len(p.m.Content) >= parallelSealBytes {
		p.done = make(chan struct{})
		go func() {
			defer close(p.done)
			p.sum = sha256.Sum256(p.m.Content)
		}()
	}
	return p
}

// Wait returns once the preparation has finished reading the content.
func (p *Prepared) Wait() {
	if p.done != nil {
		<-p.done
	}
}

// AcceptPrepared is AcceptDecided for a message PrepareAccept prepared.
func (s *Store) AcceptPrepared(ctx context.Context, p *Prepared, pd *PackageDecision) error {
	if err := s.writable(ctx); err != nil {
		p.Wait()
		return err
	}
	r, err := s.sealPrepared(p)
	if err != nil {
		return err
	}
	return s.acceptRow(ctx, p.m.ID, r, pd)
}

// writable refuses an accept the store cannot take: read-only, closed, or its context over.
func (s *Store) writable(ctx context.Context) error {
	if s.wdb == nil {
		return fmt.Errorf("%w: store opened read-only", ErrUnavailable)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.closed:
		return fmt.Errorf("%w: store closed", ErrUnavailable)
	default:
	}
	return nil
}

// acceptRow adds the decisions to a prepared row, hands it to the writer and waits for the commit.
func (s *Store) acceptRow(ctx context.Context, id string, r *row, pd *PackageDecision) error {
	var err error
	if pd != nil {
		if len(pd.Decisions) == 0 {
			return fmt.Errorf("%w: message %s has no decisions", ErrInvalid, id)
		}
		if r.overrideReason, err = s.sealOverride(id, pd); err != nil {
			return err
		}
		r.decisions = pd
	}
	p := &pending{ctx: ctx, row: r, done: make(chan error, 1)}
	select {
	case s.reqs <- p:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return fmt.Errorf("%w: store closed", ErrUnavailable)
	}
	return <-p.done
}

// prepare validates m, takes its content's SHA-256 and seals the content; a zero m.Digest is set to
// the digest taken.
func (s *Store) prepare(m *Incoming) (*row, error) {
	if err := validate(m); err != nil {
		return nil, err
	}
	p := s.PrepareAccept(m)
	r, err := s.sealPrepared(p)
	if err == nil {
		m.Digest = p.m.Digest
	}
	return r, err
}

// sealPrepared validates a prepared message, seals its content and checks (or takes) its digest. The
// digest is taken beside the seal (two cores for a large message) and is the store's own, from the
// bytes it seals, so a caller cannot record a digest that does not match the stored content.
func (s *Store) sealPrepared(p *Prepared) (*row, error) {
	m := &p.m
	if err := validate(m); err != nil {
		p.Wait()
		return nil, err
	}
	nonce, sealed, err := s.seal.seal(m.ID, m.Content)
	if p.done != nil {
		<-p.done
	} else {
		p.sum = sha256.Sum256(m.Content)
	}
	if err != nil {
		return nil, fmt.Errorf("mailbox: sealing content: %w", err)
	}
	if err := checkDigest(m, p.sum); err != nil {
		return nil, err
	}
	return &row{
		id: m.ID, sender: m.Sender, senderDN: m.SenderDN, agency: m.Agency, via: m.Via, remote: m.RemoteAddr,
		recipients: dedupe(m.Recipients),
		receivedAt: m.ReceivedAt.UTC(),
		size:       len(m.Content),
		digest:     hex.EncodeToString(p.sum[:]),
		nonce:      nonce, sealed: sealed,
	}, nil
}

// parallelSealBytes is the content size from which PrepareAccept hashes in a goroutine of its own
// (beside the seal): below it, starting the goroutine costs more than it saves.
const parallelSealBytes = 64 << 10

// checkDigest compares a digest the caller gave (m.Digest not zero) with sum, the content's; a zero
// m.Digest asks the store to take the digest itself and is set to sum.
func checkDigest(m *Incoming, sum [32]byte) error {
	if m.Digest == ([32]byte{}) {
		m.Digest = sum
		return nil
	}
	if subtle.ConstantTimeCompare(sum[:], m.Digest[:]) != 1 {
		return fmt.Errorf("%w: message %s digest does not match its content", ErrInvalid, m.ID)
	}
	return nil
}

// validate refuses a message the store could not route or account for. The content's digest is
// checked (or taken) by prepare, which hashes the content anyway.
func validate(m *Incoming) error {
	switch {
	case m == nil:
		return fmt.Errorf("%w: nil message", ErrInvalid)
	case m.ID == "" || len(m.ID) > 200:
		return fmt.Errorf("%w: ID must be 1 to 200 bytes", ErrInvalid)
	case m.Sender == "":
		return fmt.Errorf("%w: message %s has no sender", ErrInvalid, m.ID)
	case len(dedupe(m.Recipients)) == 0:
		return fmt.Errorf("%w: message %s has no recipient", ErrInvalid, m.ID)
	case m.ReceivedAt.IsZero():
		return fmt.Errorf("%w: message %s has no receive time", ErrInvalid, m.ID)
	}
	return nil
}

// dedupe drops empty and repeated recipients, keeping first-seen order.
func dedupe(rcpts []string) []string {
	seen := make(map[string]bool, len(rcpts))
	out := make([]string, 0, len(rcpts))
	for _, r := range rcpts {
		if r != "" && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}
