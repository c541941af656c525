package cms

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"io"
)

// Decrypter decrypts messages encrypted to one certificate: EnvelopedData (AES-CBC) and
// AuthEnvelopedData (AES-GCM), recipients by issuer and serial number or by SKI, key transport RSA
// PKCS#1 v1.5 or RSA-OAEP (SHA-1/256/384/512, any MGF1 hash, a label), or ECDH key agreement.
type Decrypter struct {
	Cert *x509.Certificate
	// Key is Cert's private key: a crypto.Decrypter for RSA (*rsa.PrivateKey, or a hardware key that
	// implements rsa.PKCS1v15DecryptOptions.SessionKeyLen), *ecdsa.PrivateKey or *ecdh.PrivateKey
	// for EC.
	Key crypto.PrivateKey
	// MaxBytes bounds the input; DefaultMaxBytes when zero.
	MaxBytes int
	// Rand is for RSA blinding and implicit rejection; crypto/rand.Reader when nil.
	Rand io.Reader
}

// Decrypted is a decrypted message.
type Decrypted struct {
	Content []byte // the plaintext: for S/MIME, a MIME entity
	Cipher  Cipher // the content-encryption algorithm the sender chose
}

// Decrypt decrypts der (DER or BER). It returns ErrTooLarge over the size limit, ErrNoRecipient when
// no recipient names our certificate, and ErrDecrypt for everything else, whatever went wrong. It
// does not panic on any input, and makes at most one copy of the content.
func (d *Decrypter) Decrypt(der []byte) (*Decrypted, error) {
	return d.decrypt(der, false)
}

// DecryptInPlace is Decrypt that may overwrite der and return content that aliases it, saving a
// copy of the content. der must not be used afterwards, whatever the result.
func (d *Decrypter) DecryptInPlace(der []byte) (*Decrypted, error) {
	return d.decrypt(der, true)
}

func (d *Decrypter) decrypt(der []byte, inPlace bool) (out *Decrypted, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, ErrDecrypt
		}
	}()
	limit := d.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	if len(der) > limit {
		return nil, ErrTooLarge
	}
	env, ok := parseEnvelope(der, limit)
	if !ok {
		return nil, ErrDecrypt
	}
	rc, ok := findRecipient(env.recipients, d.Cert)
	if !ok {
		return nil, ErrNoRecipient
	}
	cek, err := d.contentKey(rc, ciphers[env.cipher].keySize)
	if err != nil {
		return nil, ErrDecrypt
	}
	content, ok := env.decrypt(cek, inPlace)
	if !ok {
		return nil, ErrDecrypt
	}
	return &Decrypted{Content: content, Cipher: env.cipher}, nil
}

// recipientCandidate is the RecipientInfo that named our certificate.
type recipientCandidate struct {
	ktri bool
	alg  element // ktri: keyEncryptionAlgorithm
	ek   []byte
	kari kariParts
}

// findRecipient returns the first RecipientInfo that names cert, reading only public identifiers.
func findRecipient(ris []element, cert *x509.Certificate) (recipientCandidate, bool) {
	match := func(rid element) bool { return ridMatches(rid, cert) }
	for _, ri := range ris {
		switch {
		case ri.is(tagSequence): // KeyTransRecipientInfo
			f, err := ri.children()
			if err != nil || len(f) != 4 || !match(f[1]) || f[3].tag&^flagConstructed != tagOctetString {
				continue
			}
			ek, err := f[3].octets(2048)
			if err != nil {
				continue
			}
			return recipientCandidate{ktri: true, alg: f[2], ek: ek}, true
		case ri.is(classContext | flagConstructed | 1): // KeyAgreeRecipientInfo
			parts, ek, ok := parseKari(ri, match)
			if ok {
				return recipientCandidate{ek: ek, kari: parts}, true
			}
		}
	}
	return recipientCandidate{}, false
}

// contentKey recovers the content key of n octets. Any failure of the key transport itself yields a
// random key instead (implicit rejection), so it surfaces only as a failed content decryption; the
// error is for a missing random source alone.
func (d *Decrypter) contentKey(rc recipientCandidate, n int) ([]byte, error) {
	random := d.Rand
	if random == nil {
		random = rand.Reader
	}
	fallback := make([]byte, n)
	if _, err := io.ReadFull(random, fallback); err != nil {
		return nil, err
	}
	var key []byte
	if rc.ktri {
		key = d.keyTransport(rc, n, random)
	} else if priv, ok := ecdhKey(d.Key); ok {
		key, _ = rc.kari.unwrap(priv, rc.ek)
	}
	if len(key) != n {
		return fallback, nil
	}
	return key, nil
}

// keyTransport decrypts a ktri's encrypted key with RSA, or returns nil.
func (d *Decrypter) keyTransport(rc recipientCandidate, n int, random io.Reader) []byte {
	dec, ok := d.Key.(crypto.Decrypter)
	if !ok {
		return nil
	}
	if _, isRSA := dec.Public().(*rsa.PublicKey); !isRSA {
		return nil
	}
	oid, params, ok := parseAlgID(rc.alg)
	if !ok {
		return nil
	}
	var opts crypto.DecrypterOpts
	switch {
	case oid.Equal(oidRSAEncryption):
		// Implicit rejection: a bad padding yields a random key of n octets, in constant time.
		opts = &rsa.PKCS1v15DecryptOptions{SessionKeyLen: n}
	case oid.Equal(oidRSAESOAEP):
		p, ok := parseOAEPParams(params)
		if !ok {
			return nil
		}
		opts = &rsa.OAEPOptions{Hash: p.hash, MGFHash: p.mgfHash, Label: p.label}
	default:
		return nil
	}
	key, err := dec.Decrypt(random, rc.ek, opts)
	if err != nil {
		return nil
	}
	return key
}
