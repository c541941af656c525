package cms

import (
	"crypto/x509"
	"encoding/asn1"
)

// OIDSMIMECapabilities is the SMIMECapabilities signed attribute (RFC 8551 2.5.2) and certificate
// extension (RFC 4262): the same SEQUENCE OF SMIMECapability in both places.
var OIDSMIMECapabilities = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 15}

// ParseCapabilities reads a DER SMIMECapabilities value and returns the content-encryption
// algorithms it announces that this package knows, in the announcer's order of preference. Unknown
// capabilities (key transports, digests, algorithms not offered here) are skipped.
func ParseCapabilities(der []byte) ([]Cipher, error) {
	var caps []struct {
		ID     asn1.ObjectIdentifier
		Params asn1.RawValue `asn1:"optional"`
	}
	rest, err := asn1.Unmarshal(der, &caps)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, asn1.SyntaxError{Msg: "trailing data after SMIMECapabilities"}
	}
	out := []Cipher{}
	for _, c := range caps {
		if ci, ok := cipherForOID(c.ID); ok {
			out = append(out, ci)
		}
	}
	return out, nil
}

// CertificateCapabilities returns the content-encryption algorithms of cert's SMIMECapabilities
// extension (RFC 4262); ok is false when the certificate has no such extension or it does not parse.
func CertificateCapabilities(cert *x509.Certificate) (ciphers []Cipher, ok bool) {
	for _, e := range cert.Extensions {
		if e.Id.Equal(OIDSMIMECapabilities) {
			cs, err := ParseCapabilities(e.Value)
			return cs, err == nil
		}
	}
	return nil, false
}

// MarshalCapabilities encodes ciphers as a DER SMIMECapabilities value (for the RFC 4262 extension
// of certificates the development CA issues, and tests). Parameters are absent, as RFC 3565 and
// RFC 5084 say for the AES algorithms.
func MarshalCapabilities(ciphers []Cipher) ([]byte, error) {
	type capability struct{ ID asn1.ObjectIdentifier }
	caps := make([]capability, 0, len(ciphers))
	for _, c := range ciphers {
		if i, ok := lookupCipher(c); ok {
			caps = append(caps, capability{i.oid})
		}
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
