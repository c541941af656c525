package validate

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// ocspDefaultLife is how long a response without nextUpdate is used.
const ocspDefaultLife = time.Hour

// ocspCache holds definite OCSP answers (good or revoked) by issuer and serial until their nextUpdate.
type ocspCache struct {
	mu      sync.Mutex
	answers map[string]ocspAnswer
}

type ocspAnswer struct {
	st         status
	revokedAt  time.Time
	nextUpdate time.Time
}

func newOCSPCache() *ocspCache { return &ocspCache{answers: map[string]ocspAnswer{}} }

func ocspKey(cert, issuer *x509.Certificate) string {
	sum := sha256.Sum256(issuer.Raw)
	return string(sum[:]) + cert.SerialNumber.String()
}

// ocspStatus asks the responder at url about cert, or answers from the cache.
func (v *Validator) ocspStatus(ctx context.Context, url string, cert, issuer *x509.Certificate, now time.Time) (status, time.Time, error) {
	key := ocspKey(cert, issuer)
	v.ocsp.mu.Lock()
	a, ok := v.ocsp.answers[key]
	v.ocsp.mu.Unlock()
	if ok && now.Before(a.nextUpdate) {
		return a.st, a.revokedAt, nil
	}
	req, err := ocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		return statusUnknown, time.Time{}, err
	}
	data, err := v.fetch(ctx, url, req, "application/ocsp-request", v.opts.MaxOCSPBytes)
	if err != nil {
		return statusUnknown, time.Time{}, err
	}
	resp, err := v.checkOCSP(data, cert, issuer, now)
	if err != nil {
		return statusUnknown, time.Time{}, fmt.Errorf("OCSP answer from %s: %w", url, err)
	}
	next := resp.NextUpdate
	if next.IsZero() {
		next = resp.ThisUpdate.Add(ocspDefaultLife)
	}
	switch resp.Status {
	case ocsp.Good:
		a = ocspAnswer{st: statusGood, nextUpdate: next}
	case ocsp.Revoked:
		a = ocspAnswer{st: statusRevoked, revokedAt: resp.RevokedAt, nextUpdate: next}
	default:
		return statusUnknown, time.Time{}, fmt.Errorf("the OCSP responder at %s does not know the certificate", url)
	}
	v.ocsp.mu.Lock()
	v.ocsp.answers[key] = a
	v.ocsp.mu.Unlock()
	return a.st, a.revokedAt, nil
}

// checkOCSP parses a response for cert and checks who signed it: the issuer itself, or a responder
// certificate the issuer signed for OCSP signing (RFC 6960 4.2.2.2), valid now. Its thisUpdate must not
// be in the future and its nextUpdate, when given, not in the past.
func (v *Validator) checkOCSP(data []byte, cert, issuer *x509.Certificate, now time.Time) (*ocsp.Response, error) {
	resp, err := ocsp.ParseResponseForCert(data, cert, nil) // the signer is checked below
	if err != nil {
		return nil, err
	}
	switch signer := resp.Certificate; {
	case signer == nil || signer.Equal(issuer):
		if err := resp.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("not signed by the issuer: %w", err)
		}
	default:
		if err := signer.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("responder certificate not issued by the issuer: %w", err)
		}
		if !slices.Contains(signer.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return nil, errors.New("responder certificate is not for OCSP signing")
		}
		if now.Before(signer.NotBefore) || now.After(signer.NotAfter) {
			return nil, errors.New("responder certificate is outside its validity period")
		}
	}
	if resp.ThisUpdate.After(now.Add(v.opts.Skew)) {
		return nil, errors.New("dated in the future")
	}
	if !resp.NextUpdate.IsZero() && !now.Before(resp.NextUpdate) {
		return nil, errors.New("out of date")
	}
	if resp.NextUpdate.IsZero() && now.Sub(resp.ThisUpdate) > ocspDefaultLife {
		return nil, errors.New("out of date")
	}
	return resp, nil
}
