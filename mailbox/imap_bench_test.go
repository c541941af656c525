package mailbox

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"testing"
)

// BenchmarkDeliverToMailboxTx: hosted deliveries of 4 KB copies, 50 per transaction (as a pipeline
// batching its steps would), to 3 recipients in turn.
func BenchmarkDeliverToMailboxTx(b *testing.B) {
	s := openTest(b, testOpts(b))
	ctx := context.Background()
	pad := bytes.Repeat([]byte("x"), 4000)
	b.SetBytes(int64(len(pad)))
	b.ResetTimer()
	for i := 0; i < b.N; i += 50 {
		err := s.Tx(ctx, func(tx *sql.Tx) error {
			for j := i; j < min(i+50, b.N); j++ {
				c := append(hostedMsg(fmt.Sprint("b", j), "bench"), pad...)
				if _, err := s.DeliverToMailboxTx(ctx, tx, s.opt.Now(), &Delivery{MessageID: "P",
					Recipient: fmt.Sprintf("r%d@council.example", j%3), Content: c}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
