package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"
)

// This file reads and checks SignedData itself (RFC 5652 5) rather than through the library, which
// finds signers only by issuerAndSerialNumber and knows no RSASSA-PSS: signers identified by
// subjectKeyIdentifier (`openssl cms -sign -keyid`) and RSASSA-PSS signatures (RFC 4056,
// `-keyopt rsa_padding_mode:pss`) are read here, as are PKCS#1 v1.5 and ECDSA.

var (
	oidRSASSAPSS       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
)

// signedData is a parsed SignedData.
type signedData struct {
	content  []byte // the encapsulated content; nil when detached
	certs    []*x509.Certificate
	signers  []signerInfo
	digestOK bool // set by verify
}

type signerInfo struct {
	issuer    []byte   // issuerAndSerialNumber: the issuer Name's DER
	serial    *big.Int // and the serial number; nil when identified by ski
	ski       []byte   // subjectKeyIdentifier
	digest    asn1.ObjectIdentifier
	attrsDER  []byte // the signed attributes as the DER SET OF that was signed; nil when absent
	attrs     map[string][]element
	sigAlg    asn1.ObjectIdentifier
	sigParams element // the signature algorithm's parameters; tag 0 when absent
	signature []byte
}

// parseSignedData reads a ContentInfo holding SignedData (already checked by checkSignedData).
func parseSignedData(der []byte, limit int) (*signedData, error) {
	ci, err := parseOne(der)
	if err != nil {
		return nil, ErrMalformed
	}
	kids, err := ci.children()
	if err != nil || len(kids) != 2 {
		return nil, ErrMalformed
	}
	sdEl, err := only(kids[1])
	if err != nil || !sdEl.is(tagSequence) {
		return nil, ErrMalformed
	}
	f, err := sdEl.children()
	if err != nil || len(f) < 4 || !f[0].is(tagInteger) || !f[1].is(tagSet) || !f[2].is(tagSequence) {
		return nil, ErrMalformed
	}
	sd := &signedData{}
	encap, err := f[2].children()
	if err != nil || len(encap) == 0 || len(encap) > 2 {
		return nil, ErrMalformed
	}
	if len(encap) == 2 {
		if !encap[1].is(classContext | flagConstructed | 0) {
			return nil, ErrMalformed
		}
		oct, err := only(encap[1])
		if err != nil || oct.tag&^flagConstructed != tagOctetString {
			return nil, ErrMalformed
		}
		if sd.content, err = oct.octets(limit); err != nil {
			return nil, ErrMalformed
		}
		if sd.content == nil {
			sd.content = []byte{}
		}
	}
	rest := f[3:]
	if len(rest) > 0 && rest[0].is(classContext|flagConstructed|0) {
		certs, err := rest[0].children()
		if err != nil {
			return nil, ErrMalformed
		}
		for _, c := range certs {
			if !c.is(tagSequence) {
				continue // other certificate formats (attribute certificates...): not used
			}
			cert, err := x509.ParseCertificate(c.full)
			if err != nil {
				return nil, fmt.Errorf("%w: a certificate does not parse", ErrMalformed)
			}
			sd.certs = append(sd.certs, cert)
		}
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0].is(classContext|flagConstructed|1) {
		rest = rest[1:] // CRLs: revocation is certs/validate's business
	}
	if len(rest) != 1 || !rest[0].is(tagSet) {
		return nil, ErrMalformed
	}
	sis, err := rest[0].children()
	if err != nil {
		return nil, ErrMalformed
	}
	for _, e := range sis {
		si, err := parseSignerInfo(e)
		if err != nil {
			return nil, err
		}
		sd.signers = append(sd.signers, si)
	}
	return sd, nil
}

func parseSignerInfo(e element) (signerInfo, error) {
	var si signerInfo
	f, err := e.children()
	if err != nil || !e.is(tagSequence) || len(f) < 5 || !f[0].is(tagInteger) {
		return si, ErrMalformed
	}
	switch {
	case f[1].is(tagSequence): // issuerAndSerialNumber
		ias, err := f[1].children()
		if err != nil || len(ias) != 2 || !ias[0].is(tagSequence) || !ias[1].is(tagInteger) {
			return si, ErrMalformed
		}
		si.issuer = ias[0].full
		si.serial = new(big.Int)
		if _, err := asn1.Unmarshal(ias[1].full, &si.serial); err != nil {
			return si, ErrMalformed
		}
	case f[1].is(classContext | 0): // [0] IMPLICIT SubjectKeyIdentifier
		si.ski = f[1].content
	default:
		return si, ErrMalformed
	}
	var ok bool
	if si.digest, _, ok = algorithm(f[2]); !ok {
		return si, ErrMalformed
	}
	i := 3
	if f[i].is(classContext | flagConstructed | 0) {
		if len(f[i].full) < 2 || f[i].full[1] == 0x80 {
			return si, fmt.Errorf("%w: signed attributes in indefinite-length BER", ErrMalformed)
		}
		si.attrsDER = append([]byte{tagSet}, f[i].full[1:]...)
		if si.attrs, err = parseAttributes(f[i]); err != nil {
			return si, err
		}
		i++
	}
	if len(f) < i+2 {
		return si, ErrMalformed
	}
	if si.sigAlg, si.sigParams, ok = algorithm(f[i]); !ok || !f[i+1].is(tagOctetString) {
		return si, ErrMalformed
	}
	si.signature = f[i+1].content
	return si, nil
}

// algorithm reads an AlgorithmIdentifier.
func algorithm(e element) (asn1.ObjectIdentifier, element, bool) {
	f, err := e.children()
	if err != nil || !e.is(tagSequence) || len(f) == 0 || len(f) > 2 || !f[0].is(tagOID) {
		return nil, element{}, false
	}
	var oid asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(f[0].full, &oid); err != nil {
		return nil, element{}, false
	}
	if len(f) == 2 {
		return oid, f[1], true
	}
	return oid, element{}, true
}

// parseAttributes maps each attribute's OID to its values. An attribute given twice is refused.
func parseAttributes(e element) (map[string][]element, error) {
	attrs, err := e.children()
	if err != nil {
		return nil, ErrMalformed
	}
	out := map[string][]element{}
	for _, a := range attrs {
		f, err := a.children()
		if err != nil || !a.is(tagSequence) || len(f) != 2 || !f[0].is(tagOID) || !f[1].is(tagSet) {
			return nil, ErrMalformed
		}
		var oid asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(f[0].full, &oid); err != nil {
			return nil, ErrMalformed
		}
		vals, err := f[1].children()
		if err != nil || len(vals) == 0 {
			return nil, ErrMalformed
		}
		if _, dup := out[oid.String()]; dup {
			return nil, fmt.Errorf("%w: attribute %v given twice", ErrMalformed, oid)
		}
		out[oid.String()] = vals
	}
	return out, nil
}

// attr unmarshals the single value of a signed attribute; false when it is absent or malformed.
func (si *signerInfo) attr(oid asn1.ObjectIdentifier, v any) bool {
	vals := si.attrs[oid.String()]
	if len(vals) != 1 {
		return false
	}
	rest, err := asn1.Unmarshal(vals[0].full, v)
	return err == nil && len(rest) == 0
}

// encryptionKeyPreference returns the certificate among certs that the SMIMEEncryptionKeyPreference
// attribute names with its issuerAndSerialNumber choice; nil when the attribute is absent, malformed,
// uses another choice or names a certificate the message does not carry.
func (si *signerInfo) encryptionKeyPreference(certs []*x509.Certificate) *x509.Certificate {
	vals := si.attrs[oidAttrEncKeyPref.String()]
	if len(vals) != 1 || !vals[0].is(classContext|flagConstructed|0) {
		return nil
	}
	ias, err := vals[0].children()
	if err != nil || len(ias) != 2 || !ias[0].is(tagSequence) || !ias[1].is(tagInteger) {
		return nil
	}
	serial := new(big.Int)
	if rest, err := asn1.Unmarshal(ias[1].full, &serial); err != nil || len(rest) != 0 {
		return nil
	}
	for _, c := range certs {
		if bytes.Equal(c.RawIssuer, ias[0].full) && c.SerialNumber.Cmp(serial) == 0 {
			return c
		}
	}
	return nil
}

// signerCert finds the signer's certificate among certs by issuer and serial number or by subject
// key identifier.
func (si *signerInfo) signerCert(certs []*x509.Certificate) *x509.Certificate {
	for _, c := range certs {
		if si.serial != nil && bytes.Equal(c.RawIssuer, si.issuer) && c.SerialNumber.Cmp(si.serial) == 0 {
			return c
		}
		if si.ski != nil && len(c.SubjectKeyId) > 0 && bytes.Equal(c.SubjectKeyId, si.ski) {
			return c
		}
	}
	return nil
}

// hashFor is the hash of a SHA-2 digest algorithm OID: what hashForOID knows, without SHA-1, which
// signatures are not accepted with.
func hashFor(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	h, ok := hashForOID(oid)
	return h, ok && h != crypto.SHA1
}

// verifySigner checks si's signature over content by cert: the message digest attribute and content
// type when attributes are present, then the signature with the algorithm si names.
func verifySigner(si *signerInfo, content []byte, cert *x509.Certificate) error {
	h, ok := hashFor(si.digest)
	if !ok {
		return fmt.Errorf("%w: digest %v", ErrUnsupported, si.digest)
	}
	signed := content
	if si.attrsDER != nil {
		var ct asn1.ObjectIdentifier
		if !si.attr(oidAttrContentType, &ct) || !ct.Equal(oidData) {
			return fmt.Errorf("%w: content-type attribute missing or not id-data", ErrBadSignature)
		}
		var md []byte
		if !si.attr(oidAttrMessageDigest, &md) {
			return fmt.Errorf("%w: message-digest attribute missing", ErrBadSignature)
		}
		d := h.New()
		d.Write(content)
		if subtle.ConstantTimeCompare(md, d.Sum(nil)) != 1 {
			return fmt.Errorf("%w: message digest mismatch", ErrBadSignature)
		}
		signed = si.attrsDER
	}
	return checkSignature(si, h, signed, cert)
}

// checkSignature verifies sig over msg: RSA PKCS#1 v1.5 (rsaEncryption or shaNNNWithRSAEncryption),
// RSASSA-PSS with SHA-2 and MGF1 of the same hash, or ECDSA.
func checkSignature(si *signerInfo, h crypto.Hash, msg []byte, cert *x509.Certificate) error {
	alg := si.sigAlg
	bad := func(err error) error { return fmt.Errorf("%w: %v", ErrBadSignature, err) }
	digest := func(h crypto.Hash) []byte { d := h.New(); d.Write(msg); return d.Sum(nil) }
	switch {
	case alg.Equal(oidRSAEncryption), alg.Equal(oidSHA256WithRSA), alg.Equal(oidSHA384WithRSA), alg.Equal(oidSHA512WithRSA):
		pub, ok := cert.PublicKey.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: an RSA signature by a non-RSA key", ErrBadSignature)
		}
		switch {
		case alg.Equal(oidSHA256WithRSA):
			h = crypto.SHA256
		case alg.Equal(oidSHA384WithRSA):
			h = crypto.SHA384
		case alg.Equal(oidSHA512WithRSA):
			h = crypto.SHA512
		}
		if err := rsa.VerifyPKCS1v15(pub, h, digest(h), si.signature); err != nil {
			return bad(err)
		}
		return nil
	case alg.Equal(oidRSASSAPSS):
		pub, ok := cert.PublicKey.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: an RSA signature by a non-RSA key", ErrBadSignature)
		}
		ph, salt, err := pssParams(si.sigParams)
		if err != nil {
			return err
		}
		if err := rsa.VerifyPSS(pub, ph, digest(ph), si.signature, &rsa.PSSOptions{SaltLength: salt, Hash: ph}); err != nil {
			return bad(err)
		}
		return nil
	case alg.Equal(oidECPublicKey), alg.Equal(oidECDSAWithSHA256), alg.Equal(oidECDSAWithSHA384), alg.Equal(oidECDSAWithSHA512):
		pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: an ECDSA signature by a non-EC key", ErrBadSignature)
		}
		switch {
		case alg.Equal(oidECDSAWithSHA256):
			h = crypto.SHA256
		case alg.Equal(oidECDSAWithSHA384):
			h = crypto.SHA384
		case alg.Equal(oidECDSAWithSHA512):
			h = crypto.SHA512
		}
		if !ecdsa.VerifyASN1(pub, digest(h), si.signature) {
			return fmt.Errorf("%w: ECDSA verification failed", ErrBadSignature)
		}
		return nil
	}
	return fmt.Errorf("%w: signature algorithm %v", ErrUnsupported, alg)
}

// pssParams reads RSASSA-PSS-params (RFC 4055 3.1): a SHA-2 hash, MGF1 with the same hash (the only
// combination Go verifies), a salt length, trailer field 1. The defaults (SHA-1) are refused.
func pssParams(e element) (crypto.Hash, int, error) {
	unsupported := func(what string) (crypto.Hash, int, error) {
		return 0, 0, fmt.Errorf("%w: RSASSA-PSS %s", ErrUnsupported, what)
	}
	if !e.is(tagSequence) {
		return unsupported("without parameters (SHA-1)")
	}
	f, err := e.children()
	if err != nil {
		return 0, 0, ErrMalformed
	}
	var h crypto.Hash
	mgfHash := crypto.Hash(0)
	salt, trailer := 20, 1
	for _, x := range f {
		inner, err := only(x)
		if err != nil {
			return 0, 0, ErrMalformed
		}
		switch x.tag {
		case classContext | flagConstructed | 0:
			oid, _, ok := algorithm(inner)
			if !ok {
				return 0, 0, ErrMalformed
			}
			if h, ok = hashFor(oid); !ok {
				return unsupported("hash " + oid.String())
			}
		case classContext | flagConstructed | 1:
			oid, params, ok := algorithm(inner)
			if !ok || !oid.Equal(oidMGF1) {
				return unsupported("mask generation other than MGF1")
			}
			hoid, _, ok := algorithm(params)
			if !ok {
				return 0, 0, ErrMalformed
			}
			if mgfHash, ok = hashFor(hoid); !ok {
				return unsupported("MGF1 hash " + hoid.String())
			}
		case classContext | flagConstructed | 2:
			if _, err := asn1.Unmarshal(inner.full, &salt); err != nil || salt < 0 {
				return 0, 0, ErrMalformed
			}
		case classContext | flagConstructed | 3:
			if _, err := asn1.Unmarshal(inner.full, &trailer); err != nil {
				return 0, 0, ErrMalformed
			}
		default:
			return 0, 0, ErrMalformed
		}
	}
	switch {
	case h == 0:
		return unsupported("with SHA-1")
	case mgfHash != h:
		return unsupported("with MGF1 over another hash than the message's")
	case trailer != 1:
		return unsupported("trailer field")
	}
	return h, salt, nil
}

// signingTime reads the signing-time attribute; zero when absent.
func (si *signerInfo) signingTime() time.Time {
	var t time.Time
	if si.attr(oidAttrSigningTime, &t) {
		return t
	}
	return time.Time{}
}
