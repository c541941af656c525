package main

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"

	"cafgate/certs/validate"
	"cafgate/configs"
	"cafgate/envelope/cms"
	"cafgate/gateway/intake"
)

// gatewayIdentity is the gateway's own S/MIME certificate and key: it decrypts submissions encrypted
// to the gateway and signs what the gateway forwards.
type gatewayIdentity struct {
	Cert  *x509.Certificate
	Chain []*x509.Certificate
	Key   crypto.Signer
}

func loadIdentity(sc configs.SMIMEConfig) (*gatewayIdentity, error) {
	if sc.CertFile == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(sc.CertFile, sc.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("smime: %w", err)
	}
	certs := make([]*x509.Certificate, 0, len(pair.Certificate))
	for _, der := range pair.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("smime.cert_file: %w", err)
		}
		certs = append(certs, c)
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("smime.key_file: the key cannot sign")
	}
	return &gatewayIdentity{Cert: certs[0], Chain: certs[1:], Key: key}, nil
}

// newValidator builds the certificate validator from the [[trust.anchor]] tables, and the pool of
// every anchor's roots for building chains.
func newValidator(tc configs.TrustConfig, log *slog.Logger) (*validate.Validator, *x509.CertPool, error) {
	pool := x509.NewCertPool()
	var anchors []validate.Anchor
	for _, a := range tc.Anchors {
		roots, err := validate.LoadPEMCertificates(a.CAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("trust anchor %q: %w", a.Name, err)
		}
		var inter []*x509.Certificate
		if a.IntermediatesFile != "" {
			if inter, err = validate.LoadPEMCertificates(a.IntermediatesFile); err != nil {
				return nil, nil, fmt.Errorf("trust anchor %q: %w", a.Name, err)
			}
		}
		for _, r := range roots {
			pool.AddCert(r)
		}
		anchors = append(anchors, validate.Anchor{Name: a.Name, Agencies: a.Agencies, Roots: roots, Intermediates: inter,
			SoftRevocation: strings.EqualFold(a.Revocation, "soft")})
	}
	v, err := validate.New(validate.Options{Anchors: anchors, Log: log, FetchTimeout: tc.FetchTimeout.D(),
		MaxCRLBytes: int64(tc.MaxCRLSize), RetryAfter: tc.RetryAfter.D()})
	if err != nil {
		return nil, nil, fmt.Errorf("trust: %w", err)
	}
	return v, pool, nil
}

// intakeSMIME wires S/MIME submissions: the gateway's key decrypts, the validator checks signers.
func intakeSMIME(id *gatewayIdentity, v *validate.Validator, roots *x509.CertPool) *intake.SMIME {
	s := &intake.SMIME{Roots: roots, Validator: v}
	if id != nil {
		s.Decrypter = &cms.Decrypter{Cert: id.Cert, Key: id.Key}
	}
	return s
}

// signer is the gateway's signing identity for sealed copies; nil when none is configured.
func (id *gatewayIdentity) signer() *cms.Signer {
	if id == nil {
		return nil
	}
	return &cms.Signer{Cert: id.Cert, Key: id.Key, Chain: id.Chain}
}
