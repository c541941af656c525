//go:build race

package ledger_test

// raceEnabled: the race detector makes the million-event test ten times slower.
const raceEnabled = true
