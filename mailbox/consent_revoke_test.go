package mailbox

import (
	"context"
	"testing"

	"cafgate/policy"
)

// TestWithdrawalRevokesLinks: withdrawing consent revokes every outstanding one-time link to a package
// of the episode, in the same transaction, and leaves other episodes' links alone.
func TestWithdrawalRevokesLinks(t *testing.T) {
	s, _, key := episodeStore(t)
	ctx := context.Background()
	ep := openSample(t, s, key, "K1")
	if err := s.Accept(ctx, msg("M1", body(1))); err != nil {
		t.Fatal(err)
	}
	mine, _ := issue(t, s, LinkRequest{MessageID: "M1", Recipient: "bob@council.example", Episode: ep.Ref})
	other, _ := issue(t, s, LinkRequest{MessageID: "M1", Recipient: "carol@health.example", Episode: "CAF-2024-000001"})
	if _, err := s.WithdrawConsent(ctx, ep.Ref, policy.GivenByParent, ep.OpenedAt, "x"); err != nil {
		t.Fatal(err)
	}
	got, _ := s.LinkByID(ctx, mine.ID)
	if got.State != LinkRevoked || got.EndReason != "consent withdrawn" {
		t.Fatalf("link of the episode after withdrawal: %+v", got)
	}
	if got, _ := s.LinkByID(ctx, other.ID); got.State == LinkRevoked {
		t.Fatal("a link of another episode was revoked")
	}
}
