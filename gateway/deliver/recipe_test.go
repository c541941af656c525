package deliver

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/mail"
	"strings"
	"testing"
	"time"

	"cafgate/envelope/cms"
	"cafgate/envelope/smime"
	"cafgate/mailbox"
)

// TestQueuedCopiesAreBuiltWhenSent: the pipeline queues each remote recipient's copy as a recipe (no
// sealed bytes in the store); the Builder turns the claimed entry into the copy, encrypted to that
// recipient and signed by the gateway, under the Message-ID the entry was queued with, sealed afresh
// at each attempt and reading each package once for all of its copies.
func TestQueuedCopiesAreBuiltWhenSent(t *testing.T) {
	ctx := context.Background()
	const packages = 2
	r := newDrainRig(t, packages)
	if n, ok := drain(New(r.opt)); !ok || n != packages*3 {
		t.Fatalf("drained %d (settled %v)", n, ok)
	}
	cs, err := r.store.Claim(ctx, mailbox.ClaimOptions{Limit: 100, Now: time.Now().Add(time.Minute)})
	if err != nil || len(cs) != packages*3 {
		t.Fatalf("claimed %d, %v", len(cs), err)
	}
	keys, err := drainKeys()
	if err != nil {
		t.Fatal(err)
	}
	rc := &readCounter{Store: r.store}
	b := NewBuilder(rc, r.opt.Signer)
	dir := r.opt.Dir.(mapDir)
	for _, c := range cs {
		if c.Content != nil || c.Recipe == nil || c.ContentErr != nil {
			t.Fatalf("%s: content %d bytes, recipe %d bytes, %v; want a recipe only", c.ID, len(c.Content), len(c.Recipe), c.ContentErr)
		}
		if bytes.Contains(c.Recipe, []byte("The team met")) {
			t.Fatalf("%s: the recipe holds package text", c.ID)
		}
		first, err := b.Build(ctx, c)
		if err != nil {
			t.Fatalf("%s: Build: %v", c.ID, err)
		}
		again, err := b.Build(ctx, c)
		if err != nil || bytes.Equal(first, again) {
			t.Fatalf("%s: a second attempt's copy: equal %v, %v; want sealed afresh", c.ID, bytes.Equal(first, again), err)
		}
		m, err := mail.ReadMessage(bytes.NewReader(first))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get("Message-ID"); got != c.HeaderMessageID {
			t.Fatalf("%s: Message-ID %q, queued as %q", c.ID, got, c.HeaderMessageID)
		}
		name := strings.TrimSuffix(c.Recipient, "@council.example")
		cert, err := x509.ParseCertificate(dir[c.Recipient].Certificates[0])
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(r.opt.Signer.Cert)
		o, err := smime.Open(first, smime.OpenOptions{Decrypter: &cms.Decrypter{Cert: cert, Key: keys[name]},
			Verify: cms.VerifyOptions{Roots: roots}})
		if err != nil {
			t.Fatalf("%s: the recipient cannot open the copy: %v", c.ID, err)
		}
		if !bytes.Contains(o.Entity, []byte("The team met and agreed")) || o.Signature() == nil {
			t.Fatalf("%s: opened copy: signature %v, content %.200q", c.ID, o.Signature(), o.Entity)
		}
	}
	if got := rc.reads.Load(); got != packages {
		t.Errorf("%d package reads to build %d copies of %d packages, want one each", got, len(cs), packages)
	}
	// The three recipients of a package are allowed the same sections: one signed entity serves them.
	if n, _ := b.signed.len(); n != packages {
		t.Errorf("%d signed entities kept for %d packages of three recipients allowed the same, want one each", n, packages)
	}

	// A recipe that is not the entry's, or does not read, cannot be mended by trying again.
	other := *cs[0]
	other.Recipient = "zed@council.example"
	if _, err := b.Build(ctx, &other); !errors.Is(err, mailbox.ErrCorrupt) {
		t.Errorf("another entry's recipe: %v, want ErrCorrupt", err)
	}
	bad := *cs[0]
	bad.Recipe = []byte(`{"v": 99}`)
	if _, err := b.Build(ctx, &bad); !errors.Is(err, mailbox.ErrCorrupt) {
		t.Errorf("a recipe of another version: %v, want ErrCorrupt", err)
	}
	// A store that cannot be read now is worth another attempt.
	down := NewBuilder(failingReader{}, r.opt.Signer)
	if _, err := down.Build(ctx, cs[0]); err == nil || errors.Is(err, mailbox.ErrCorrupt) {
		t.Errorf("store down: %v, want a temporary error", err)
	}
}

type failingReader struct{}

func (failingReader) MessageContent(context.Context, string) ([]byte, error) {
	return nil, mailbox.ErrUnavailable
}

func (failingReader) Certificate(context.Context, []byte) ([]byte, error) {
	return nil, mailbox.ErrUnavailable
}

// TestRecipesNameCertificatesByHash: a recipe names the certificates it encrypts to by SHA-256 (the
// store keeps each once), not by their DER; a recipe of version 1, queued by an older gateway with
// the DER inside, still builds; and one naming a certificate the store does not hold cannot be
// mended by trying again.
func TestRecipesNameCertificatesByHash(t *testing.T) {
	ctx := context.Background()
	r := newDrainRig(t, 1)
	if n, ok := drain(New(r.opt)); !ok || n != 3 {
		t.Fatalf("drained %d (settled %v)", n, ok)
	}
	cs, err := r.store.Claim(ctx, mailbox.ClaimOptions{Limit: 100, Now: time.Now().Add(time.Minute)})
	if err != nil || len(cs) != 3 {
		t.Fatalf("claimed %d, %v", len(cs), err)
	}
	b := NewBuilder(r.store, r.opt.Signer)
	for _, c := range cs {
		var rc recipe
		if err := json.Unmarshal(c.Recipe, &rc); err != nil || rc.V != 2 || len(rc.Keys) == 0 {
			t.Fatalf("%s: recipe %s: %v", c.ID, c.Recipe, err)
		}
		for i, k := range rc.Keys {
			der, err := r.store.Certificate(ctx, k.CertSHA256)
			if err != nil || k.Cert != nil || len(k.CertSHA256) != 32 {
				t.Fatalf("%s: key %+v: stored certificate %d bytes, %v", c.ID, k, len(der), err)
			}
			if bytes.Contains(c.Recipe, []byte(base64.StdEncoding.EncodeToString(der[:48]))) {
				t.Fatalf("%s: the recipe holds the certificate's DER", c.ID)
			}
			rc.Keys[i].Cert, rc.Keys[i].CertSHA256 = der, nil
		}
		// The same copy as version 1 builds, with a Builder that has not seen the certificate.
		rc.V = 1
		v1 := *c
		if v1.Recipe, err = json.Marshal(rc); err != nil {
			t.Fatal(err)
		}
		if _, err := NewBuilder(failingCertificates{r.store}, r.opt.Signer).Build(ctx, &v1); err != nil {
			t.Fatalf("%s: a version-1 recipe: %v", c.ID, err)
		}
		if _, err := b.Build(ctx, c); err != nil {
			t.Fatalf("%s: %v", c.ID, err)
		}
	}
	var rc recipe
	json.Unmarshal(cs[0].Recipe, &rc)
	rc.Keys[0].CertSHA256 = bytes.Repeat([]byte{7}, 32)
	unknown := *cs[0]
	unknown.Recipe, _ = json.Marshal(rc)
	if _, err := NewBuilder(r.store, r.opt.Signer).Build(ctx, &unknown); !errors.Is(err, mailbox.ErrCorrupt) {
		t.Errorf("a recipe naming a certificate the store does not hold: %v, want ErrCorrupt", err)
	}
}

// failingCertificates reads packages but no certificate.
type failingCertificates struct{ *mailbox.Store }

func (failingCertificates) Certificate(context.Context, []byte) ([]byte, error) {
	return nil, errors.New("a version-1 recipe needs no stored certificate")
}

// TestPackageCacheBounds: the Builder's cache keeps at most its count of packages, least recently
// used out first, and forgets failed reads.
func TestPackageCacheBounds(t *testing.T) {
	ctx := context.Background()
	r := newDrainRig(t, 3)
	rc := &readCounter{Store: r.store}
	c := newPackageCache()
	for _, id := range []string{"drain-000000", "drain-000001", "drain-000000", "drain-000002"} {
		if _, err := c.get(ctx, rc, id); err != nil {
			t.Fatal(err)
		}
	}
	if got := rc.reads.Load(); got != 3 {
		t.Fatalf("%d reads, want 3", got)
	}
	if _, err := c.get(ctx, rc, "no-such-package"); err == nil {
		t.Fatal("a package that is not there was found")
	}
	n, held := c.lru.len()
	if n != 3 || held <= 0 {
		t.Fatalf("cache holds %d packages, %d bytes; want the 3 read", n, held)
	}
}

// TestPipelineAndBuilderShareReads: with the Builder given to the pipeline, a package is read once
// for the round that queues its copies and the relay's attempts that build them.
func TestPipelineAndBuilderShareReads(t *testing.T) {
	ctx := context.Background()
	const packages = 3
	r := newDrainRig(t, packages)
	rc := &readCounter{Store: r.store}
	b := NewBuilder(rc, r.opt.Signer)
	r.opt.Store, r.opt.Builder = rc, b
	if n, ok := drain(New(r.opt)); !ok || n != packages*3 {
		t.Fatalf("drained %d (settled %v)", n, ok)
	}
	cs, err := r.store.Claim(ctx, mailbox.ClaimOptions{Limit: 100, Now: time.Now().Add(time.Minute)})
	if err != nil || len(cs) != packages*3 {
		t.Fatalf("claimed %d, %v", len(cs), err)
	}
	for _, c := range cs {
		if _, err := b.Build(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if got := rc.reads.Load(); got != packages {
		t.Errorf("%d package reads for %d packages queued and built, want one each", got, packages)
	}
}

// TestOnceLRU: values are loaded once, at most maxN and about maxBytes of them kept, least recently
// used out first, and a failed load is not kept.
func TestOnceLRU(t *testing.T) {
	loads := map[string]int{}
	c := newOnceLRU[string](2, 100)
	get := func(k string, size int) {
		t.Helper()
		v, err := c.get(k, func() (string, int, error) { loads[k]++; return "v" + k, size, nil })
		if err != nil || v != "v"+k {
			t.Fatalf("get %s = %q, %v", k, v, err)
		}
	}
	get("a", 10)
	get("b", 10)
	get("a", 10) // a is now the most recent
	get("c", 10) // b goes
	get("a", 10)
	get("b", 10) // loaded again; c goes
	if loads["a"] != 1 || loads["b"] != 2 || loads["c"] != 1 {
		t.Fatalf("loads = %v", loads)
	}
	get("d", 95) // over the bytes: everything older goes, d stays even alone
	if n, bytes := c.len(); n != 1 || bytes != 95 {
		t.Fatalf("kept %d values of %d bytes, want d alone", n, bytes)
	}
	fail := errors.New("down")
	if _, err := c.get("e", func() (string, int, error) { return "", 0, fail }); !errors.Is(err, fail) {
		t.Fatalf("failed load: %v", err)
	}
	get("e", 1)
	if loads["e"] != 1 {
		t.Fatal("a failed load was kept")
	}
}
