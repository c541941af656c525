// Proofs for one event: the event's bytes, its audit path and the signed checkpoint it leads to, in a
// text form a shell script with openssl can check (docs/ledger.md) as well as Verify below.

package ledger

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Proof shows that one event is in the ledger a checkpoint signed.
type Proof struct {
	Index      uint64 // the event's number: its leaf index
	Size       uint64 // the checkpoint's tree size
	Event      []byte // the canonical event bytes
	Path       []Hash // RFC 9162 audit path, nearest the leaf first
	Checkpoint []byte // the signed note
}

// ErrNotCovered is returned by Prove when no stored checkpoint covers the event yet.
var ErrNotCovered = errors.New("ledger: no checkpoint covers this event yet")

// Prove builds the proof for event n against the newest stored checkpoint that covers it, checked
// with v when v is not nil (checkpoints v does not open, such as those of a key rotated out, are
// passed over). q should be one read transaction.
func Prove(ctx context.Context, q Querier, n uint64, v note.Verifier) (*Proof, error) {
	stored, err := StoredCheckpoints(ctx, q, false)
	if err != nil {
		return nil, err
	}
	var cp *Checkpoint
	var firstErr error // a checkpoint v does not open: signed by an earlier key of the chain, or forged
	for i := len(stored) - 1; i >= 0 && cp == nil; i-- {
		var c *Checkpoint
		if v != nil {
			if c, err = OpenCheckpoint(stored[i].Note, v); err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("database checkpoint %d: %w", stored[i].ID, err)
				}
				continue
			}
		} else if c, err = parseUnverified(stored[i].Note); err != nil {
			return nil, err
		}
		if c.Size > n {
			cp = c
		}
	}
	if cp == nil && firstErr != nil {
		return nil, firstErr
	}
	if cp == nil {
		return nil, fmt.Errorf("%w (event %d); the next checkpoint is written within the checkpoint interval, or when the gateway stops", ErrNotCovered, n)
	}
	data, leaf, err := ReadEvent(ctx, q, n)
	if err != nil {
		return nil, err
	}
	if LeafHash(data) != leaf {
		return nil, fmt.Errorf("ledger: event %d no longer matches its recorded hash; run cafgate ledger verify", n)
	}
	path, err := InclusionPath(ctx, Nodes{Q: q}, n, cp.Size)
	if err != nil {
		return nil, err
	}
	p := &Proof{Index: n, Size: cp.Size, Event: data, Path: path, Checkpoint: cp.Note}
	if v != nil {
		if err := p.Verify(v); err != nil {
			return nil, fmt.Errorf("the stored tree does not match the checkpoint; run cafgate ledger verify: %w", err)
		}
	}
	return p, nil
}

// parseUnverified reads a checkpoint note's body without checking its signature.
func parseUnverified(msg []byte) (*Checkpoint, error) {
	body, _, ok := bytes.Cut(msg, []byte("\n\n"))
	if !ok {
		return nil, fmt.Errorf("%w: not a signed note", ErrCheckpoint)
	}
	c, err := ParseBody(string(body) + "\n")
	if err != nil {
		return nil, err
	}
	c.Note = msg
	return c, nil
}

// Verify checks the proof: the checkpoint's signature with v, the event's own number, and the audit
// path from the event's leaf hash to the checkpoint's root.
func (p *Proof) Verify(v note.Verifier) error {
	cp, err := OpenCheckpoint(p.Checkpoint, v)
	if err != nil {
		return err
	}
	if cp.Size != p.Size {
		return fmt.Errorf("%w: proof says tree size %d, checkpoint %d", ErrProof, p.Size, cp.Size)
	}
	if c, ok := claimedNumber(p.Event); !ok || c != p.Index {
		return fmt.Errorf("%w: the event does not carry number %d", ErrProof, p.Index)
	}
	return VerifyInclusion(LeafHash(p.Event), p.Index, p.Size, p.Path, cp.Root)
}

// proofHeader starts the text form.
const proofHeader = "cafgate ledger inclusion proof v1"

// MarshalText writes the proof as lines: header, "index N", "size N", "event JSON", "leaf B64",
// one "path B64" per hash, then "checkpoint" and the signed note.
func (p *Proof) MarshalText() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nindex %d\nsize %d\nevent %s\nleaf %s\n", proofHeader, p.Index, p.Size, p.Event, LeafHash(p.Event))
	for _, h := range p.Path {
		fmt.Fprintf(&b, "path %s\n", h)
	}
	b.WriteString("checkpoint\n")
	b.Write(p.Checkpoint)
	return b.Bytes(), nil
}

// UnmarshalText reads the form MarshalText writes.
func (p *Proof) UnmarshalText(text []byte) error {
	head, note, ok := bytes.Cut(text, []byte("\ncheckpoint\n"))
	if !ok {
		return fmt.Errorf("%w: no checkpoint section", ErrProof)
	}
	*p = Proof{Checkpoint: append([]byte(nil), note...)}
	sc := bufio.NewScanner(bytes.NewReader(head))
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() || sc.Text() != proofHeader {
		return fmt.Errorf("%w: not a cafgate ledger proof", ErrProof)
	}
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), " ")
		var err error
		switch key {
		case "index":
			p.Index, err = strconv.ParseUint(val, 10, 64)
		case "size":
			p.Size, err = strconv.ParseUint(val, 10, 64)
		case "event":
			p.Event = []byte(val)
		case "leaf": // recomputed by Verify; informative only
		case "path":
			var h Hash
			h, err = ParseHash(val)
			p.Path = append(p.Path, h)
		default:
			err = fmt.Errorf("unknown line %q", key)
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrProof, err)
		}
	}
	return sc.Err()
}
