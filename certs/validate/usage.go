package validate

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"slices"
)

// checkUsage applies RFC 8550 4.4: a keyUsage extension, when present, must allow the use, and an
// extended key usage extension, when present, must include emailProtection (or anyExtendedKeyUsage).
func checkUsage(c *x509.Certificate, u Usage) *Error {
	if len(c.ExtKeyUsage) > 0 || len(c.UnknownExtKeyUsage) > 0 {
		if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageEmailProtection) && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny) {
			return failure(WrongUsage, nil, "The certificate is not for e-mail protection (its extended key usage lacks emailProtection).")
		}
	}
	if c.KeyUsage == 0 {
		return nil // no keyUsage extension: unrestricted
	}
	switch u {
	case ForSigning:
		if c.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
			return failure(WrongUsage, nil, "The certificate's key may not be used for signatures (its key usage lacks digitalSignature).")
		}
	case ForEncryption:
		want, name := x509.KeyUsageKeyEncipherment, "keyEncipherment"
		switch c.PublicKey.(type) {
		case *ecdsa.PublicKey, *ecdh.PublicKey:
			want, name = x509.KeyUsageKeyAgreement, "keyAgreement"
		case *rsa.PublicKey:
		default:
			return failure(WrongUsage, nil, "The certificate's key type cannot be used for encryption.")
		}
		if c.KeyUsage&want == 0 {
			return failure(WrongUsage, nil, "The certificate's key may not be used for encryption (its key usage lacks %s).", name)
		}
	default:
		return failure(WrongUsage, nil, "No use was given for the certificate.")
	}
	return nil
}
