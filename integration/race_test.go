//go:build race

package integration

// Under `go test -race` the gateway binary is built with -race too (unless CAFGATE_IT_RACE=0), and a
// data race it reports on stderr fails the test that ran it.
func init() { raceTest = true }
