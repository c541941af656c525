package deliver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"cafgate/mailbox"
)

// pendingCounter is a Store that only counts how often pending work is asked for (and has none).
type pendingCounter struct {
	Store
	asked int
}

func (s *pendingCounter) PendingDeliveries(context.Context, int) ([]mailbox.DeliveryWork, error) {
	s.asked++
	return nil, nil
}

// TestRoundHonoursHold: while Held says held, or cannot say, a round does not even look for work.
func TestRoundHonoursHold(t *testing.T) {
	for _, c := range []struct {
		name  string
		held  bool
		err   error
		asked int
	}{{"running", false, nil, 1}, {"held", true, nil, 0}, {"unknown", false, errors.New("store closed"), 0}} {
		st := &pendingCounter{}
		p := New(Options{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Held: func(context.Context) (bool, error) { return c.held, c.err }})
		if n := p.Round(context.Background()); n != 0 || st.asked != c.asked {
			t.Errorf("%s: round took %d, asked for work %d times, want %d", c.name, n, st.asked, c.asked)
		}
	}
}
