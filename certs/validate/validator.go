// Package validate decides whether a practitioner's S/MIME certificate may be used: it chains to a trust
// anchor configured for the practitioner's agency, its key usage and extended key usage allow the use
// (signing or encryption), it is within its validity period, it is for the practitioner's mail address
// in the directory, and it is not revoked, by OCSP where the certificate names a responder and by the
// CRL of its distribution point (fetched over HTTP, cached until its nextUpdate). A revocation status
// that cannot be learned fails, unless the anchor is set to soften that to a warning.
package validate

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Usage is what the certificate is to be used for.
type Usage int

// The usages.
const (
	ForSigning    Usage = iota + 1 // verifying a practitioner's signature: digitalSignature or nonRepudiation
	ForEncryption                  // encrypting to a practitioner: keyEncipherment (RSA) or keyAgreement (EC)
)

// Options configure a Validator. Zero fields take the defaults given.
type Options struct {
	Anchors      []Anchor
	HTTPClient   *http.Client     // nil: a client of its own (no cookies, FetchTimeout)
	Now          func() time.Time // nil: time.Now
	Log          *slog.Logger     // nil: discard
	FetchTimeout time.Duration    // one CRL or OCSP fetch: 10s
	MaxCRLBytes  int64            // largest CRL read: 16 MiB
	MaxOCSPBytes int64            // largest OCSP response read: 64 KiB
	RetryAfter   time.Duration    // after a failed fetch of a URL, how long it is not tried again: 1m
	// Skew is how far a CRL's thisUpdate or an OCSP response's thisUpdate may be in the future: 5m.
	Skew time.Duration
	// CRLDirs are the directories whose files a file: CRL distribution point may name (a CA that
	// publishes its CRL as a file beside its certificate, as the development CA does); none: file URLs
	// are not read.
	CRLDirs []string
}

// Validator validates certificates. It is safe for concurrent use; its CRL and OCSP caches are shared
// by all calls.
type Validator struct {
	opts Options
	crls *crlCache
	ocsp *ocspCache
}

// New returns a Validator. An anchor without roots is an error.
func New(opts Options) (*Validator, error) {
	for _, a := range opts.Anchors {
		if len(a.Roots) == 0 {
			return nil, errors.New("validate: trust anchor " + a.Name + " has no root certificate")
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 10 * time.Second
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: opts.FetchTimeout}
	}
	if opts.MaxCRLBytes <= 0 {
		opts.MaxCRLBytes = 16 << 20
	}
	if opts.MaxOCSPBytes <= 0 {
		opts.MaxOCSPBytes = 64 << 10
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = time.Minute
	}
	if opts.Skew <= 0 {
		opts.Skew = 5 * time.Minute
	}
	return &Validator{opts: opts, crls: newCRLCache(), ocsp: newOCSPCache()}, nil
}

// Request is one certificate to validate.
type Request struct {
	Cert          *x509.Certificate
	Intermediates []*x509.Certificate // CA certificates that came with it (a signed message's certificates)
	Mail          string              // the practitioner's mail address in the directory
	Agency        string              // the practitioner's agency in the directory
	Usage         Usage
}

// Result is a certificate that passed.
type Result struct {
	Anchor   string              // the trust anchor it chains to
	Chain    []*x509.Certificate // leaf first, root last
	Warnings []*Error            // revocation-unknown softened by the anchor's setting
}

// Validate checks req.Cert at the validator's current time, in this order: validity dates, key usage,
// chain to an anchor serving req.Agency, mail address, revocation of the leaf and of each CA certificate
// below the root. It returns the first failure as an *Error.
func (v *Validator) Validate(ctx context.Context, req Request) (*Result, error) {
	now := v.opts.Now()
	c := req.Cert
	if c == nil {
		return nil, failure(Untrusted, nil, "There is no certificate.")
	}
	if err := checkDates(c, now); err != nil {
		return nil, err
	}
	if err := checkUsage(c, req.Usage); err != nil {
		return nil, err
	}
	anchor, chain, err := v.chain(req, now)
	if err != nil {
		return nil, err
	}
	if err := checkMail(c, req.Mail); err != nil {
		return nil, err
	}
	res := &Result{Anchor: anchor.Name, Chain: chain}
	for i := 0; i+1 < len(chain); i++ {
		err := v.revocation(ctx, chain[i], chain[i+1], i == 0, now)
		if err == nil {
			continue
		}
		if err.Reason == RevocationUnknown && anchor.SoftRevocation {
			v.opts.Log.Warn("certificate revocation status unknown; allowed by the trust anchor's soft setting",
				"anchor", anchor.Name, "serial", chain[i].SerialNumber.Text(16), "cause", err.Error())
			res.Warnings = append(res.Warnings, err)
			continue
		}
		return nil, err
	}
	return res, nil
}

func checkDates(c *x509.Certificate, now time.Time) *Error {
	const layout = "2 January 2006"
	if now.Before(c.NotBefore) {
		return failure(Expired, nil, "The certificate is not valid until %s.", c.NotBefore.UTC().Format(layout))
	}
	if now.After(c.NotAfter) {
		return failure(Expired, nil, "The certificate expired on %s.", c.NotAfter.UTC().Format(layout))
	}
	return nil
}
