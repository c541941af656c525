// Inclusion proofs (RFC 9162 §2.1.3): producing one from stored subtree hashes, and checking one.

package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
)

// NodeSource gives the hash of a perfect subtree: level 0 is a leaf hash, level k covers the 2^k
// leaves [index·2^k, (index+1)·2^k).
type NodeSource interface {
	Node(ctx context.Context, level uint, index uint64) (Hash, error)
}

// InclusionPath returns the RFC 9162 audit path for leaf index in the tree of the first size leaves,
// nearest the leaf first.
func InclusionPath(ctx context.Context, src NodeSource, index, size uint64) ([]Hash, error) {
	if index >= size {
		return nil, fmt.Errorf("ledger: leaf %d is not in a tree of %d leaves", index, size)
	}
	var path []Hash
	lo, hi := uint64(0), size
	var sibs [][2]uint64 // sibling ranges, root first
	for hi-lo > 1 {
		k := splitPoint(hi - lo)
		if index < lo+k {
			sibs = append(sibs, [2]uint64{lo + k, hi})
			hi = lo + k
		} else {
			sibs = append(sibs, [2]uint64{lo, lo + k})
			lo += k
		}
	}
	for i := len(sibs) - 1; i >= 0; i-- {
		h, err := SubtreeHash(ctx, src, sibs[i][0], sibs[i][1])
		if err != nil {
			return nil, err
		}
		path = append(path, h)
	}
	return path, nil
}

// SubtreeHash returns the Merkle tree hash of leaves [lo, hi) from stored perfect subtrees. The range
// must be one RFC 9162's recursion produces: its left parts are always aligned perfect subtrees.
func SubtreeHash(ctx context.Context, src NodeSource, lo, hi uint64) (Hash, error) {
	n := hi - lo
	if n == 0 || hi < lo {
		return Hash{}, fmt.Errorf("ledger: empty range [%d, %d)", lo, hi)
	}
	if n&(n-1) == 0 {
		level := uint(bits.TrailingZeros64(n))
		if lo%n != 0 {
			return Hash{}, fmt.Errorf("ledger: range [%d, %d) is not an aligned subtree", lo, hi)
		}
		return src.Node(ctx, level, lo>>level)
	}
	k := splitPoint(n)
	l, err := SubtreeHash(ctx, src, lo, lo+k)
	if err != nil {
		return Hash{}, err
	}
	r, err := SubtreeHash(ctx, src, lo+k, hi)
	if err != nil {
		return Hash{}, err
	}
	return NodeHash(l, r), nil
}

// splitPoint is the largest power of two smaller than n (n ≥ 2).
func splitPoint(n uint64) uint64 { return 1 << (63 - bits.LeadingZeros64(n-1)) }

// ErrProof is wrapped by every failed proof check.
var ErrProof = errors.New("ledger: inclusion proof does not verify")

// VerifyInclusion checks that leaf is leaf number index of the tree of size leaves whose root is root,
// using the RFC 9162 §2.1.3.2 algorithm.
func VerifyInclusion(leaf Hash, index, size uint64, path []Hash, root Hash) error {
	if index >= size {
		return fmt.Errorf("%w: index %d is not below size %d", ErrProof, index, size)
	}
	fn, sn, r := index, size-1, leaf
	for _, p := range path {
		if sn == 0 {
			return fmt.Errorf("%w: path is longer than the tree is deep", ErrProof)
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("%w: path is shorter than the tree is deep", ErrProof)
	}
	if r != root {
		return fmt.Errorf("%w: computed root %s, checkpoint root %s", ErrProof, r, root)
	}
	return nil
}
