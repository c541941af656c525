package mailbox

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestRememberCapabilities(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, testOpts(t))
	if _, ok, err := s.KnownCapabilities(ctx, "a@x.test"); ok || err != nil {
		t.Fatalf("nothing remembered yet: ok=%v err=%v", ok, err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := s.RememberCapabilities(ctx, "A@X.test", Capabilities{Ciphers: []string{"AES-256-CBC"}, Signer: "ab", At: at}); err != nil {
		t.Fatal(err)
	}
	c, ok, err := s.KnownCapabilities(ctx, "a@x.TEST")
	if err != nil || !ok || !slices.Equal(c.Ciphers, []string{"AES-256-CBC"}) || c.Signer != "ab" || !c.At.Equal(at) {
		t.Fatalf("got %+v ok=%v err=%v", c, ok, err)
	}
	// The same ciphers again: kept as they were (no write).
	if err := s.RememberCapabilities(ctx, "a@x.test", Capabilities{Ciphers: []string{"AES-256-CBC"}, Signer: "cd", At: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if c, _, _ = s.KnownCapabilities(ctx, "a@x.test"); c.Signer != "ab" {
		t.Errorf("unchanged capabilities were rewritten: %+v", c)
	}
	// A new client: replaced; an empty list is remembered as "announced, none known".
	if err := s.RememberCapabilities(ctx, "a@x.test", Capabilities{Signer: "ef", At: at.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if c, ok, _ = s.KnownCapabilities(ctx, "a@x.test"); !ok || len(c.Ciphers) != 0 || c.Signer != "ef" {
		t.Errorf("replaced: %+v ok=%v", c, ok)
	}
	if _, ok, _ := s.KnownCapabilities(ctx, "b@x.test"); ok {
		t.Error("another practitioner's capabilities leaked")
	}
}
