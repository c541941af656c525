package mailbox

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestWriteTurnOrder: a high waiter gets the turn before low ones that asked earlier; low ones follow
// in the order they asked; a waiter that gives up is skipped.
func TestWriteTurnOrder(t *testing.T) {
	var turn writeTurn
	ctx := context.Background()
	if err := turn.acquire(ctx, false); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	waiter := func(name string, high bool) {
		defer wg.Done()
		if err := turn.acquire(ctx, high); err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
		turn.release()
	}
	waiting := func(n int) { // until n waiters are queued
		for {
			turn.mu.Lock()
			q := len(turn.high) + len(turn.low)
			turn.mu.Unlock()
			if q == n {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	wg.Add(1)
	go waiter("low1", false)
	waiting(1)
	wg.Add(1)
	go waiter("low2", false)
	waiting(2)
	gone, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error)
	go func() { gaveUp <- turn.acquire(gone, false) }()
	waiting(3)
	wg.Add(1)
	go waiter("high", true)
	waiting(4)
	cancel()
	if err := <-gaveUp; err == nil {
		t.Fatal("a waiter whose context ended got the turn")
	}
	turn.release()
	wg.Wait()
	if got := strings.Join(order, " "); got != "high low1 low2" {
		t.Errorf("turns went %s, want high low1 low2", got)
	}
	if turn.held {
		t.Error("the turn is still held after every waiter released it")
	}
}
