package cms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// Signer signs as one identity, the gateway: SHA-256, signed attributes content type, message
// digest, signing time and SMIMECapabilities (AES-256-GCM, then AES-256-CBC), the signer identified
// by issuer and serial number, its certificate and Chain included. RSA keys sign with PKCS#1 v1.5,
// ECDSA keys with ecdsa-with-SHA256.
//
// When the signing certificate is not the one correspondents should encrypt to (an ECDSA signing
// key beside an RSA encryption key), EncryptCert is that certificate: it is included in the
// SignedData and named by the SMIMEEncryptionKeyPreference attribute (RFC 8551 2.5.3,
// issuerAndSerialNumber), so a client answering encrypted picks it rather than the signing one.
type Signer struct {
	Cert        *x509.Certificate
	Key         crypto.Signer       // the private key of Cert
	Chain       []*x509.Certificate // intermediates to include, optional (not the root)
	EncryptCert *x509.Certificate   // the certificate to encrypt replies to when it is not Cert; optional
	Now         func() time.Time    // the signing time; time.Now when nil
	Rand        io.Reader           // crypto/rand.Reader when nil
}

// separateEncryptCert reports whether the SignedData names and carries an encryption certificate
// apart from the signing one.
func (s *Signer) separateEncryptCert() bool {
	return s.EncryptCert != nil && !s.EncryptCert.Equal(s.Cert)
}

// capabilities lists the content-encryption algorithms announced in SMIMECapabilities, most
// preferred first (RFC 8551 2.5.2).
var capabilities = []asn1.ObjectIdentifier{oidAES256GCM, oidAES256CBC}

// SignDetached reads content to its end and returns a DER ContentInfo holding a SignedData without
// encapsulated content: the application/pkcs7-signature part of multipart/signed. content must be the
// exact bytes that are signed (for S/MIME, the canonical CRLF MIME entity).
func (s *Signer) SignDetached(content io.Reader) ([]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, content); err != nil {
		return nil, err
	}
	si, err := s.signerInfo(h)
	if err != nil {
		return nil, err
	}
	encap := seq(oidBytes(oidData))
	sd := seq(s.signedDataPrefix(), encap, s.certificates(), setOf(si))
	return seq(oidBytes(oidSignedData), explicit(0, sd)), nil
}

// SignOpaque writes to w a DER ContentInfo holding a SignedData that encapsulates content (the
// body of application/pkcs7-mime; smime-type=signed-data). content is hashed and written once,
// never copied.
func (s *Signer) SignOpaque(w io.Writer, content []byte) error {
	h := sha256.New()
	h.Write(content)
	si, err := s.signerInfo(h)
	if err != nil {
		return err
	}
	osHdr := derHeader(tagOctetString, len(content))
	inner := len(osHdr) + len(content)
	exHdr := derHeader(classContext|flagConstructed|0, inner)
	inner += len(exHdr)
	dataOID := oidBytes(oidData)
	encapHdr := derHeader(tagSequence, len(dataOID)+inner)
	encapLen := len(encapHdr) + len(dataOID) + inner
	prefix, suffix := s.signedDataPrefix(), append(s.certificates(), setOf(si)...)
	sdLen := len(prefix) + encapLen + len(suffix)
	sdHdr := derHeader(tagSequence, sdLen)
	ciInner := len(sdHdr) + sdLen
	ciEx := derHeader(classContext|flagConstructed|0, ciInner)
	sdOID := oidBytes(oidSignedData)
	ciHdr := derHeader(tagSequence, len(sdOID)+len(ciEx)+ciInner)
	return writeAll(w, ciHdr, sdOID, ciEx, sdHdr, prefix, encapHdr, dataOID, exHdr, osHdr, content, suffix)
}

// signedDataPrefix is SignedData's version (1: issuerAndSerialNumber signer, id-data content) and
// digestAlgorithms.
func (s *Signer) signedDataPrefix() []byte {
	return append(intBytes(1), setOf(algID(oidSHA256, nil))...)
}

// certificates is the [0] IMPLICIT CertificateSet: the signer's certificate, the encryption
// certificate when separate, and the chain.
func (s *Signer) certificates() []byte {
	raws := [][]byte{s.Cert.Raw}
	if s.separateEncryptCert() {
		raws = append(raws, s.EncryptCert.Raw)
	}
	for _, c := range s.Chain {
		raws = append(raws, c.Raw)
	}
	set := setOf(raws...)
	set[0] = classContext | flagConstructed | 0
	return set
}

// signerInfo signs the attributes over the content digest in h.
func (s *Signer) signerInfo(h hash.Hash) ([]byte, error) {
	if s.Cert == nil || s.Key == nil {
		return nil, errors.New("cms: signer without certificate or key")
	}
	sigAlg, err := signatureAlgorithm(s.Key, s.Cert)
	if err != nil {
		return nil, err
	}
	attrs, err := s.signedAttributes(h.Sum(nil))
	if err != nil {
		return nil, err
	}
	attrDigest := sha256.Sum256(attrs)
	random := s.Rand
	if random == nil {
		random = rand.Reader
	}
	sig, err := s.Key.Sign(random, attrDigest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("cms: signing: %w", err)
	}
	signed := append([]byte{classContext | flagConstructed | 0}, attrs[1:]...) // [0] IMPLICIT SET
	sid := seq(s.Cert.RawIssuer, bigIntBytes(s.Cert.SerialNumber))
	return seq(intBytes(1), sid, algID(oidSHA256, nil), signed, sigAlg, octetString(sig)), nil
}

// signedAttributes returns the DER SET OF Attribute that is signed (tag 0x31, as hashed).
func (s *Signer) signedAttributes(digest []byte) ([]byte, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t, err := asn1.Marshal(now().UTC().Truncate(time.Second)) // UTCTime until 2049, as RFC 5652 11.3 asks
	if err != nil {
		return nil, err
	}
	var caps [][]byte
	for _, c := range capabilities {
		caps = append(caps, seq(oidBytes(c)))
	}
	attrs := [][]byte{
		attribute(oidAttrContentType, oidBytes(oidData)),
		attribute(oidAttrMessageDigest, octetString(digest)),
		attribute(oidAttrSigningTime, t),
		attribute(oidAttrSMIMECaps, seq(caps...)),
	}
	if s.separateEncryptCert() {
		// SMIMEEncryptionKeyPreference ::= CHOICE { issuerAndSerialNumber [0] IssuerAndSerialNumber, ... }
		// in a module of IMPLICIT TAGS: the SEQUENCE's tag becomes [0] constructed.
		ias := seq(s.EncryptCert.RawIssuer, bigIntBytes(s.EncryptCert.SerialNumber))
		ias[0] = classContext | flagConstructed | 0
		attrs = append(attrs, attribute(oidAttrEncKeyPref, ias))
	}
	return setOf(attrs...), nil
}

// attribute encodes an Attribute with one value.
func attribute(typ asn1.ObjectIdentifier, value []byte) []byte {
	return seq(oidBytes(typ), setOf(value))
}

// signatureAlgorithm names the signature algorithm for key, after checking it belongs to cert.
func signatureAlgorithm(key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("cms: the signing key does not match the certificate")
	}
	switch key.Public().(type) {
	case *rsa.PublicKey:
		return algID(oidRSAEncryption, nullBytes), nil
	case *ecdsa.PublicKey:
		return algID(oidECDSAWithSHA256, nil), nil
	}
	return nil, fmt.Errorf("cms: cannot sign with a %T key", key.Public())
}

// writeAll writes the parts in order, stopping at the first error.
func writeAll(w io.Writer, parts ...[]byte) error {
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}
