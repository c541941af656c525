// The Merkle tree of RFC 9162 §2.1: leaf hash SHA-256(0x00||entry), node hash SHA-256(0x01||l||r),
// the tree over n leaves split at the largest power of two below n. Tree keeps only its right edge
// (the roots of its perfect subtrees), which is all an append needs.

package ledger

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/bits"
)

// Hash is a SHA-256 value.
type Hash [32]byte

// String returns the hash in standard base64, as checkpoints write it.
func (h Hash) String() string { return base64.StdEncoding.EncodeToString(h[:]) }

// ParseHash reads a base64 hash.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("ledger: %q is not a base64 SHA-256 hash", s)
	}
	copy(h[:], b)
	return h, nil
}

// LeafHash is SHA-256(0x00 || entry).
func LeafHash(entry []byte) Hash {
	d := sha256.New()
	d.Write([]byte{0})
	d.Write(entry)
	var h Hash
	d.Sum(h[:0])
	return h
}

// NodeHash is SHA-256(0x01 || left || right).
func NodeHash(left, right Hash) Hash {
	var buf [1 + 2*len(Hash{})]byte
	buf[0] = 1
	copy(buf[1:], left[:])
	copy(buf[1+len(left):], right[:])
	return sha256.Sum256(buf[:])
}

// EmptyRoot is the root of the tree with no leaves: SHA-256 of the empty string.
func EmptyRoot() Hash { return sha256.Sum256(nil) }

// Tree is a Merkle tree's size and right edge: the roots of the perfect subtrees its leaves divide
// into, largest (leftmost) first, one per set bit of the size.
type Tree struct {
	size uint64
	edge []Hash
}

// NewTree returns a tree of size leaves with the given right edge (as Edge returns it).
func NewTree(size uint64, edge []Hash) (*Tree, error) {
	if len(edge) != bits.OnesCount64(size) {
		return nil, fmt.Errorf("ledger: a tree of %d leaves has %d perfect subtrees, got %d", size, bits.OnesCount64(size), len(edge))
	}
	return &Tree{size: size, edge: append([]Hash(nil), edge...)}, nil
}

// Size is the number of leaves.
func (t *Tree) Size() uint64 { return t.size }

// Edge returns a copy of the right edge.
func (t *Tree) Edge() []Hash { return append([]Hash(nil), t.edge...) }

// Clone returns an independent copy.
func (t *Tree) Clone() *Tree { return &Tree{size: t.size, edge: t.Edge()} }

// Append adds a leaf and returns completed with the roots of the perfect subtrees the leaf completes
// appended, lowest level (1) first: subtree level k is the one of 2^k leaves ending at this leaf.
func (t *Tree) Append(leaf Hash, completed []Hash) []Hash {
	h := leaf
	for s := t.size; s&1 == 1; s >>= 1 {
		h = NodeHash(t.edge[len(t.edge)-1], h)
		t.edge = t.edge[:len(t.edge)-1]
		completed = append(completed, h)
	}
	t.edge = append(t.edge, h)
	t.size++
	return completed
}

// Root returns the tree head: the RFC 9162 Merkle tree hash of all the leaves.
func (t *Tree) Root() Hash {
	if t.size == 0 {
		return EmptyRoot()
	}
	r := t.edge[len(t.edge)-1]
	for i := len(t.edge) - 2; i >= 0; i-- {
		r = NodeHash(t.edge[i], r)
	}
	return r
}

// edgeSubtrees lists the perfect subtrees (level, index) making up a tree of size leaves, leftmost
// first: the subtree at level k with index i covers leaves [i·2^k, (i+1)·2^k).
func edgeSubtrees(size uint64) (levels []uint, index []uint64) {
	var off uint64
	for k := 63; k >= 0; k-- {
		if size&(1<<uint(k)) != 0 {
			levels = append(levels, uint(k))
			index = append(index, off>>uint(k))
			off += 1 << uint(k)
		}
	}
	return levels, index
}

// completedBy returns how many subtrees above the leaves appending leaf number n completes: the number
// of trailing one bits of n.
func completedBy(n uint64) int { return bits.TrailingZeros64(^n) }

// lastLeaf is the number of the leaf whose append completed subtree (level, index).
func lastLeaf(level uint, index uint64) uint64 { return (index+1)<<level - 1 }
