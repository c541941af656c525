package cms

import (
	"crypto/x509"
	"encoding/asn1"
)

// OIDSMIMECapabilities is the SMIMECapabilities signed attribute (RFC 8551 2.5.2) and certificate
// extension (RFC 4262): the same SEQUENCE OF SMIMECapability in both places.
var OIDSMIMECapabilities = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 15}

// ParseCapabilities reads a DER SMIMECapabilities value and returns the content-encryption
// algorithms it announces that this package knows, in the announcer's order of preference, and
// whether it announces RSAES-OAEP key transport. Other capabilities (digests, algorithms not offered
// here) are skipped.
func ParseCapabilities(der []byte) (ciphers []Cipher, oaep bool, err error) {
	var caps []struct {
		ID     asn1.ObjectIdentifier
		Params asn1.RawValue `asn1:"optional"`
	}
	rest, err := asn1.Unmarshal(der, &caps)
	if err != nil {
		return nil, false, err
	}
	if len(rest) != 0 {
		return nil, false, asn1.SyntaxError{Msg: "trailing data after SMIMECapabilities"}
	}
	ciphers = []Cipher{}
	for _, c := range caps {
		if ci, ok := cipherForOID(c.ID); ok {
			ciphers = append(ciphers, ci)
		}
		if c.ID.Equal(oidRSAESOAEP) {
			oaep = true
		}
	}
	return ciphers, oaep, nil
}

// CertificateCapabilities reads cert's SMIMECapabilities extension (RFC 4262) as ParseCapabilities
// does; ok is false when the certificate has no such extension or it does not parse.
func CertificateCapabilities(cert *x509.Certificate) (ciphers []Cipher, oaep, ok bool) {
	for _, e := range cert.Extensions {
		if e.Id.Equal(OIDSMIMECapabilities) {
			cs, oaep, err := ParseCapabilities(e.Value)
			return cs, oaep, err == nil
		}
	}
	return nil, false, false
}

// MarshalCapabilities encodes ciphers (and RSAES-OAEP when oaep) as a DER SMIMECapabilities value,
// for RFC 4262 certificate extensions and tests. Parameters are absent, as RFC 3565 and RFC 5084
// say for the AES algorithms.
func MarshalCapabilities(ciphers []Cipher, oaep bool) ([]byte, error) {
	type capability struct{ ID asn1.ObjectIdentifier }
	caps := make([]capability, 0, len(ciphers)+1)
	for _, c := range ciphers {
		if i, ok := lookupCipher(c); ok {
			caps = append(caps, capability{i.oid})
		}
	}
	if oaep {
		caps = append(caps, capability{oidRSAESOAEP})
	}
	return asn1.Marshal(caps)
}

func lookupCipher(c Cipher) (cipherInfo, bool) {
	i, ok := ciphers[c]
	return i, ok
}

// CipherByName returns the algorithm a String name ("AES-256-GCM") stands for.
func CipherByName(name string) (Cipher, bool) {
	for c, i := range ciphers {
		if i.name == name {
			return c, true
		}
	}
	return 0, false
}
