package cms

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"
)

// VerifyOptions say what a signature must chain to and which policy the signer must meet.
type VerifyOptions struct {
	// Roots are the trust anchors; a nil pool trusts nothing, so every signature is refused.
	Roots *x509.CertPool
	// Now is the time at which the chain must be valid (not the signing time the message claims);
	// time.Now when zero.
	Now time.Time
	// Check, when set, is called with the signer's certificate and the other certificates the
	// message carried, after the signature and the chain verified; its error refuses the message and
	// is returned wrapped. Key usage, mail address and revocation policy belong here (certs/validate).
	Check func(signer *x509.Certificate, intermediates []*x509.Certificate) error
	// MaxBytes bounds the SignedData encoding; DefaultMaxBytes when zero.
	MaxBytes int
}

// Signature is a verified signature.
type Signature struct {
	Signer        *x509.Certificate
	Intermediates []*x509.Certificate // the other certificates in the message
	Chain         []*x509.Certificate // the chain that verified, signer first, root last
	SigningTime   time.Time           // zero when the message has none
	// Capabilities are the content-encryption algorithms of the signer's SMIMECapabilities that this
	// package knows, in the signer's order of preference; nil when the attribute is absent.
	Capabilities []Cipher
	// HasCapabilities is whether the SMIMECapabilities attribute was present at all.
	HasCapabilities bool
	// AnnouncesOAEP is whether the SMIMECapabilities announce RSAES-OAEP key transport.
	AnnouncesOAEP bool
	// EncryptionCert is the certificate the SMIMEEncryptionKeyPreference attribute names by issuer
	// and serial number, when it is among the message's certificates; nil otherwise (the signer's
	// own certificate is then the one to encrypt to).
	EncryptionCert *x509.Certificate
}

// SupportsGCM reports whether the signer's SMIMECapabilities announce AES-GCM; false when the
// attribute is absent (HasCapabilities tells the two cases apart).
func (s *Signature) SupportsGCM() bool {
	for _, c := range s.Capabilities {
		if c.IsGCM() {
			return true
		}
	}
	return false
}

// VerifyDetached verifies a detached SignedData (sig, DER or BER) over content and returns the
// signature. Exactly one signer, SHA-256/384/512, a signer certificate in the message, identified by
// issuer and serial number or by subject key identifier; RSA PKCS#1 v1.5, RSASSA-PSS or ECDSA.
func VerifyDetached(sig, content []byte, opts VerifyOptions) (*Signature, error) {
	sd, err := parseSigned(sig, opts)
	if err != nil {
		return nil, err
	}
	if sd.content != nil {
		return nil, fmt.Errorf("%w: a detached signature with content", ErrMalformed)
	}
	return verifyParsed(sd, content, opts)
}

// VerifyOpaque verifies a SignedData that encapsulates its content and returns the content and the
// signature.
func VerifyOpaque(der []byte, opts VerifyOptions) ([]byte, *Signature, error) {
	sd, err := parseSigned(der, opts)
	if err != nil {
		return nil, nil, err
	}
	if len(sd.content) == 0 {
		return nil, nil, fmt.Errorf("%w: no encapsulated content", ErrMalformed)
	}
	s, err := verifyParsed(sd, sd.content, opts)
	if err != nil {
		return nil, nil, err
	}
	return sd.content, s, nil
}

// parseSigned checks the input (size, BER depth, content types) and parses it.
func parseSigned(der []byte, opts VerifyOptions) (*signedData, error) {
	limit := opts.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	if len(der) > limit {
		return nil, ErrTooLarge
	}
	if err := checkSignedData(der); err != nil {
		return nil, err
	}
	var sd *signedData
	err := guard(func() (err error) {
		sd, err = parseSignedData(der, limit)
		return err
	})
	if err != nil {
		return nil, err
	}
	return sd, nil
}

// checkSignedData walks the structure the library will parse: one well-formed BER element within
// the depth limit, a SignedData whose encapsulated content type is id-data.
func checkSignedData(der []byte) error {
	ci, err := parseOne(der)
	if err != nil {
		return ErrMalformed
	}
	kids, err := ci.children()
	if err != nil || len(kids) != 2 || !ci.is(tagSequence) || !kids[1].is(classContext|flagConstructed|0) {
		return ErrMalformed
	}
	if !oidIs(kids[0], oidSignedData) {
		return fmt.Errorf("%w: not SignedData", ErrMalformed)
	}
	sd, err := only(kids[1])
	if err != nil {
		return ErrMalformed
	}
	fields, err := sd.children()
	if err != nil || len(fields) < 4 || !fields[2].is(tagSequence) {
		return ErrMalformed
	}
	encap, err := fields[2].children()
	if err != nil || len(encap) == 0 {
		return ErrMalformed
	}
	if !oidIs(encap[0], oidData) {
		return fmt.Errorf("%w: encapsulated content is not id-data", ErrUnsupported)
	}
	return nil
}

// verifyParsed checks the signature, then the chain at opts.Now, then the caller's policy.
func verifyParsed(sd *signedData, content []byte, opts VerifyOptions) (*Signature, error) {
	if len(sd.signers) != 1 {
		return nil, fmt.Errorf("%w: %d signers", ErrUnsupported, len(sd.signers))
	}
	si := &sd.signers[0]
	if !strongDigest(si.digest) {
		return nil, fmt.Errorf("%w: digest %v", ErrUnsupported, si.digest)
	}
	signer := si.signerCert(sd.certs)
	if signer == nil {
		return nil, fmt.Errorf("%w: the signer's certificate is not in the message", ErrUnsupported)
	}
	if err := verifySigner(si, content, signer); err != nil {
		return nil, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	sig := &Signature{Signer: signer, Intermediates: others(sd.certs, signer)}
	chain, err := verifyChain(signer, sig.Intermediates, opts.Roots, now)
	if err != nil {
		return nil, err
	}
	sig.Chain = chain
	if opts.Check != nil {
		if err := opts.Check(signer, sig.Intermediates); err != nil {
			return nil, fmt.Errorf("cms: signer refused: %w", err)
		}
	}
	readAttributes(si, sig)
	sig.EncryptionCert = si.encryptionKeyPreference(sd.certs)
	return sig, nil
}

// verifyChain is the library's VerifyWithChain chain check, made at now rather than at the signing
// time the message claims, and kept apart so a bad chain is told from a bad signature.
func verifyChain(signer *x509.Certificate, intermediates []*x509.Certificate, roots *x509.CertPool, now time.Time) ([]*x509.Certificate, error) {
	if roots == nil {
		return nil, fmt.Errorf("%w: no trust anchors", ErrUntrusted)
	}
	pool := x509.NewCertPool()
	for _, c := range intermediates {
		pool.AddCert(c)
	}
	chains, err := signer.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: pool, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	return chains[0], nil
}

// readAttributes fills the signing time and capabilities from the signed attributes, if any.
func readAttributes(si *signerInfo, sig *Signature) {
	sig.SigningTime = si.signingTime()
	vals := si.attrs[oidAttrSMIMECaps.String()]
	if len(vals) != 1 {
		return
	}
	caps, oaep, err := ParseCapabilities(vals[0].full)
	if err != nil {
		return
	}
	sig.HasCapabilities, sig.Capabilities, sig.AnnouncesOAEP = true, caps, oaep
}

func strongDigest(oid asn1.ObjectIdentifier) bool {
	return oid.Equal(oidSHA256) || oid.Equal(oidSHA384) || oid.Equal(oidSHA512)
}

func others(certs []*x509.Certificate, signer *x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range certs {
		if !c.Equal(signer) {
			out = append(out, c)
		}
	}
	return out
}

// guard runs a library call and turns a panic into an error.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("cms: library panic on malformed input")
		}
	}()
	return f()
}

// oidIs reports whether e is an OBJECT IDENTIFIER equal to oid.
func oidIs(e element, oid asn1.ObjectIdentifier) bool {
	return e.is(tagOID) && string(e.full) == string(oidBytes(oid))
}

// only returns the single child of a constructed element.
func only(e element) (element, error) {
	kids, err := e.children()
	if err != nil || len(kids) != 1 {
		return element{}, errBER
	}
	return kids[0], nil
}
