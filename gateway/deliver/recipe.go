// Copies sealed when they are sent. A remote recipient's copy is queued as a recipe, not as sealed
// bytes: the pipeline decides everything about it (the sections, the certificate and cipher, escrow,
// the Date and Message-ID) and records it in the "encrypted" event; the relay builds and seals the
// copy from the recipe and the stored package at each attempt (Builder). So a copy is never written
// to disk: the store holds the package once and a recipe of a few kilobytes per recipient, instead
// of a sealed copy per recipient written, read back and deleted (a 1 MiB package's three copies were
// about 4 MB of writes, twice over with the log's checkpoint). Each attempt encrypts anew (a fresh
// content key; the signed entity is made once per package and section set while the Builder keeps
// it); the copy's Message-ID stays the same, which is how a receiver recognises an attempt made
// again after a crash.

package deliver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"cafgate/envelope/cms"
	"cafgate/envelope/pkg"
	"cafgate/envelope/smime"
	"cafgate/mailbox"
	"cafgate/policy"
)

// recipeVersion is the version of the recipe's encoding this program writes. Version 1 carried
// each certificate's DER in the recipe; version 2 names it by SHA-256 (the store keeps the
// certificates once each: mailbox.Outbound.Certificates). Both are read.
const recipeVersion = 2

// recipe is what a queued copy is built and sealed from. It holds no package content: section
// names, addresses and public certificates only (and it is encrypted at rest all the same).
type recipe struct {
	V         int              `json:"v"`
	MessageID string           `json:"message_id"` // the accepted package
	Sender    string           `json:"sender"`     // From of the copy
	Recipient string           `json:"recipient"`  // the queue entry's recipient
	To        string           `json:"to"`         // To of the copy: the directory's spelling of the address
	Sections  []policy.Section `json:"sections"`   // the sections the decision allows; empty: all
	Episode   string           `json:"episode"`    // the package's episode reference, named in the Subject
	Date      time.Time        `json:"date"`       // Date of the copy
	HeaderID  string           `json:"header_id"`  // Message-ID of the copy, with its angle brackets
	Cipher    int              `json:"cipher"`     // cms.Cipher
	// Keys are the content key's recipients: the addressee's certificate first, then any escrow.
	Keys []recipeKey `json:"keys"`
}

type recipeKey struct {
	CertSHA256   []byte `json:"cert_sha256,omitempty"` // version 2: the certificate's SHA-256
	Cert         []byte `json:"cert,omitempty"`        // version 1: the certificate's DER
	KeyTransport int    `json:"key_transport"`
	BySKI        bool   `json:"by_ski,omitempty"`
}

// newRecipe records plan for the copy of w's package to the recipient whose directory address is to,
// and returns the certificates (DER) it names, to be stored with it.
func newRecipe(w mailbox.DeliveryWork, to, episode string, date time.Time, headerID string, plan smime.Plan) (recipe, [][]byte) {
	r := recipe{V: recipeVersion, MessageID: w.MessageID, Sender: w.Sender, Recipient: w.Recipient, To: to, Episode: episode,
		Sections: w.Decision.Allowed, Date: date.UTC(), HeaderID: headerID, Cipher: int(plan.Encrypt.Cipher)}
	var certs [][]byte
	for _, k := range plan.Encrypt.Recipients {
		sum := sha256.Sum256(k.Cert.Raw)
		r.Keys = append(r.Keys, recipeKey{CertSHA256: sum[:], KeyTransport: int(k.KeyTransport), BySKI: k.BySKI})
		certs = append(certs, k.Cert.Raw)
	}
	return r, certs
}

// encryptOptions turns the recipe's keys back into the encryption the plan chose, getting each
// certificate with cert.
func (r *recipe) encryptOptions(cert func(recipeKey) (*x509.Certificate, error)) (*cms.EncryptOptions, error) {
	opts := &cms.EncryptOptions{Cipher: cms.Cipher(r.Cipher)}
	for _, k := range r.Keys {
		c, err := cert(k)
		if err != nil {
			return nil, fmt.Errorf("a certificate of the recipe: %w", err)
		}
		opts.Recipients = append(opts.Recipients, cms.Recipient{Cert: c, KeyTransport: cms.KeyTransport(k.KeyTransport), BySKI: k.BySKI})
	}
	if len(opts.Recipients) == 0 {
		return nil, errors.New("the recipe names no certificate")
	}
	return opts, nil
}

// copyHeader is the header of a recipient's copy: it says nothing of the child (the header travels
// outside the encryption).
func copyHeader(sender, to, episode string, date time.Time, headerID string) string {
	return fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: CAF package for episode %s\r\nDate: %s\r\nMessage-ID: %s\r\n",
		sender, to, episode, date.Format(time.RFC1123Z), headerID)
}

// Builder builds the copies queued by recipe for the relay's attempts.
type Builder struct {
	store    PackageReader
	signer   *cms.Signer
	packages *packageCache
	signed   *onceLRU[*smime.Signed] // signed entities by package and allowed sections

	mu    sync.Mutex
	certs map[string]*x509.Certificate // parsed recipe certificates by SHA-256 (the same recipients recur)
}

// maxParsedCerts bounds Builder.certs; past it the map starts again.
const maxParsedCerts = 4096

// cert returns the parsed certificate k names, remembered by its SHA-256: every copy to a recipient
// names the same one. A version-2 key's certificate is read from the store.
func (b *Builder) cert(ctx context.Context, k recipeKey) (*x509.Certificate, error) {
	sum := k.CertSHA256
	if k.Cert != nil { // version 1
		s := sha256.Sum256(k.Cert)
		sum = s[:]
	}
	if len(sum) != sha256.Size {
		return nil, errors.New("the recipe names a certificate by neither its DER nor its SHA-256")
	}
	b.mu.Lock()
	c := b.certs[string(sum)]
	b.mu.Unlock()
	if c != nil {
		return c, nil
	}
	der := k.Cert
	if der == nil {
		var err error
		if der, err = b.store.Certificate(ctx, sum); err != nil {
			return nil, err
		}
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", mailbox.ErrCorrupt, err)
	}
	b.mu.Lock()
	if len(b.certs) >= maxParsedCerts {
		clear(b.certs)
	}
	b.certs[string(sum)] = c
	b.mu.Unlock()
	return c, nil
}

// contentReader reads a stored package.
type contentReader interface {
	MessageContent(ctx context.Context, id string) ([]byte, error)
}

// PackageReader reads a stored package, and a certificate a recipe names (mailbox.Store does both).
type PackageReader interface {
	contentReader
	Certificate(ctx context.Context, sha256 []byte) ([]byte, error)
}

// NewBuilder returns a Builder reading packages from store and signing as signer (the gateway's
// S/MIME identity; the pipeline's Options.Signer).
func NewBuilder(store PackageReader, signer *cms.Signer) *Builder {
	return &Builder{store: store, signer: signer, packages: newPackageCache(),
		signed: newOnceLRU[*smime.Signed](cacheMaxPackages, signedMaxBytes), certs: make(map[string]*x509.Certificate)}
}

// Build builds and seals the copy that claimed entry c was queued for by recipe: the relay calls it
// at each attempt (relay.Options.Build). An error wrapping mailbox.ErrCorrupt cannot be mended by
// trying again (the recipe or the stored package no longer reads); any other (the store is busy or
// down) can.
func (b *Builder) Build(ctx context.Context, c *mailbox.Claimed) ([]byte, error) {
	if b.signer == nil {
		return nil, fmt.Errorf("%w: queue entry %s: the gateway has no signing identity to seal the copy with", mailbox.ErrCorrupt, c.ID)
	}
	var r recipe
	if err := json.Unmarshal(c.Recipe, &r); err != nil || (r.V != 1 && r.V != 2) {
		return nil, fmt.Errorf("%w: queue entry %s: the recipe does not read (version %d): %v", mailbox.ErrCorrupt, c.ID, r.V, err)
	}
	if r.MessageID != c.MessageID || !strings.EqualFold(r.Recipient, c.Recipient) || r.HeaderID != c.HeaderMessageID {
		return nil, fmt.Errorf("%w: queue entry %s: the recipe is for another entry", mailbox.ErrCorrupt, c.ID)
	}
	enc, err := r.encryptOptions(func(k recipeKey) (*x509.Certificate, error) { return b.cert(ctx, k) })
	switch {
	case errors.Is(err, mailbox.ErrCorrupt):
		return nil, fmt.Errorf("queue entry %s: %w", c.ID, err)
	case errors.Is(err, mailbox.ErrUnavailable):
		return nil, err // the store cannot be read now: try again later
	case err != nil:
		return nil, fmt.Errorf("%w: queue entry %s: %v", mailbox.ErrCorrupt, c.ID, err)
	}
	signed, err := b.signedEntity(ctx, c.ID, &r)
	if err != nil {
		return nil, err
	}
	episode := r.Episode
	if episode == "" { // a recipe that does not carry it: from the package
		pk, err := b.packages.get(ctx, b.store, r.MessageID)
		if err != nil {
			return nil, err
		}
		episode = pk.Manifest.Episode
	}
	header := copyHeader(r.Sender, r.To, episode, r.Date, r.HeaderID)
	var sealed bytes.Buffer
	sealed.Grow(len(header) + 1<<10 + smime.SealedSizeBoundFor(signed.Size(), *enc))
	if err := smime.SealSigned(&sealed, []byte(header), signed, *enc); err != nil {
		return nil, fmt.Errorf("%w: queue entry %s: sealing: %v", mailbox.ErrCorrupt, c.ID, err)
	}
	return sealed.Bytes(), nil
}

// signedEntity is the signed entity of r's copy: the package's allowed sections, signed by the
// gateway. It is the same for every recipient of the package allowed the same sections (the
// headers that differ stay outside it), so it is made once for them and kept beside the packages.
func (b *Builder) signedEntity(ctx context.Context, queueID string, r *recipe) (*smime.Signed, error) {
	names := make([]string, len(r.Sections))
	for i, s := range r.Sections {
		names[i] = string(s)
	}
	slices.Sort(names)
	return b.signed.get(r.MessageID+"\x00"+strings.Join(names, ","), func() (*smime.Signed, int, error) {
		pk, err := b.packages.get(ctx, b.store, r.MessageID)
		if err != nil {
			return nil, 0, err
		}
		// The entity is built in a buffer of the pool: Sign keeps nothing of it.
		bp := copyBuffers.Get().(*[]byte)
		defer copyBuffers.Put(bp)
		entity, err := pk.AppendForRecipient((*bp)[:0], copySections(pk, r.Sections))
		if err != nil {
			// The decision allowed sections of this package when the recipe was made: it cannot change.
			return nil, 0, fmt.Errorf("%w: queue entry %s: %v", mailbox.ErrCorrupt, queueID, err)
		}
		*bp = entity
		s, err := smime.Sign(entity, b.signer)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: queue entry %s: signing: %v", mailbox.ErrCorrupt, queueID, err)
		}
		return s, s.Size(), nil
	})
}

// copyBuffers are the buffers copies are built in before they are sealed.
var copyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// copyBody is the MIME entity of a recipient's copy of pk: only the allowed sections (all when
// allowed is empty). pk is the caller's own shallow copy: its manifest may be changed.
func copyBody(pk *pkg.Package, allowed []policy.Section) ([]byte, error) {
	return pk.ForRecipient(copySections(pk, allowed))
}

// copySize is about the size copyBody would return, or its error, without building the copy.
func copySize(pk *pkg.Package, allowed []policy.Section) (int, error) {
	return pk.CopySize(copySections(pk, allowed))
}

// copySections readies pk (the caller's own shallow copy) for a recipient's copy and returns the
// sections of it allowed (all when allowed is empty).
func copySections(pk *pkg.Package, allowed []policy.Section) []pkg.Section {
	if pk.Manifest.Child == "" {
		// A plain e-mail names no child; the episode reference stands in for it in the copy's manifest.
		pk.Manifest.Child = pk.Manifest.Episode
	}
	sections := make([]pkg.Section, 0, len(allowed))
	for _, s := range allowed {
		sections = append(sections, pkg.Section(s))
	}
	if len(sections) == 0 {
		sections = pk.Manifest.AllSections()
	}
	return sections
}

// packageCache keeps the packages the relay's attempts built copies from last, parsed: the copies
// of one package are queued together, so the attempts that build them follow one another.
type packageCache struct{ lru *onceLRU[*pkg.Package] }

// The packages (and signed entities) kept: the pipeline reads a package up to a round (256
// recipients) before the relay builds its copies, which at 1 MiB is more than 64 MiB.
const (
	cacheMaxPackages = 256
	cacheMaxBytes    = 160 << 20
	signedMaxBytes   = 64 << 20 // the signed entities: a package's copies are built one after another
)

func newPackageCache() *packageCache {
	return &packageCache{lru: newOnceLRU[*pkg.Package](cacheMaxPackages, cacheMaxBytes)}
}

// get returns package id, parsed, as a shallow copy of its own (its manifest may be changed).
func (c *packageCache) get(ctx context.Context, store contentReader, id string) (*pkg.Package, error) {
	pk, err := c.lru.get(id, func() (*pkg.Package, int, error) {
		content, err := store.MessageContent(ctx, id)
		if err != nil {
			return nil, 0, fmt.Errorf("reading the package: %w", err)
		}
		pk, err := pkg.ParseBytes(content, pkg.DefaultLimits())
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %v", mailbox.ErrCorrupt, errStoredPackage{err})
		}
		return pk, len(content), nil
	})
	if err != nil {
		return nil, err
	}
	cp := *pk
	return &cp, nil
}
