// Verify: decrypt every stored message and check it against its digest, plus SQLite's own quick check.

package mailbox

import (
	"context"
)

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	Messages    int      // messages examined
	OK          int      // decrypted and matched their digest
	Failed      []string // IDs that did not (tampered, wrong key, missing content)
	SQLiteCheck string   // result of PRAGMA quick_check; "ok" when the file is sound
}

// verifyPage is how many messages Verify reads per query, so no read transaction stays open for long.
const verifyPage = 64

// Verify decrypts every message and checks its digest. A message that fails is listed, not returned as an
// error; the error is for failures to read the database at all.
func (s *Store) Verify(ctx context.Context) (VerifyReport, error) {
	var rep VerifyReport
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&rep.SQLiteCheck); err != nil {
		return rep, classify(err)
	}
	var after int64
	for {
		n, last, err := s.verifyPage(ctx, after, &rep)
		if err != nil || n < verifyPage {
			return rep, err
		}
		after = last
	}
}

// verifyPage checks up to verifyPage messages with seq > after; it returns how many and the last seq.
func (s *Store) verifyPage(ctx context.Context, after int64, rep *VerifyReport) (int, int64, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+summaryColumns+`, m.content_nonce, m.content
		FROM messages m WHERE m.seq > ? ORDER BY m.seq LIMIT ?`, after, verifyPage)
	if err != nil {
		return 0, after, classify(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var sum Summary
		var nonce, sealed []byte
		err := scanSummary(rows, &sum, &nonce, &sealed)
		if err == nil {
			_, err = s.unseal(&sum, nonce, sealed)
		}
		if err != nil && sum.ID == "" { // the row itself could not be read
			return n, after, classify(err)
		}
		n++
		after = sum.Seq
		rep.Messages++
		if err != nil {
			rep.Failed = append(rep.Failed, sum.ID)
		} else {
			rep.OK++
		}
		if err := ctx.Err(); err != nil {
			return n, after, err
		}
	}
	return n, after, classify(rows.Err())
}
