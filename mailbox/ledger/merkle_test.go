package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// mth is RFC 9162's definition of the Merkle tree hash, written out recursively as the RFC does.
func mth(leaves [][]byte) Hash {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0}, leaves[0]...))
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := mth(leaves[:k]), mth(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func entries(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf(`{"v":1,"n":%d}`, i))
	}
	return out
}

// memNodes is a NodeSource over every perfect subtree of a list of leaves, computed directly.
type memNodes struct{ leaves [][]byte }

func (m memNodes) Node(_ context.Context, level uint, index uint64) (Hash, error) {
	lo, hi := index<<level, (index+1)<<level
	if hi > uint64(len(m.leaves)) {
		return Hash{}, errors.New("beyond the tree")
	}
	return mth(m.leaves[lo:hi]), nil
}

// tlogHashes adapts a leaf list to golang.org/x/mod/sumdb/tlog, an independent implementation of the
// same tree, used here as a second opinion.
type tlogHashes struct{ stored []tlog.Hash }

func (t tlogHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = t.stored[x]
	}
	return out, nil
}

func buildTlog(t *testing.T, leaves [][]byte) tlogHashes {
	var th tlogHashes
	for i, l := range leaves {
		hs, err := tlog.StoredHashes(int64(i), l, th)
		if err != nil {
			t.Fatal(err)
		}
		th.stored = append(th.stored, hs...)
	}
	return th
}

func TestTreeMatchesRFCDefinitionAndTlog(t *testing.T) {
	leaves := entries(300)
	th := buildTlog(t, leaves)
	tr := &Tree{}
	if tr.Root() != mth(nil) {
		t.Fatal("empty root is not SHA-256 of the empty string")
	}
	for n := 1; n <= len(leaves); n++ {
		completed := tr.Append(LeafHash(leaves[n-1]), nil)
		if len(completed) != completedBy(uint64(n-1)) {
			t.Fatalf("leaf %d completed %d subtrees, want %d", n-1, len(completed), completedBy(uint64(n-1)))
		}
		for k, h := range completed { // level k+1 ending at leaf n-1
			lo := n - 1<<(k+1)
			if h != mth(leaves[lo:n]) {
				t.Fatalf("completed subtree level %d at leaf %d is wrong", k+1, n-1)
			}
		}
		want := mth(leaves[:n])
		if got := tr.Root(); got != want {
			t.Fatalf("size %d: root %s, RFC definition %s", n, got, want)
		}
		tl, err := tlog.TreeHash(int64(n), th)
		if err != nil || Hash(tl) != want {
			t.Fatalf("size %d: tlog says %x (%v), we say %s", n, tl, err, want)
		}
		again, err := NewTree(tr.Size(), tr.Edge())
		if err != nil || again.Root() != want {
			t.Fatalf("size %d: tree rebuilt from its edge differs: %v", n, err)
		}
	}
	if _, err := NewTree(5, make([]Hash, 1)); err == nil {
		t.Error("NewTree accepted an edge of the wrong length")
	}
}

func TestInclusionProofs(t *testing.T) {
	leaves := entries(70)
	th := buildTlog(t, leaves)
	src := memNodes{leaves}
	ctx := context.Background()
	for size := uint64(1); size <= uint64(len(leaves)); size++ {
		root := mth(leaves[:size])
		for i := uint64(0); i < size; i++ {
			path, err := InclusionPath(ctx, src, i, size)
			if err != nil {
				t.Fatal(err)
			}
			leaf := LeafHash(leaves[i])
			if err := VerifyInclusion(leaf, i, size, path, root); err != nil {
				t.Fatalf("leaf %d of %d: %v", i, size, err)
			}
			tp := make(tlog.RecordProof, len(path))
			for j := range path {
				tp[j] = tlog.Hash(path[j])
			}
			if err := tlog.CheckRecord(tp, int64(size), tlog.Hash(root), int64(i), tlog.Hash(leaf)); err != nil {
				t.Fatalf("tlog rejects our proof for leaf %d of %d: %v", i, size, err)
			}
			if want, err := tlog.ProveRecord(int64(size), int64(i), th); err != nil || len(want) != len(path) {
				t.Fatalf("tlog proof length %d, ours %d (%v)", len(want), len(path), err)
			}
			if len(path) > 0 {
				bad := append([]Hash(nil), path...)
				bad[len(bad)/2][3] ^= 1
				if VerifyInclusion(leaf, i, size, bad, root) == nil {
					t.Fatalf("altered proof for leaf %d of %d verifies", i, size)
				}
				if VerifyInclusion(leaf, i, size, path[:len(path)-1], root) == nil {
					t.Fatalf("shortened proof for leaf %d of %d verifies", i, size)
				}
			}
			if VerifyInclusion(LeafHash([]byte("other")), i, size, path, root) == nil {
				t.Fatalf("proof for leaf %d of %d verifies another leaf", i, size)
			}
			if size > 1 && VerifyInclusion(leaf, (i+1)%size, size, path, root) == nil {
				t.Fatalf("proof for leaf %d of %d verifies at index %d", i, size, (i+1)%size)
			}
		}
	}
	if _, err := InclusionPath(ctx, src, 5, 5); err == nil {
		t.Error("proof for a leaf beyond the tree")
	}
}
