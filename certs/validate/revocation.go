package validate

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"time"
)

// status is what one source said of one certificate.
type status int

const (
	statusUnknown status = iota
	statusGood
	statusRevoked
)

// revocation learns cert's status (issued by issuer): OCSP first where the certificate names a
// responder, then the CRL of each http distribution point (and file one, within Options.CRLDirs). The first definite answer wins.
func (v *Validator) revocation(ctx context.Context, cert, issuer *x509.Certificate, leaf bool, now time.Time) *Error {
	var causes []string
	for _, u := range cert.OCSPServer {
		st, at, err := v.ocspStatus(ctx, u, cert, issuer, now)
		if st != statusUnknown {
			return verdict(st, at, leaf)
		}
		causes = append(causes, "OCSP: "+err.Error())
	}
	for _, u := range cert.CRLDistributionPoints {
		file := strings.HasPrefix(u, "file:") && len(v.opts.CRLDirs) > 0
		if !file && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			continue
		}
		st, at, err := v.crlStatus(ctx, u, cert, issuer, leaf, now)
		if st != statusUnknown {
			return verdict(st, at, leaf)
		}
		causes = append(causes, "CRL: "+err.Error())
	}
	if len(causes) == 0 {
		causes = append(causes, "no OCSP responder or http CRL distribution point is named")
	}
	who := "the certificate"
	if !leaf {
		who = "a CA certificate in its chain"
	}
	return failure(RevocationUnknown, errors.New(strings.Join(causes, "; ")),
		"Whether %s is revoked cannot be learned just now (no CRL or OCSP answer).", who)
}

func verdict(st status, at time.Time, leaf bool) *Error {
	if st == statusGood {
		return nil
	}
	when := ""
	if !at.IsZero() {
		when = " on " + at.UTC().Format("2 January 2006")
	}
	if leaf {
		return failure(Revoked, nil, "The certificate was revoked%s.", when)
	}
	return failure(Revoked, nil, "A CA certificate in the certificate's chain was revoked%s.", when)
}
