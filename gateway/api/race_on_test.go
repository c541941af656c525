//go:build race

package api

// raceEnabled: under the race detector sync.Pool drops items at random, so allocation counts are
// inflated and TestUploadMemoryBound only reports them.
const raceEnabled = true
