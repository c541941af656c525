package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDeliveryPause: with delivery paused (`cafgate queue pause`), the gateway still accepts packages
// but no copy reaches any hosted mailbox, also across a restart; after `cafgate queue resume` every
// recipient holds each package exactly once.
func TestDeliveryPause(t *testing.T) {
	t.Parallel()
	g := startGateway(t)
	info := g.Info()
	accounts := map[string]account{}
	for _, a := range info.Accounts {
		accounts[a.Mail] = a
	}
	sender := accounts["harriet.example@school.cafgate.test"]
	rcpts := []string{"gwen.testcase@socialcare.cafgate.test", "priya.placeholder@health.cafgate.test", "rita.notreal@police.cafgate.test"}

	if out, errs, code := g.cli("queue", "pause"); code == 0 {
		t.Fatalf("queue pause without --reason succeeded: %s", out)
	} else if !strings.Contains(errs, "--reason") {
		t.Errorf("queue pause without --reason: %q does not name --reason", errs)
	}
	if out, errs, code := g.cli("queue", "pause", "--reason", "integration test"); code != 0 {
		t.Fatalf("queue pause exited %d: %s %s", code, out, errs)
	}
	if out, _, _ := g.cli("queue", "list"); !strings.Contains(out, "delivery paused since") || !strings.Contains(out, "integration test") {
		t.Errorf("queue list does not show the pause: %q", out)
	}

	const n = 5
	conf := tlsConfig(t, info)
	s, res := openSession(info, "submission", conf, sender, 15*time.Second)
	if s == nil {
		t.Fatalf("submission session: %v", res)
	}
	exp := map[string]map[string]bool{}
	for _, r := range rcpts {
		exp[r] = map[string]bool{}
	}
	for i := range n {
		body := fmt.Appendf(nil, "From: <%s>\r\nTo: <%s>\r\nSubject: [CAF-2026-000001] paused delivery %d\r\nDate: %s\r\n"+
			"Message-ID: <pause-%d-%s@it.cafgate.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
			"Package %d of the pause test.\r\n", sender.Mail, strings.Join(rcpts, ">, <"), i, time.Now().Format(time.RFC1123Z),
			i, randomToken(8), i)
		r := s.send(rcpts, body)
		id := r.Reply.AcceptedID()
		if r.Stage != "" || id == "" {
			t.Fatalf("package %d not accepted while paused: %v", i, r)
		}
		for _, rc := range rcpts {
			exp[rc][copyMessageID(id, rc, info.Hostname)] = true
		}
	}
	s.close()

	// The pipeline looks for work every 2 s and on every acceptance: 5 s is two full rounds and more.
	time.Sleep(5 * time.Second)
	requireNoCopies(t, mailboxMessageIDs(t, info, accounts, rcpts), "while paused")
	// The pause is in the store, not in memory: a restart keeps it.
	g.stop()
	info = g.start()
	time.Sleep(5 * time.Second)
	requireNoCopies(t, mailboxMessageIDs(t, info, accounts, rcpts), "after a restart while paused")

	if out, errs, code := g.cli("queue", "resume"); code != 0 || !strings.Contains(out, "resumed") {
		t.Fatalf("queue resume exited %d: %s %s", code, out, errs)
	}
	deadline := time.Now().Add(60 * time.Second)
	var got map[string]map[string]int
	for {
		got = mailboxMessageIDs(t, info, accounts, rcpts)
		total := 0
		for _, ids := range got {
			for _, c := range ids {
				total += c
			}
		}
		if total >= n*len(rcpts) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a duplicate would come in the next round
	got = mailboxMessageIDs(t, info, accounts, rcpts)
	for _, f := range checkCopies(exp, got) {
		t.Error(f)
	}
	if out, _, _ := g.cli("queue", "resume"); !strings.Contains(out, "was not paused") {
		t.Errorf("second queue resume: %q", out)
	}
}

func requireNoCopies(t *testing.T, got map[string]map[string]int, when string) {
	t.Helper()
	for r, ids := range got {
		if len(ids) > 0 {
			t.Fatalf("%s: %s already holds %d messages", when, r, len(ids))
		}
	}
}
