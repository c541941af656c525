package mailbox

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAPIClientKeys(t *testing.T) {
	s, clk, _ := episodeStore(t)
	ctx := context.Background()
	c, key, err := s.AddAPIClient(ctx, NewAPIClient{Agency: " Riverside Community Health ", Name: "CaseBook", By: "cli:root"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, APIKeyPrefix) || len(key) != len(APIKeyPrefix)+16+1+52 || c.Agency != "Riverside Community Health" || c.Credential != "api-key" {
		t.Fatalf("client %+v key %q", c, key)
	}
	got, err := s.APIClientByKey(ctx, key)
	if err != nil || got.ID != c.ID || got.Agency != c.Agency {
		t.Fatalf("APIClientByKey: %+v %v", got, err)
	}
	if got, err := s.APIClientByKey(ctx, strings.ToUpper(key[:5])+key[5:]); err == nil {
		t.Errorf("key with an upper-case prefix accepted: %+v", got)
	}
	// The stored hash is not the key, nor the secret.
	var stored string
	if err := s.rdb.QueryRow(`SELECT key_hash FROM api_clients WHERE id = ?`, c.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(key, stored) || strings.Contains(stored, key[len(key)-52:]) {
		t.Fatalf("key stored in the clear: %q", stored)
	}
	wrong := key[:len(key)-1] + map[bool]string{true: "a", false: "b"}[key[len(key)-1] != 'a']
	for name, k := range map[string]string{"wrong secret": wrong, "empty": "", "no prefix": key[5:],
		"unknown client": APIKeyPrefix + "0000000000000000_" + key[len(key)-52:], "short": key[:30]} {
		if _, err := s.APIClientByKey(ctx, k); !errors.Is(err, ErrClientCredentials) {
			t.Errorf("%s: %v", name, err)
		}
	}
	clk.Advance(time.Hour)
	rev, err := s.RevokeAPIClient(ctx, strings.ToLower(c.ID), "cli:root", "system retired")
	if err != nil || !rev.Revoked() || rev.RevokedBy != "cli:root" {
		t.Fatalf("revoke: %+v %v", rev, err)
	}
	if _, err := s.APIClientByKey(ctx, key); !errors.Is(err, ErrClientCredentials) {
		t.Errorf("revoked key accepted: %v", err)
	}
	if again, err := s.RevokeAPIClient(ctx, c.ID, "someone else", "again"); err != nil || again.RevokedBy != "cli:root" || !again.RevokedAt.Equal(rev.RevokedAt) {
		t.Errorf("second revoke changed the record: %+v %v", again, err)
	}
	if _, err := s.RevokeAPIClient(ctx, "NOSUCHCLIENT0000", "x", "gone"); !errors.Is(err, ErrClientNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
}

func TestAPIClientCertificates(t *testing.T) {
	s, _, _ := episodeStore(t)
	ctx := context.Background()
	der := []byte("not really a certificate")
	fp := CertFingerprint(der)
	colons := strings.ToUpper(fp[:2])
	for i := 2; i < len(fp); i += 2 {
		colons += ":" + strings.ToUpper(fp[i:i+2])
	}
	c, key, err := s.AddAPIClient(ctx, NewAPIClient{Agency: "Eastshire Police", Name: "Niche", CertFingerprint: "sha256 Fingerprint=" + colons})
	if err != nil || key != "" || c.CertFingerprint != fp || c.Credential != "certificate" {
		t.Fatalf("add: %+v %q %v", c, key, err)
	}
	if got, err := s.APIClientByCert(ctx, fp); err != nil || got.ID != c.ID {
		t.Fatalf("by cert: %+v %v", got, err)
	}
	if _, _, err := s.AddAPIClient(ctx, NewAPIClient{Agency: "Other", Name: "Copy", CertFingerprint: fp}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("second client with the same certificate: %v", err)
	}
	// A certificate client has no key: a key naming its ID is refused.
	if _, err := s.APIClientByKey(ctx, APIKeyPrefix+strings.ToLower(c.ID)+"_"+strings.Repeat("a", 52)); !errors.Is(err, ErrClientCredentials) {
		t.Errorf("key for a certificate client: %v", err)
	}
	other := sha256.Sum256([]byte("other"))
	if _, err := s.APIClientByCert(ctx, CertFingerprint(other[:])); !errors.Is(err, ErrClientCredentials) {
		t.Errorf("unknown certificate: %v", err)
	}
	if _, err := s.RevokeAPIClient(ctx, c.ID, "x", "key leaked"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.APIClientByCert(ctx, fp); !errors.Is(err, ErrClientCredentials) {
		t.Errorf("revoked certificate accepted: %v", err)
	}
	for _, bad := range []NewAPIClient{{Agency: "", Name: "x"}, {Agency: "x", Name: " "}, {Agency: "x\x01y", Name: "y"},
		{Agency: "x", Name: "y", CertFingerprint: "abc"}} {
		if _, _, err := s.AddAPIClient(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("AddAPIClient(%+v): %v", bad, err)
		}
	}
	list, err := s.APIClients(ctx)
	if err != nil || len(list) != 1 || list[0].ID != c.ID || !list[0].Revoked() {
		t.Errorf("list: %+v %v", list, err)
	}
}

// idemFixture is a store with one client and a reservation request.
func idemFixture(t *testing.T) (*Store, *clock, IdemRequest) {
	t.Helper()
	s, clk, _ := episodeStore(t)
	c, _, err := s.AddAPIClient(context.Background(), NewAPIClient{Agency: "agency", Name: "sys"})
	if err != nil {
		t.Fatal(err)
	}
	content := body(1)
	sum := sha256.Sum256(content)
	return s, clk, IdemRequest{ClientID: c.ID, Key: "k-1", RequestHash: "h1", Sender: "alice@agency.example",
		Digest: hexOf(sum[:]), Holder: "run-1", Lease: time.Minute, TTL: 24 * time.Hour}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, x := range b {
		out = append(out, digits[x>>4], digits[x&15])
	}
	return string(out)
}

func reserve(t *testing.T, s *Store, r IdemRequest) *IdemResult {
	t.Helper()
	res, err := s.ReserveIdempotencyKey(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func acceptHTTPS(t *testing.T, s *Store, id string) {
	t.Helper()
	m := msg(id, body(1))
	m.Via = "https"
	if err := s.Accept(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func TestIdempotencyKeyLifecycle(t *testing.T) {
	s, clk, r := idemFixture(t)
	ctx := context.Background()
	if res := reserve(t, s, r); res.Outcome != IdemReserved {
		t.Fatalf("first: %+v", res)
	}
	if res := reserve(t, s, r); res.Outcome != IdemInProgress || res.RetryAfter != time.Minute {
		t.Fatalf("while pending: %+v", res)
	}
	other := r
	other.RequestHash = "h2"
	if res := reserve(t, s, other); res.Outcome != IdemMismatch {
		t.Fatalf("other request, same key: %+v", res)
	}
	acceptHTTPS(t, s, "MSG1")
	if ok, err := s.CompleteIdempotencyKey(ctx, r.ClientID, r.Key, r.Holder, "MSG1"); err != nil || !ok {
		t.Fatalf("complete: %v %v", ok, err)
	}
	clk.Advance(time.Hour)
	if res := reserve(t, s, r); res.Outcome != IdemReplay || res.MessageID != "MSG1" {
		t.Fatalf("replay: %+v", res)
	}
	if res := reserve(t, s, other); res.Outcome != IdemMismatch {
		t.Fatalf("other request after done: %+v", res)
	}
	// Another key of the same client is independent; a refused upload releases its key.
	r2 := r
	r2.Key = "k-2"
	if res := reserve(t, s, r2); res.Outcome != IdemReserved {
		t.Fatalf("k-2: %+v", res)
	}
	if err := s.ReleaseIdempotencyKey(ctx, r2.ClientID, r2.Key, r2.Holder); err != nil {
		t.Fatal(err)
	}
	if res := reserve(t, s, r2); res.Outcome != IdemReserved {
		t.Fatalf("k-2 after release: %+v", res)
	}
	// After the TTL a completed key is forgotten and may be used again.
	clk.Advance(25 * time.Hour)
	if res := reserve(t, s, r); res.Outcome != IdemReserved {
		t.Fatalf("after TTL: %+v", res)
	}
}

// TestIdempotencyCrashWindows: a pending key left by a holder that died is resolved from the store.
func TestIdempotencyCrashWindows(t *testing.T) {
	t.Run("died before the message committed", func(t *testing.T) {
		s, _, r := idemFixture(t)
		reserve(t, s, r)
		r.Holder = "run-2" // the gateway restarted
		if res := reserve(t, s, r); res.Outcome != IdemReserved {
			t.Fatalf("after restart: %+v", res)
		}
		// The old holder can no longer complete the key it lost.
		if ok, err := s.CompleteIdempotencyKey(context.Background(), r.ClientID, r.Key, "run-1", "X"); ok || err != nil {
			t.Fatalf("stale holder completed: %v %v", ok, err)
		}
	})
	t.Run("died after the message committed", func(t *testing.T) {
		s, _, r := idemFixture(t)
		acceptHTTPS(t, s, "BEFORE") // same content before the reservation: not the one
		reserve(t, s, r)
		acceptHTTPS(t, s, "MSG1")
		r.Holder = "run-2"
		if res := reserve(t, s, r); res.Outcome != IdemReplay || res.MessageID != "MSG1" {
			t.Fatalf("after restart: %+v", res)
		}
		if res := reserve(t, s, r); res.Outcome != IdemReplay || res.MessageID != "MSG1" {
			t.Fatalf("again: %+v", res)
		}
	})
	t.Run("lease lapsed in the same process", func(t *testing.T) {
		s, clk, r := idemFixture(t)
		reserve(t, s, r)
		clk.Advance(2 * time.Minute)
		if res := reserve(t, s, r); res.Outcome != IdemReserved {
			t.Fatalf("after the lease: %+v", res)
		}
	})
	t.Run("message bound to another key is not taken", func(t *testing.T) {
		s, _, r := idemFixture(t)
		reserve(t, s, r)
		r2 := r
		r2.Key = "k-2"
		r2.Holder = "run-2"
		acceptHTTPS(t, s, "MSG1")
		if res := reserve(t, s, r2); res.Outcome != IdemReserved {
			t.Fatal(res)
		}
		if ok, _ := s.CompleteIdempotencyKey(context.Background(), r2.ClientID, r2.Key, r2.Holder, "MSG1"); !ok {
			t.Fatal("complete k-2")
		}
		r.Holder = "run-3"
		if res := reserve(t, s, r); res.Outcome != IdemReserved {
			t.Fatalf("k-1 took k-2's message: %+v", res)
		}
	})
}

func TestPackageStatus(t *testing.T) {
	s, _, _ := episodeStore(t)
	ctx := context.Background()
	acceptHTTPS(t, s, "MSG1")
	st, err := s.PackageStatus(ctx, "MSG1")
	if err != nil || st.ID != "MSG1" || st.Via != "https" || len(st.Recipients) != 2 || len(st.Decisions) != 0 || len(st.Deliveries) != 0 {
		t.Fatalf("status: %+v %v", st, err)
	}
	if _, err := s.PackageStatus(ctx, "NOPE"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
}

func TestAPIClientLedgerEvents(t *testing.T) {
	s, _, _ := episodeStore(t)
	ctx := context.Background()
	c, _, err := s.AddAPIClient(ctx, NewAPIClient{Agency: "Riverside Community Health", Name: "CaseBook", By: "cli:alice"})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "  ", "line\nbreak", strings.Repeat("x", maxClientReason+1)} {
		if _, err := s.RevokeAPIClient(ctx, c.ID, "cli:alice", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("reason %q: %v", bad, err)
		}
	}
	if cl, _ := s.APIClient(ctx, c.ID); cl.Revoked() {
		t.Fatal("revoked without a reason")
	}
	if _, err := s.RevokeAPIClient(ctx, c.ID, "cli:bob", "key leaked"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeAPIClient(ctx, c.ID, "cli:bob", "twice"); err != nil { // no change, no event
		t.Fatal(err)
	}
	var got []string
	rows, err := s.rdb.QueryContext(ctx, `SELECT type || ' ' || json_extract(data, '$.by') || ' ' || COALESCE(json_extract(data, '$.reason'), '-') FROM ledger_events WHERE type LIKE 'client-%' ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ string
		rows.Scan(&typ)
		got = append(got, typ)
	}
	if strings.Join(got, ",") != "client-added cli:alice -,client-revoked cli:bob key leaked" {
		t.Errorf("events: %v", got)
	}
}
