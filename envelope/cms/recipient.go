package cms

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"
)

// KeyTransport is how the content-encryption key reaches an RSA recipient. EC recipients always use
// ECDH key agreement.
type KeyTransport int

// The RSA key transports.
const (
	RSAOAEPSHA256 KeyTransport = iota // RSAES-OAEP, SHA-256 and MGF1-SHA-256, parameters explicit (RFC 4055)
	RSAOAEPSHA1                       // RSAES-OAEP with the default SHA-1 parameters
	RSAPKCS1v15                       // rsaEncryption: the one gpgsm 2.2 and older clients read
)

// String names the key transport, for logs and the ledger.
func (k KeyTransport) String() string {
	switch k {
	case RSAOAEPSHA256:
		return "RSA-OAEP-SHA256"
	case RSAOAEPSHA1:
		return "RSA-OAEP-SHA1"
	case RSAPKCS1v15:
		return "RSA-PKCS1v15"
	}
	return "unknown key transport"
}

// Recipient is one certificate to encrypt to. The certificate must already be validated by the
// caller (chain, usage, revocation); this package checks only that its key can be used.
type Recipient struct {
	Cert         *x509.Certificate
	KeyTransport KeyTransport // for RSA keys; ignored for EC keys
	// BySKI identifies the recipient by its certificate's subjectKeyIdentifier extension instead of
	// issuerAndSerialNumber (the default, which every client reads). A certificate without the
	// extension is identified by issuer and serial number: OpenSSL matches only the extension.
	BySKI bool
}

// minRSABits is the smallest RSA key encrypted to.
const minRSABits = 2048

// recipientInfo encodes the RecipientInfo that gives cek to r, and its version (0 for a ktri by
// issuer and serial, 2 by SKI, 3 for a kari).
func (r Recipient) recipientInfo(cek []byte, random io.Reader) ([]byte, int, error) {
	if r.Cert == nil {
		return nil, 0, fmt.Errorf("%w: no certificate", ErrBadRecipient)
	}
	switch pub := r.Cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return nil, 0, fmt.Errorf("%w: RSA key of %d bits", ErrBadRecipient, pub.N.BitLen())
		}
		return r.keyTransRecipientInfo(pub, cek, random)
	case *ecdsa.PublicKey:
		ri, err := keyAgreeRecipientInfo(pub, r.rid(true), cek)
		return ri, 3, err
	}
	return nil, 0, fmt.Errorf("%w: %T key", ErrBadRecipient, r.Cert.PublicKey)
}

func (r Recipient) keyTransRecipientInfo(pub *rsa.PublicKey, cek []byte, random io.Reader) ([]byte, int, error) {
	var (
		ek  []byte
		alg []byte
		err error
	)
	switch r.KeyTransport {
	case RSAOAEPSHA256, RSAOAEPSHA1:
		p := oaepSHA256
		if r.KeyTransport == RSAOAEPSHA1 {
			p = oaepSHA1
		}
		ek, err = rsa.EncryptOAEPWithOptions(random, pub, cek, &rsa.OAEPOptions{Hash: p.hash, MGFHash: p.mgfHash})
		alg = p.algID()
	case RSAPKCS1v15:
		ek, err = rsa.EncryptPKCS1v15(random, pub, cek)
		alg = algID(oidRSAEncryption, nullBytes)
	default:
		return nil, 0, fmt.Errorf("%w: unknown key transport %d", ErrBadRecipient, r.KeyTransport)
	}
	if err != nil {
		return nil, 0, err
	}
	version := 0
	if r.useSKI() {
		version = 2
	}
	return seq(intBytes(int64(version)), r.rid(false), alg, octetString(ek)), version, nil
}

// rid is the recipient identifier: issuerAndSerialNumber, or the SKI as [0] IMPLICIT OCTET STRING
// (ktri) or [0] IMPLICIT RecipientKeyIdentifier (kari).
func (r Recipient) rid(kari bool) []byte {
	if !r.useSKI() {
		return issuerAndSerial(r.Cert)
	}
	ski := r.Cert.SubjectKeyId
	if kari {
		return tlv(classContext|flagConstructed|0, octetString(ski))
	}
	return tlv(classContext|0, ski)
}

func (r Recipient) useSKI() bool { return r.BySKI && len(r.Cert.SubjectKeyId) > 0 }

func issuerAndSerial(c *x509.Certificate) []byte {
	return seq(c.RawIssuer, bigIntBytes(c.SerialNumber))
}

// subjectKeyID is the certificate's subjectKeyIdentifier, or when it has none the SHA-1 of its
// public key bits (RFC 5280 4.2.1.2 method 1), as OpenSSL computes it.
func subjectKeyID(c *x509.Certificate) []byte {
	if len(c.SubjectKeyId) > 0 {
		return c.SubjectKeyId
	}
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:]
}

// ridMatches reports whether a recipient identifier (issuerAndSerialNumber, or an SKI in either
// form) names cert. It reads only public data.
func ridMatches(rid element, cert *x509.Certificate) bool {
	switch {
	case rid.is(tagSequence):
		kids, err := rid.children()
		if err != nil || len(kids) != 2 || !kids[1].is(tagInteger) {
			return false
		}
		var serial *big.Int
		if _, err := asn1.Unmarshal(kids[1].full, &serial); err != nil {
			return false
		}
		return bytes.Equal(kids[0].full, cert.RawIssuer) && serial.Cmp(cert.SerialNumber) == 0
	case rid.is(classContext | 0): // ktri: [0] IMPLICIT SubjectKeyIdentifier
		return len(rid.content) > 0 && bytes.Equal(rid.content, subjectKeyID(cert))
	case rid.is(classContext | flagConstructed | 0): // kari: [0] IMPLICIT RecipientKeyIdentifier
		kids, err := rid.children()
		if err != nil || len(kids) == 0 || kids[0].tag&^flagConstructed != tagOctetString {
			return false
		}
		ski, err := kids[0].octets(64)
		return err == nil && len(ski) > 0 && bytes.Equal(ski, subjectKeyID(cert))
	}
	return false
}
