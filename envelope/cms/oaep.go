package cms

import (
	"crypto"
	_ "crypto/sha1" // registers crypto.SHA1 for OAEP
	_ "crypto/sha512"
	"encoding/asn1"
)

// oaepParams are the RSAES-OAEP parameters (RFC 8017 A.2.1, RFC 4055 4.1).
type oaepParams struct {
	hash    crypto.Hash
	mgfHash crypto.Hash
	label   []byte
}

var (
	oaepSHA256 = oaepParams{hash: crypto.SHA256, mgfHash: crypto.SHA256}
	oaepSHA1   = oaepParams{hash: crypto.SHA1, mgfHash: crypto.SHA1}
)

// algID encodes id-RSAES-OAEP with its parameters. Fields equal to their DEFAULT (SHA-1, MGF1 with
// SHA-1, empty label) are omitted as DER requires; the SHA-2 identifiers carry NULL parameters, as in
// RFC 4055's sha256Identifier. OpenSSL fails on OAEP-SHA256 without the MGF1 field.
func (p oaepParams) algID() []byte {
	var fields [][]byte
	if p.hash != crypto.SHA1 {
		fields = append(fields, explicit(0, hashAlgID(p.hash)))
	}
	if p.mgfHash != crypto.SHA1 {
		fields = append(fields, explicit(1, algID(oidMGF1, hashAlgID(p.mgfHash))))
	}
	if len(p.label) > 0 {
		fields = append(fields, explicit(2, algID(oidPSpecified, octetString(p.label))))
	}
	return algID(oidRSAESOAEP, seq(fields...))
}

func hashAlgID(h crypto.Hash) []byte {
	switch h {
	case crypto.SHA256:
		return algID(oidSHA256, nullBytes)
	case crypto.SHA384:
		return algID(oidSHA384, nullBytes)
	case crypto.SHA512:
		return algID(oidSHA512, nullBytes)
	}
	return algID(oidSHA1, nullBytes)
}

// hashForOID maps a digest OID to a hash the package accepts in OAEP, MGF1 and the ECDH KDF.
func hashForOID(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	switch {
	case oid.Equal(oidSHA1):
		return crypto.SHA1, true
	case oid.Equal(oidSHA256):
		return crypto.SHA256, true
	case oid.Equal(oidSHA384):
		return crypto.SHA384, true
	case oid.Equal(oidSHA512):
		return crypto.SHA512, true
	}
	return 0, false
}

// parseOAEPParams reads RSAES-OAEP-params; params is the AlgorithmIdentifier's parameters element,
// or nil when absent (all defaults).
func parseOAEPParams(params *element) (oaepParams, bool) {
	p := oaepSHA1
	if params == nil || params.is(tagNull) {
		return p, true
	}
	if !params.is(tagSequence) {
		return p, false
	}
	fields, err := params.children()
	if err != nil {
		return p, false
	}
	for _, f := range fields {
		inner, err := only(f)
		if err != nil {
			return p, false
		}
		oid, sub, ok := parseAlgID(inner)
		if !ok {
			return p, false
		}
		switch f.tag {
		case classContext | flagConstructed | 0:
			if p.hash, ok = hashForOID(oid); !ok {
				return p, false
			}
		case classContext | flagConstructed | 1:
			if !oid.Equal(oidMGF1) || sub == nil {
				return p, false
			}
			mgfOID, _, ok := parseAlgID(*sub)
			if !ok {
				return p, false
			}
			if p.mgfHash, ok = hashForOID(mgfOID); !ok {
				return p, false
			}
		case classContext | flagConstructed | 2:
			if !oid.Equal(oidPSpecified) || sub == nil || sub.tag&^flagConstructed != tagOctetString {
				return p, false
			}
			if p.label, err = sub.octets(1024); err != nil {
				return p, false
			}
		default:
			return p, false
		}
	}
	return p, true
}

// parseAlgID reads an AlgorithmIdentifier: its OID and its parameters element (nil when absent).
func parseAlgID(e element) (asn1.ObjectIdentifier, *element, bool) {
	if !e.is(tagSequence) {
		return nil, nil, false
	}
	kids, err := e.children()
	if err != nil || len(kids) == 0 || len(kids) > 2 || !kids[0].is(tagOID) {
		return nil, nil, false
	}
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(kids[0].full, &oid); err != nil || len(rest) != 0 {
		return nil, nil, false
	}
	if len(kids) == 1 {
		return oid, nil, true
	}
	return oid, &kids[1], true
}
