package mailbox

import (
	"strings"
	"sync"
	"testing"
	"time"
)

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func TestRecordIDShapeAndOrder(t *testing.T) {
	base := time.Date(2026, 11, 23, 21, 0, 0, 0, time.UTC)
	var g recordIDGen
	var prev string
	for i := 0; i < 5000; i++ {
		// the clock moves forward, stands still, and steps back by a second
		at := base.Add(time.Duration(i/3) * time.Millisecond)
		if i%500 == 499 {
			at = at.Add(-time.Second)
		}
		id := g.at(at)
		if len(id) != 16 || strings.Trim(id, crockford) != "" {
			t.Fatalf("id %q: want 16 characters of %s", id, crockford)
		}
		if id <= prev {
			t.Fatalf("id %d %q is not after %q", i, id, prev)
		}
		prev = id
	}
}

func TestRecordIDTimePrefix(t *testing.T) {
	// Later milliseconds sort later whatever the random part, and the prefix reads back as the time.
	var g recordIDGen
	a := g.at(time.Now().Add(time.Hour))
	b := g.at(time.Now().Add(time.Hour + time.Millisecond))
	if a >= b {
		t.Fatalf("%q not before %q", a, b)
	}
	raw, err := recordIDEncoding.DecodeString(b)
	if err != nil {
		t.Fatal(err)
	}
	var ms uint64
	for _, c := range raw[:6] {
		ms = ms<<8 | uint64(c)
	}
	if got := time.UnixMilli(int64(ms)); got.Sub(time.Now().Add(time.Hour)) > time.Second || got.Before(time.Now()) {
		t.Fatalf("time prefix reads %v", got)
	}
}

func TestRecordIDConcurrentUnique(t *testing.T) {
	const workers, each = 8, 2000
	ids := make(chan string, workers*each)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				ids <- NewRecordID()
			}
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
	}
}

func TestQueueAndCopyIDsAreRecordIDs(t *testing.T) {
	q1, _ := newQueueID()
	q2, _ := newQueueID()
	c1, _ := newCopyID()
	if !strings.HasPrefix(q1, "Q") || len(q1) != 17 || q2 <= q1 || !strings.HasPrefix(c1, "C") || len(c1) != 17 {
		t.Fatalf("queue IDs %q %q, copy ID %q", q1, q2, c1)
	}
}

func TestRecordIDCarriesIntoTheNextMillisecond(t *testing.T) {
	at := time.UnixMilli(1_795_000_000_000)
	g := recordIDGen{ms: uint64(at.UnixMilli()), low: ^uint32(0) - 1}
	before := g.at(time.UnixMilli(0)) // a clock far behind: still after the last ID
	if g.ms != uint64(at.UnixMilli())+1 {
		t.Fatalf("ms = %d after the low part overflowed, want %d", g.ms, at.UnixMilli()+1)
	}
	if after := g.at(at); after <= before {
		t.Fatalf("%q not after %q", after, before)
	}
}
