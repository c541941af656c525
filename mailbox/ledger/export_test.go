package ledger

import (
	"context"
	"database/sql"

	"golang.org/x/mod/sumdb/note"
)

// VerifyDatabaseWith is VerifyDatabase with the pass chosen: workers < 0 is the one-connection pass
// (scan); otherwise scanParallel with that many workers and batches of 2^level events.
func VerifyDatabaseWith(ctx context.Context, db *sql.DB, v note.Verifier, file string, workers int, level uint) (*Report, error) {
	if workers < 0 {
		return verifyDatabase(ctx, db, v, file, nil, 0)
	}
	old := batchLevel
	batchLevel = level
	defer func() { batchLevel = old }()
	return verifyDatabase(ctx, db, v, file, db, workers)
}
