package validate

import (
	"crypto/x509"
	"errors"
	"time"
)

// chain finds a chain from req.Cert to the roots of an anchor that serves req.Agency. When no anchor
// gives one, the most telling failure is returned: expired or wrong usage in the chain before untrusted.
func (v *Validator) chain(req Request, now time.Time) (*Anchor, []*x509.Certificate, *Error) {
	var best *Error
	tried := false
	for i := range v.opts.Anchors {
		a := &v.opts.Anchors[i]
		if !a.serves(req.Agency) {
			continue
		}
		tried = true
		opts := x509.VerifyOptions{
			Roots:         x509.NewCertPool(),
			Intermediates: x509.NewCertPool(),
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		}
		for _, r := range a.Roots {
			opts.Roots.AddCert(r)
		}
		for _, c := range append(a.Intermediates, req.Intermediates...) {
			opts.Intermediates.AddCert(c)
		}
		chains, err := req.Cert.Verify(opts)
		if err == nil {
			return a, chains[0], nil
		}
		if e := chainFailure(err); best == nil || rank(e.Reason) > rank(best.Reason) {
			best = e
		}
	}
	if !tried {
		return nil, nil, failure(Untrusted, nil, "No trust anchor is configured for the practitioner's agency.")
	}
	return nil, nil, best
}

func chainFailure(err error) *Error {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) {
		switch inv.Reason {
		case x509.Expired:
			return failure(Expired, err, "A CA certificate in the certificate's chain is outside its validity period.")
		case x509.IncompatibleUsage:
			return failure(WrongUsage, err, "The certificate's chain does not allow e-mail protection.")
		}
	}
	return failure(Untrusted, err, "The certificate does not chain to a trust anchor configured for the practitioner's agency.")
}

func rank(r Reason) int {
	switch r {
	case Expired, WrongUsage:
		return 2
	}
	return 1
}
