package cms

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
)

// ECDH key agreement (RFC 5753 3.1): an ephemeral key on the recipient's curve, the X9.63 KDF with
// SHA-256 over the shared secret and ECC-CMS-SharedInfo, and AES-256 key wrap of the content key.

const kekBytes = 32 // AES-256 key wrap

// keyAgreeRecipientInfo encodes a [1] KeyAgreeRecipientInfo that gives cek to pub, naming the
// recipient by rid.
func keyAgreeRecipientInfo(pub *ecdsa.PublicKey, rid, cek []byte) ([]byte, error) {
	recipient, err := pub.ECDH()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRecipient, err)
	}
	if pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384() && pub.Curve != elliptic.P521() {
		return nil, fmt.Errorf("%w: curve %s", ErrBadRecipient, pub.Curve.Params().Name)
	}
	eph, err := recipient.Curve().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	z, err := eph.ECDH(recipient)
	if err != nil {
		return nil, err
	}
	kek := x963KDF(crypto.SHA256, z, sharedInfo(oidAES256Wrap, nil, kekBytes), kekBytes)
	ek, err := keyWrap(kek, cek)
	if err != nil {
		return nil, err
	}
	// originatorKey [1] IMPLICIT OriginatorPublicKey; id-ecPublicKey parameters absent (RFC 5753
	// 3.1.1: the recipient's curve).
	origKey := tlv(classContext|flagConstructed|1, algID(oidECPublicKey, nil), bitString(eph.PublicKey().Bytes()))
	kea := algID(oidECDHSHA256KDF, algID(oidAES256Wrap, nil))
	reks := seq(seq(rid, octetString(ek)))
	return tlv(classContext|flagConstructed|1, intBytes(3), explicit(0, origKey), kea, reks), nil
}

// sharedInfo encodes ECC-CMS-SharedInfo (RFC 5753 7.2) for a key-wrap algorithm (parameters
// absent), an optional user keying material, and a KEK of kekLen octets.
func sharedInfo(wrap asn1.ObjectIdentifier, ukm []byte, kekLen int) []byte {
	var bits [4]byte
	binary.BigEndian.PutUint32(bits[:], uint32(kekLen*8))
	fields := [][]byte{algID(wrap, nil)}
	if ukm != nil {
		fields = append(fields, explicit(0, octetString(ukm)))
	}
	fields = append(fields, explicit(2, octetString(bits[:])))
	return seq(fields...)
}

// x963KDF is the ANSI X9.63 key derivation function (SEC 1 3.6.1).
func x963KDF(h crypto.Hash, z, info []byte, n int) []byte {
	var out []byte
	var counter [4]byte
	for i := uint32(1); len(out) < n; i++ {
		d := h.New()
		d.Write(z)
		binary.BigEndian.PutUint32(counter[:], i)
		d.Write(counter[:])
		d.Write(info)
		out = d.Sum(out)
	}
	return out[:n]
}

// bitString encodes a BIT STRING with no unused bits.
func bitString(b []byte) []byte { return tlv(tagBitString, []byte{0}, b) }

// kariParts are the fields of a KeyAgreeRecipientInfo needed to recover the key, once a recipient
// encrypted key in it matched our certificate.
type kariParts struct {
	originator []byte // the ephemeral public point
	ukm        []byte // nil when absent
	kdf        crypto.Hash
	wrap       asn1.ObjectIdentifier
	wrapLen    int
}

// parseKari reads a [1] KeyAgreeRecipientInfo and returns its parts and the encrypted key meant for
// cert, ok false when it names another recipient or is malformed.
func parseKari(e element, match func(rid element) bool) (kariParts, []byte, bool) {
	var p kariParts
	f, err := e.children()
	if err != nil || len(f) < 4 || len(f) > 5 || !f[1].is(classContext|flagConstructed|0) {
		return p, nil, false
	}
	if p.originator, err = originatorPoint(f[1]); err != nil {
		return p, nil, false
	}
	rest := f[2:]
	if rest[0].is(classContext | flagConstructed | 1) {
		ukm, err := only(rest[0])
		if err != nil || ukm.tag&^flagConstructed != tagOctetString {
			return p, nil, false
		}
		if p.ukm, err = ukm.octets(1024); err != nil {
			return p, nil, false
		}
		rest = rest[1:]
	}
	if len(rest) != 2 || !p.parseKeyEncryptionAlg(rest[0]) {
		return p, nil, false
	}
	reks, err := rest[1].children()
	if err != nil || len(reks) > maxRecipientInfos {
		return p, nil, false
	}
	for _, rek := range reks {
		kids, err := rek.children()
		if err != nil || len(kids) != 2 || !match(kids[0]) || kids[1].tag&^flagConstructed != tagOctetString {
			continue
		}
		ek, err := kids[1].octets(1024)
		if err != nil {
			return p, nil, false
		}
		return p, ek, true
	}
	return p, nil, false
}

// parseKeyEncryptionAlg reads dhSinglePass-stdDH-shaXkdf-scheme with its key-wrap parameters.
func (p *kariParts) parseKeyEncryptionAlg(e element) bool {
	oid, params, ok := parseAlgID(e)
	if !ok || params == nil {
		return false
	}
	switch {
	case oid.Equal(oidECDHSHA1KDF):
		p.kdf = crypto.SHA1
	case oid.Equal(oidECDHSHA256KDF):
		p.kdf = crypto.SHA256
	case oid.Equal(oidECDHSHA384KDF):
		p.kdf = crypto.SHA384
	case oid.Equal(oidECDHSHA512KDF):
		p.kdf = crypto.SHA512
	default:
		return false
	}
	wrap, _, ok := parseAlgID(*params)
	if !ok {
		return false
	}
	switch {
	case wrap.Equal(oidAES128Wrap):
		p.wrapLen = 16
	case wrap.Equal(oidAES192Wrap):
		p.wrapLen = 24
	case wrap.Equal(oidAES256Wrap):
		p.wrapLen = 32
	default:
		return false
	}
	p.wrap = wrap
	return true
}

// originatorPoint reads originator [0] EXPLICIT OriginatorIdentifierOrKey, which must be the
// originatorKey form, and returns the public point.
func originatorPoint(e element) ([]byte, error) {
	ok, err := only(e)
	if err != nil || !ok.is(classContext|flagConstructed|1) {
		return nil, errBER
	}
	kids, err := ok.children()
	if err != nil || len(kids) != 2 || !kids[1].is(tagBitString) || len(kids[1].content) < 2 || kids[1].content[0] != 0 {
		return nil, errBER
	}
	return kids[1].content[1:], nil
}

// unwrap recovers the content key with our EC private key.
func (p kariParts) unwrap(priv *ecdh.PrivateKey, ek []byte) ([]byte, error) {
	pub, err := priv.Curve().NewPublicKey(p.originator)
	if err != nil {
		return nil, err
	}
	z, err := priv.ECDH(pub)
	if err != nil {
		return nil, err
	}
	kek := x963KDF(p.kdf, z, sharedInfo(p.wrap, p.ukm, p.wrapLen), p.wrapLen)
	return keyUnwrap(kek, ek)
}

// ecdhKey returns our private key as an ECDH key, when it is one.
func ecdhKey(key crypto.PrivateKey) (*ecdh.PrivateKey, bool) {
	switch k := key.(type) {
	case *ecdh.PrivateKey:
		return k, true
	case *ecdsa.PrivateKey:
		e, err := k.ECDH()
		return e, err == nil
	}
	return nil, false
}
