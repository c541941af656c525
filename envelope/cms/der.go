package cms

import (
	"bytes"
	"encoding/asn1"
	"math/big"
	"slices"
)

// derHeader returns the identifier and length octets of a definite-length DER value of n octets.
func derHeader(tag byte, n int) []byte {
	if n < 0x80 {
		return []byte{tag, byte(n)}
	}
	var l []byte
	for v := n; v > 0; v >>= 8 {
		l = append([]byte{byte(v)}, l...)
	}
	return append([]byte{tag, 0x80 | byte(len(l))}, l...)
}

// tlv encodes parts, concatenated, as the contents of one DER value with identifier tag.
func tlv(tag byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := derHeader(tag, n)
	out = slices.Grow(out, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// seq encodes a SEQUENCE of already encoded elements.
func seq(parts ...[]byte) []byte { return tlv(tagSequence, parts...) }

// setOf encodes a SET OF with its elements sorted by encoding, as DER requires.
func setOf(elems ...[]byte) []byte {
	sorted := slices.Clone(elems)
	slices.SortFunc(sorted, bytes.Compare)
	return tlv(tagSet, sorted...)
}

// octetString encodes a primitive OCTET STRING.
func octetString(b []byte) []byte { return tlv(tagOctetString, b) }

// oidBytes encodes an OBJECT IDENTIFIER.
func oidBytes(oid asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(oid)
	if err != nil {
		panic("cms: unencodable OID " + oid.String()) // only the package's own constants reach here
	}
	return b
}

// intBytes encodes a small non-negative INTEGER.
func intBytes(n int64) []byte { return bigIntBytes(big.NewInt(n)) }

// bigIntBytes encodes an INTEGER.
func bigIntBytes(n *big.Int) []byte {
	b, err := asn1.Marshal(n)
	if err != nil {
		panic("cms: unencodable integer") // asn1.Marshal fails only for nil
	}
	return b
}

// nullBytes is the encoding of NULL.
var nullBytes = []byte{tagNull, 0}

// algID encodes an AlgorithmIdentifier; params may be nil for absent parameters.
func algID(oid asn1.ObjectIdentifier, params []byte) []byte {
	return seq(oidBytes(oid), params)
}

// explicit wraps an encoding in a context-specific constructed tag [n].
func explicit(n byte, inner ...[]byte) []byte {
	return tlv(classContext|flagConstructed|n, inner...)
}
