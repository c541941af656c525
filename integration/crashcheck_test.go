package integration

import (
	"strings"
	"testing"
)

// TestCrashLedgerCheckFindsFaults feeds the crash test's checker a store with each kind of fault, so
// a checker that passes everything cannot go unnoticed. It needs no gateway.
func TestCrashLedgerCheckFindsFaults(t *testing.T) {
	t.Parallel()
	const from, to = "a@x.test", "b@x.test"
	msg := func(id, sha string) storedMessage {
		return storedMessage{ID: id, SHA256: sha, Sender: from, Recipients: []string{to}}
	}
	newLedger := func() *crashLedger {
		l := newCrashLedger()
		l.complete["s1"], l.complete["s2"], l.complete["s3"] = true, true, true
		l.acked["s1"], l.acked["s2"] = "ID1", "ID2"
		l.aborted["cut"] = true
		l.refused["no"] = "451 4.3.0 ..."
		return l
	}
	good := []storedMessage{msg("ID1", "s1"), msg("ID2", "s2"), msg("ID3", "s3")} // s3: 250 lost in a crash
	if faults, summary := newLedger().check(good, from, to); len(faults) != 0 || !strings.Contains(summary, "lost in a crash: 1") {
		t.Fatalf("a correct store: faults %v, summary %q", faults, summary)
	}
	for name, tc := range map[string]struct {
		stored []storedMessage
		want   string
	}{
		"acked lost":       {[]storedMessage{msg("ID1", "s1")}, "ID2 was answered 250 but is not stored"},
		"digest changed":   {[]storedMessage{msg("ID1", "s1"), msg("ID2", "s3")}, "ID2: stored digest s3"},
		"stored twice":     {append(good, msg("ID4", "s3")), "stored 2 times"},
		"cut off stored":   {append(good, msg("ID5", "cut")), "cut off half way is stored"},
		"refused stored":   {append(good, msg("ID6", "no")), "answered \"451"},
		"never sent":       {append(good, msg("ID7", "zz")), "not one any client sent completely"},
		"wrong recipients": {append(good[:2:2], storedMessage{ID: "ID3", SHA256: "s3", Sender: from, Recipients: []string{"c@x.test"}}), "recipients"},
	} {
		faults, _ := newLedger().check(tc.stored, from, to)
		if !strings.Contains(strings.Join(faults, "\n"), tc.want) {
			t.Errorf("%s: faults %q, want one containing %q", name, faults, tc.want)
		}
	}
}
