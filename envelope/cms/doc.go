// Package cms is the gateway's Cryptographic Message Syntax (RFC 5652): SignedData (SHA-256, detached
// and opaque), EnvelopedData with AES-CBC and AuthEnvelopedData with AES-GCM (RFC 5083/5084), key
// transport by RSA-OAEP (SHA-256 with explicit MGF1 parameters, RFC 4055, or SHA-1) and RSA PKCS#1
// v1.5, and key agreement by ECDH (RFC 5753, dhSinglePass-stdDH-sha256kdf with AES key wrap, RFC 3394).
//
// Everything is written here on a depth-limited BER walker, none of it through
// github.com/smallstep/pkcs7: the library's output for AES-GCM and OAEP-SHA256 and its parsing of SKI
// and ECDH recipients do not interoperate, its CBC unpadding panics on crafted input, and its
// verification finds signers only by issuer and serial number and knows no RSASSA-PSS. Verification
// reads signers identified by issuerAndSerialNumber or subjectKeyIdentifier, with RSA PKCS#1 v1.5,
// RSASSA-PSS (RFC 4056; SHA-2 with MGF1 of the same hash) or ECDSA signatures.
//
// Every decryption failure after a recipient was found is the one error ErrDecrypt, whatever the cause
// (bad padding, bad tag, bad key transport, malformed structure), and RSA PKCS#1 v1.5 key transport
// uses implicit rejection, so a sender learns nothing from the answer (no padding oracle).
package cms

import "errors"

// Errors. Callers match them with errors.Is.
var (
	// ErrDecrypt is every failure to decrypt a message that names our certificate, and every
	// malformed encrypted message. Its text never varies.
	ErrDecrypt = errors.New("cms: the message cannot be decrypted")
	// ErrNoRecipient: the message is well formed but none of its recipients is our certificate
	// (learned from public identifiers only, before any key is used).
	ErrNoRecipient = errors.New("cms: the message is not encrypted to this certificate")
	// ErrMalformed: a signed message that is not well-formed CMS (truncated, bad BER, too deep).
	ErrMalformed = errors.New("cms: malformed signed message")
	// ErrBadSignature: the signature or the message digest does not match (tampered content, or a
	// signature by a key other than the certificate's).
	ErrBadSignature = errors.New("cms: signature does not verify")
	// ErrUntrusted: the signer's certificate does not chain to the given roots at the given time.
	ErrUntrusted = errors.New("cms: signer certificate is not trusted")
	// ErrUnsupported: a well-formed message using an algorithm or form this package refuses
	// (SHA-1 or MD5 digests, several signers, a signer without its certificate).
	ErrUnsupported = errors.New("cms: unsupported signed message")
	// ErrTooLarge: the input is over the size limit.
	ErrTooLarge = errors.New("cms: message over the size limit")
	// ErrBadRecipient: a recipient certificate cannot be encrypted to (key type, size or curve).
	ErrBadRecipient = errors.New("cms: cannot encrypt to this certificate")
)

// DefaultMaxBytes is the size limit on CMS input when the caller gives none: above the gateway's
// largest accepted message (50 MB) after base64 decoding, with room for signatures and recipients.
const DefaultMaxBytes = 80 << 20

// maxRecipientInfos bounds the recipients examined in one message.
const maxRecipientInfos = 256
