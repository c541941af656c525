package deliver

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"cafgate/directory"
	"cafgate/mailbox"
	"cafgate/policy"
)

// tellStore records what Tell asked of the store; the pipeline's other needs are not used here.
type tellStore struct {
	reports  []mailbox.ReportOptions
	notices  int
	sendBack int
}

func (f *tellStore) PendingDeliveries(context.Context, int) ([]mailbox.DeliveryWork, error) {
	return nil, nil
}
func (f *tellStore) FinishDelivery(context.Context, mailbox.DeliveryStep) (bool, error) {
	return false, nil
}
func (f *tellStore) FinishDeliveries(_ context.Context, steps []mailbox.DeliveryStep) ([]bool, error) {
	return make([]bool, len(steps)), nil
}
func (f *tellStore) Message(context.Context, string) (*mailbox.Stored, error) { return nil, nil }
func (f *tellStore) MessageContent(context.Context, string) ([]byte, error)   { return nil, nil }
func (f *tellStore) DecidePackage(context.Context, time.Time, *directory.Practitioner, []mailbox.Addressee, policy.Package) (*mailbox.PackageDecision, error) {
	return nil, nil
}
func (f *tellStore) RecordDecisions(context.Context, string, *mailbox.PackageDecision) error {
	return nil
}
func (f *tellStore) SendReports(_ context.Context, opt mailbox.ReportOptions) (int, error) {
	f.reports = append(f.reports, opt)
	return f.sendBack, nil
}
func (f *tellStore) SendOverrideNotices(context.Context, string) (int, error) {
	f.notices++
	return 0, nil
}

func TestTellSignsCheckpointsAtMostEveryInterval(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	st := &tellStore{sendBack: 1}
	woken := 0
	p := New(Options{Store: st, Hostname: "gw.example", Log: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return now }, Queued: func() { woken++ }})
	ctx := context.Background()
	for _, step := range []time.Duration{0, time.Second, 3 * time.Second, 2 * time.Second} {
		now = now.Add(step)
		p.Tell(ctx)
	}
	var got []bool
	for _, r := range st.reports {
		got = append(got, r.NoCheckpoint)
		if r.Hostname != "gw.example" {
			t.Errorf("report host name %q", r.Hostname)
		}
	}
	if want := []bool{false, true, true, false}; len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Errorf("NoCheckpoint per call %v, want %v", got, want)
	}
	if st.notices != 4 || woken != 4 {
		t.Errorf("override notices asked %d times, relay woken %d times", st.notices, woken)
	}
	p.opt.NoReports = true
	p.Tell(ctx)
	if len(st.reports) != 4 {
		t.Error("reports sent with NoReports")
	}
}
