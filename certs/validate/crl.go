package validate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"
)

// crlCache holds the CRLs fetched so far, by distribution point URL and issuer, each until its
// nextUpdate. A URL whose fetch failed is not fetched again for RetryAfter. Entries are few (one per
// CA), so none is ever evicted.
type crlCache struct {
	mu      sync.Mutex
	entries map[string]*crlEntry
}

type crlEntry struct {
	mu         sync.Mutex // held while fetching, so one URL is fetched once however many callers wait
	revoked    map[string]time.Time
	scope      idpScope
	nextUpdate time.Time
	failedAt   time.Time
	failure    error
}

func newCRLCache() *crlCache { return &crlCache{entries: map[string]*crlEntry{}} }

func (c *crlCache) entry(url string, issuer *x509.Certificate) *crlEntry {
	sum := sha256.Sum256(issuer.Raw)
	key := url + "\x00" + string(sum[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e == nil {
		e = &crlEntry{}
		c.entries[key] = e
	}
	return e
}

// crlStatus looks cert up in the CRL at url, fetching and checking it when the cached one is missing or
// past its nextUpdate.
func (v *Validator) crlStatus(ctx context.Context, url string, cert, issuer *x509.Certificate, leaf bool, now time.Time) (status, time.Time, error) {
	e := v.crls.entry(url, issuer)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.revoked == nil || !now.Before(e.nextUpdate) {
		if e.failure != nil && now.Sub(e.failedAt) < v.opts.RetryAfter {
			return statusUnknown, time.Time{}, e.failure
		}
		if err := v.loadCRL(ctx, e, url, issuer, now); err != nil {
			e.revoked, e.failure, e.failedAt = nil, err, now
			return statusUnknown, time.Time{}, err
		}
	}
	if (leaf && e.scope.onlyCA) || (!leaf && e.scope.onlyUser) {
		return statusUnknown, time.Time{}, errors.New("the CRL does not cover this kind of certificate")
	}
	if at, ok := e.revoked[cert.SerialNumber.String()]; ok {
		return statusRevoked, at, nil
	}
	return statusGood, time.Time{}, nil
}

// loadCRL fetches, parses and checks the CRL at url and fills e.
func (v *Validator) loadCRL(ctx context.Context, e *crlEntry, url string, issuer *x509.Certificate, now time.Time) error {
	data, err := v.fetch(ctx, url, nil, "", v.opts.MaxCRLBytes)
	if err != nil {
		return err
	}
	if blk, _ := pem.Decode(data); blk != nil && blk.Type == "X509 CRL" {
		data = blk.Bytes
	}
	l, err := x509.ParseRevocationList(data)
	if err != nil {
		return fmt.Errorf("CRL from %s: %w", url, err)
	}
	if !bytes.Equal(l.RawIssuer, issuer.RawSubject) {
		return fmt.Errorf("CRL from %s is not the issuer's", url)
	}
	if err := l.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("CRL from %s: bad signature: %w", url, err)
	}
	if l.ThisUpdate.After(now.Add(v.opts.Skew)) {
		return fmt.Errorf("CRL from %s is dated in the future", url)
	}
	if l.NextUpdate.IsZero() || !now.Before(l.NextUpdate) {
		return fmt.Errorf("CRL from %s is out of date (nextUpdate %s)", url, l.NextUpdate.UTC().Format(time.RFC3339))
	}
	scope, err := crlScope(l)
	if err != nil {
		return fmt.Errorf("CRL from %s: %w", url, err)
	}
	revoked := make(map[string]time.Time, len(l.RevokedCertificateEntries))
	for _, r := range l.RevokedCertificateEntries {
		if r.ReasonCode == 8 { // removeFromCRL: only meaningful in delta CRLs
			continue
		}
		revoked[r.SerialNumber.String()] = r.RevocationTime
	}
	e.revoked, e.scope, e.nextUpdate, e.failure = revoked, scope, l.NextUpdate, nil
	return nil
}

var (
	oidIssuingDistributionPoint = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidDeltaCRLIndicator        = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidAuthorityKeyID           = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber                = asn1.ObjectIdentifier{2, 5, 29, 20}
)

// idpScope is what an issuingDistributionPoint extension limits a CRL to.
type idpScope struct{ onlyUser, onlyCA bool }

// crlScope refuses CRLs this validator cannot read completely: delta CRLs, indirect CRLs, CRLs for some
// reasons only, and any other critical extension it does not know.
func crlScope(l *x509.RevocationList) (idpScope, error) {
	var scope idpScope
	for _, ext := range l.Extensions {
		switch {
		case ext.Id.Equal(oidIssuingDistributionPoint):
			var idp struct {
				DistributionPoint asn1.RawValue  `asn1:"optional,explicit,tag:0"`
				OnlyUser          bool           `asn1:"optional,tag:1"`
				OnlyCA            bool           `asn1:"optional,tag:2"`
				OnlySomeReasons   asn1.BitString `asn1:"optional,tag:3"`
				Indirect          bool           `asn1:"optional,tag:4"`
				OnlyAttribute     bool           `asn1:"optional,tag:5"`
			}
			if rest, err := asn1.Unmarshal(ext.Value, &idp); err != nil || len(rest) != 0 {
				return scope, errors.New("malformed issuingDistributionPoint")
			}
			if idp.Indirect || idp.OnlySomeReasons.BitLength > 0 || idp.OnlyAttribute {
				return scope, errors.New("indirect, partial-reason or attribute CRLs are not supported")
			}
			scope = idpScope{onlyUser: idp.OnlyUser, onlyCA: idp.OnlyCA}
		case ext.Id.Equal(oidDeltaCRLIndicator):
			return scope, errors.New("delta CRLs are not supported")
		case ext.Id.Equal(oidAuthorityKeyID), ext.Id.Equal(oidCRLNumber):
		case ext.Critical:
			return scope, fmt.Errorf("unknown critical extension %s", ext.Id)
		}
	}
	return scope, nil
}
