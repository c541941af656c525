// Rotating the checkpoint signing key. The rotation is itself a ledger event ("key-rotated") holding
// a statement, as a signed note, that the log's key changes from OLD to NEW after the first SIZE
// events (whose root it names), signed by both keys: the old key vouches for the new one and the new
// one for the old, so a verifier that trusts any key of the chain can follow it in both directions.
// Each key may sign checkpoints of a span of tree sizes only: the first up to the size its rotation
// names, each later one from the size that includes its rotation event until the next rotation. A
// checkpoint outside its key's span (a retired key used again) is refused.

package ledger

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// KeyRotated is the type of the event that records a change of the checkpoint signing key.
const KeyRotated = "key-rotated"

// RotationData is the data of "key-rotated". Statement is the signed note; the other fields repeat
// what it says, for people and queries.
type RotationData struct {
	Old       string `json:"old"`  // the retired verifier key, NAME+HASH+BASE64
	New       string `json:"new"`  // the new one
	Size      uint64 `json:"size"` // events before the rotation (the rotation event's own number)
	Root      string `json:"root"` // their root, base64
	Statement string `json:"statement"`
	By        string `json:"by,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// rotationHeader starts every rotation statement.
const rotationHeader = "cafgate ledger key rotation v1"

// rotationSetting names the settings row listing the rotation events' numbers (comma-separated). It
// only tells a verifier where to look before its pass; the pass checks it against the events.
const rotationSetting = "ledger_rotations"

// RotationBody is the text of a rotation statement.
func RotationBody(origin string, size uint64, root Hash, oldKey, newKey string) string {
	return fmt.Sprintf("%s\norigin %s\nsize %d\nroot %s\nold %s\nnew %s\n", rotationHeader, origin, size, root, oldKey, newKey)
}

// Rotation is one verified link of the key chain.
type Rotation struct {
	Event uint64 // the rotation event's number (= Size)
	Old   string
	New   string
	Root  Hash
	Data  RotationData
}

// ChainKey is one key of the chain with the tree sizes it may sign.
type ChainKey struct {
	VKey     string
	Verifier note.Verifier
	From     uint64 // smallest tree size it signs
	Until    uint64 // largest; math.MaxUint64 for the current key
	Anchored bool   // it is one of the keys the verifier was given
}

// Span describes the sizes the key signs, for messages.
func (k ChainKey) Span() string {
	if k.Until == math.MaxUint64 {
		return fmt.Sprintf("trees of %d events or more (the current key)", max(k.From, 1))
	}
	return fmt.Sprintf("trees of %d to %d events (retired at key rotation event %d)", max(k.From, 1), k.Until, k.Until)
}

// RotateKey appends the rotation from old to new inside q, a write transaction (BEGIN IMMEDIATE):
// the key-rotated event at the end of the ledger, then a checkpoint signed by the new key covering it,
// stored in ledger_checkpoints. Both keys must have the same name (the log's origin). It returns the
// event's number and the new checkpoint. The caller then installs the new key file and appends the
// checkpoint to the checkpoint file.
func RotateKey(ctx context.Context, q Querier, old, new *Key, at time.Time, by, reason string) (uint64, *Checkpoint, error) {
	if old.Signer.Name() != new.Signer.Name() {
		return 0, nil, fmt.Errorf("ledger: the new key is named %q, the log %q: a log keeps its origin", new.Signer.Name(), old.Signer.Name())
	}
	if old.VKey == new.VKey {
		return 0, nil, errors.New("ledger: the new key is the old key")
	}
	head, err := LoadHead(ctx, q)
	if err != nil {
		return 0, nil, err
	}
	size, root := head.Size(), head.Root()
	stmt, err := note.Sign(&note.Note{Text: RotationBody(old.Signer.Name(), size, root, old.VKey, new.VKey)}, old.Signer, new.Signer)
	if err != nil {
		return 0, nil, fmt.Errorf("ledger: signing the rotation: %w", err)
	}
	data, err := EncodeData(RotationData{Old: old.VKey, New: new.VKey, Size: size, Root: root.String(), Statement: string(stmt), By: by, Reason: reason})
	if err != nil {
		return 0, nil, err
	}
	a, err := NewAppender(ctx, q)
	if err != nil {
		return 0, nil, err
	}
	n, err := a.Append(ctx, at, &Event{Type: KeyRotated, Data: data})
	if err != nil {
		return 0, nil, err
	}
	if n != size {
		return 0, nil, fmt.Errorf("ledger: the rotation became event %d, not %d: another append ran in this transaction", n, size)
	}
	var list string
	err = q.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, rotationSetting).Scan(&list)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, nil, err
	}
	if list != "" {
		list += ","
	}
	list += strconv.FormatUint(n, 10)
	if _, err := q.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value`,
		rotationSetting, list); err != nil {
		return 0, nil, err
	}
	t, err := LoadHead(ctx, q)
	if err != nil {
		return 0, nil, err
	}
	cp, err := SignCheckpoint(new.Signer, t.Size(), t.Root())
	if err != nil {
		return 0, nil, err
	}
	if err := StoreCheckpoint(ctx, q, cp, at); err != nil {
		return 0, nil, err
	}
	cp.Source = "database"
	return n, cp, nil
}

// isRotation reports whether canonical event bytes are of type key-rotated (the type follows the
// fixed-width time within the first 80 bytes).
func isRotation(event []byte) bool {
	return bytes.Contains(event[:min(len(event), 100)], []byte(`","type":"`+KeyRotated+`",`))
}

// rotationEvents reads the events the settings row lists as rotations, in order. A listed event that
// is missing or not a rotation is returned as a finding (the pass names any rotation not listed).
func rotationEvents(ctx context.Context, q Querier) (nums []uint64, evs [][]byte, err error) {
	var list string
	err = q.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, rotationSetting).Scan(&list)
	if errors.Is(err, sql.ErrNoRows) || (err != nil && strings.Contains(err.Error(), "no such table")) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, s := range strings.Split(list, ",") {
		if s == "" {
			continue
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("ledger: the list of key rotations (settings %s) is malformed: %q", rotationSetting, list)
		}
		var ev []byte
		err = q.QueryRowContext(ctx, `SELECT CAST(event AS BLOB) FROM ledger_events WHERE seq = ?`, int64(n)).Scan(&ev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, nil, err
		}
		nums, evs = append(nums, n), append(evs, ev)
	}
	return nums, evs, nil
}

// openRotation checks one rotation event's bytes: canonical, of type key-rotated, numbered n, and a
// statement signed by both the old and the new key that says what the data says.
func openRotation(n uint64, ev []byte) (*Rotation, error) {
	if ev == nil {
		return nil, fmt.Errorf("event %d, listed as a key rotation, is missing", n)
	}
	e, err := Decode(ev)
	if err != nil {
		return nil, fmt.Errorf("event %d, listed as a key rotation, does not decode: %w", n, err)
	}
	if e.Type != KeyRotated || e.N != n {
		return nil, fmt.Errorf("event %d, listed as a key rotation, is a %q event numbered %d", n, e.Type, e.N)
	}
	var d RotationData
	if err := decodeData(e.Data, &d); err != nil {
		return nil, fmt.Errorf("key rotation event %d: %w", n, err)
	}
	oldV, err1 := note.NewVerifier(d.Old)
	newV, err2 := note.NewVerifier(d.New)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("key rotation event %d: a key does not parse: %w", n, err)
	}
	if oldV.Name() != newV.Name() {
		return nil, fmt.Errorf("key rotation event %d: the keys have different names", n)
	}
	msg, err := note.Open([]byte(d.Statement), note.VerifierList(oldV, newV))
	if err != nil {
		return nil, fmt.Errorf("key rotation event %d: the statement does not verify: %w", n, err)
	}
	signed := map[uint32]bool{}
	for _, s := range msg.Sigs {
		signed[s.Hash] = true
	}
	if !signed[oldV.KeyHash()] || !signed[newV.KeyHash()] {
		return nil, fmt.Errorf("key rotation event %d: the statement is not signed by both the old and the new key", n)
	}
	root, err := ParseHash(d.Root)
	if err != nil {
		return nil, fmt.Errorf("key rotation event %d: %w", n, err)
	}
	if msg.Text != RotationBody(oldV.Name(), n, root, d.Old, d.New) || d.Size != n {
		return nil, fmt.Errorf("key rotation event %d: the signed statement does not say what the event says (size %d)", n, d.Size)
	}
	return &Rotation{Event: n, Old: d.Old, New: d.New, Root: root, Data: d}, nil
}

// buildChain turns verified rotations (in order) into the key chain and ties it to the anchors (the
// keys the verifier was given). Without rotations the anchors are the chain, each signing any size.
// With rotations, the chain must contain an anchor; if it does not, or a link is broken, the
// problem is returned and only the anchors are used.
func buildChain(rots []*Rotation, anchors []anchor) ([]ChainKey, error) {
	anchored := func(vkey string) bool {
		for _, a := range anchors {
			if a.matches(vkey) {
				return true
			}
		}
		return false
	}
	fallback := func() []ChainKey {
		var out []ChainKey
		for _, a := range anchors {
			out = append(out, ChainKey{VKey: a.vkey, Verifier: a.v, Until: math.MaxUint64, Anchored: true})
		}
		return out
	}
	if len(rots) == 0 {
		return fallback(), nil
	}
	var chain []ChainKey
	from := uint64(0)
	for i, r := range rots {
		if i > 0 && r.Old != rots[i-1].New {
			return fallback(), fmt.Errorf("key rotation event %d retires %s, but the key then in use was %s", r.Event, r.Old, rots[i-1].New)
		}
		if i > 0 && r.Event <= rots[i-1].Event {
			return fallback(), fmt.Errorf("key rotation events %d and %d are out of order", rots[i-1].Event, r.Event)
		}
		v, _ := note.NewVerifier(r.Old)
		chain = append(chain, ChainKey{VKey: r.Old, Verifier: v, From: from, Until: r.Event, Anchored: anchored(r.Old)})
		from = r.Event + 1
	}
	last := rots[len(rots)-1]
	v, _ := note.NewVerifier(last.New)
	chain = append(chain, ChainKey{VKey: last.New, Verifier: v, From: from, Until: math.MaxUint64, Anchored: anchored(last.New)})
	for i, k := range chain {
		for j := range chain {
			if j != i && chain[j].VKey == k.VKey {
				return fallback(), fmt.Errorf("the key %s comes back after it was retired", k.VKey)
			}
		}
		if k.Anchored {
			return chain, nil
		}
	}
	var given []string
	for _, a := range anchors {
		given = append(given, a.String())
	}
	return fallback(), fmt.Errorf("none of the %d keys the ledger's rotations name is a public key you gave (%s)", len(chain), strings.Join(given, ", "))
}

// anchor is a trusted key: its text when known, and its verifier.
type anchor struct {
	vkey string
	v    note.Verifier
}

// matches reports whether vkey is this key: the same text, or (for a key known only as a verifier)
// the same name and key hash.
func (a anchor) matches(vkey string) bool {
	if a.vkey != "" {
		return a.vkey == vkey
	}
	v, err := note.NewVerifier(vkey)
	return err == nil && v.Name() == a.v.Name() && v.KeyHash() == a.v.KeyHash()
}

func (a anchor) String() string {
	if a.vkey != "" {
		return a.vkey
	}
	return fmt.Sprintf("%s+%08x", a.v.Name(), a.v.KeyHash())
}

// decodeData parses an event's data object into v.
func decodeData(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("data does not parse: %w", err)
	}
	return nil
}

// openWithChain opens a checkpoint with the chain's keys and checks the size is in the span of a key
// that signed it.
func openWithChain(msg []byte, chain []ChainKey) (*Checkpoint, error) {
	vs := make([]note.Verifier, len(chain))
	for i, k := range chain {
		vs[i] = k.Verifier
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("%w: no public key", ErrCheckpoint)
	}
	n, err := note.Open(msg, note.VerifierList(vs...))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	c, err := ParseBody(n.Text)
	if err != nil {
		return nil, err
	}
	if c.Origin != vs[0].Name() {
		return nil, fmt.Errorf("%w: origin %q is not the key's name %q", ErrCheckpoint, c.Origin, vs[0].Name())
	}
	var refused []string
	for _, s := range n.Sigs {
		for _, k := range chain {
			if k.Verifier.KeyHash() != s.Hash || k.Verifier.Name() != s.Name {
				continue
			}
			if c.Size >= k.From && c.Size <= k.Until {
				c.Note = append([]byte(nil), msg...)
				c.Key = k.VKey
				return c, nil
			}
			refused = append(refused, fmt.Sprintf("key %s signs %s only", k.VKey, k.Span()))
		}
	}
	return nil, fmt.Errorf("%w: it covers %d events but is signed by a key not in use at that size: %s", ErrCheckpoint, c.Size, strings.Join(refused, "; "))
}

// LoadKeyChain follows the key rotations recorded in the ledger from the trusted keys and returns the
// chain, oldest key first (just the trusted keys when there was no rotation).
func LoadKeyChain(ctx context.Context, q Querier, trusted ...string) ([]ChainKey, error) {
	nums, evs, err := rotationEvents(ctx, q)
	if err != nil {
		return nil, err
	}
	var rots []*Rotation
	for i, n := range nums {
		r, err := openRotation(n, evs[i])
		if err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		rots = append(rots, r)
	}
	var anchors []anchor
	for _, k := range trusted {
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("ledger: public key %q: %w", k, err)
		}
		anchors = append(anchors, anchor{vkey: k, v: v})
	}
	chain, err := buildChain(rots, anchors)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return chain, nil
}
