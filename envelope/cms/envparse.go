package cms

import (
	"crypto/aes"
	"math/big"
)

// envelope is a parsed EnvelopedData or AuthEnvelopedData. Slices point into the input.
type envelope struct {
	auth       bool
	recipients []element
	cipher     Cipher
	iv         []byte // CBC IV or GCM nonce
	tagSize    int    // GCM
	ciphertext []byte
	aad        []byte // GCM: the DER of authAttrs as a SET, or nil
	mac        []byte // GCM tag
}

// parseEnvelope reads ContentInfo { envelopedData | authEnvelopedData, [0] ... }. limit bounds the
// encrypted content. ok is false for anything malformed or unsupported.
func parseEnvelope(der []byte, limit int) (*envelope, bool) {
	ci, err := parseOne(der)
	if err != nil || !ci.is(tagSequence) {
		return nil, false
	}
	kids, err := ci.children()
	if err != nil || len(kids) != 2 || !kids[1].is(classContext|flagConstructed|0) {
		return nil, false
	}
	env := &envelope{}
	switch {
	case oidIs(kids[0], oidEnvelopedData):
	case oidIs(kids[0], oidAuthEnvelopedData):
		env.auth = true
	default:
		return nil, false
	}
	body, err := only(kids[1])
	if err != nil || !body.is(tagSequence) {
		return nil, false
	}
	f, err := body.children()
	if err != nil || len(f) < 3 || !f[0].is(tagInteger) {
		return nil, false
	}
	f = f[1:]
	if f[0].is(classContext | flagConstructed | 0) { // originatorInfo: certificates we do not need
		f = f[1:]
	}
	if len(f) < 2 || !f[0].is(tagSet) {
		return nil, false
	}
	if env.recipients, err = f[0].children(); err != nil || len(env.recipients) > maxRecipientInfos {
		return nil, false
	}
	if !env.parseContentInfo(f[1], limit) {
		return nil, false
	}
	return env, env.parseTrailer(f[2:])
}

// parseContentInfo reads EncryptedContentInfo: id-data, the algorithm with its parameters, and the
// [0] IMPLICIT encrypted content (primitive, or constructed in segments).
func (env *envelope) parseContentInfo(e element, limit int) bool {
	f, err := e.children()
	if err != nil || !e.is(tagSequence) || len(f) != 3 || !oidIs(f[0], oidData) {
		return false
	}
	oid, params, ok := parseAlgID(f[1])
	if !ok || params == nil {
		return false
	}
	if env.cipher, ok = cipherForOID(oid); !ok || env.cipher.IsGCM() != env.auth {
		return false // GCM only in AuthEnvelopedData, CBC only in EnvelopedData
	}
	if f[2].tag&^flagConstructed != classContext|0 {
		return false
	}
	if env.ciphertext, err = f[2].octets(limit); err != nil {
		return false
	}
	if env.auth {
		return env.parseGCMParams(*params)
	}
	if params.tag&^flagConstructed != tagOctetString {
		return false
	}
	env.iv, err = params.octets(aes.BlockSize)
	return err == nil && len(env.iv) == aes.BlockSize
}

// parseGCMParams reads GCMParameters { aes-nonce OCTET STRING, aes-ICVlen INTEGER DEFAULT 12 }.
func (env *envelope) parseGCMParams(e element) bool {
	f, err := e.children()
	if err != nil || !e.is(tagSequence) || len(f) < 1 || len(f) > 2 || f[0].tag&^flagConstructed != tagOctetString {
		return false
	}
	if env.iv, err = f[0].octets(64); err != nil || len(env.iv) != gcmNonceSize {
		return false
	}
	env.tagSize = 12
	if len(f) == 2 {
		if !f[1].is(tagInteger) || len(f[1].content) != 1 {
			return false
		}
		env.tagSize = int(new(big.Int).SetBytes(f[1].content).Int64())
	}
	return env.tagSize >= 12 && env.tagSize <= 16
}

// parseTrailer reads what follows EncryptedContentInfo: for AuthEnvelopedData optional authAttrs
// [1], the mac, optional unauthAttrs [2]; for EnvelopedData optional unprotectedAttrs [1].
func (env *envelope) parseTrailer(f []element) bool {
	if !env.auth {
		return len(f) == 0 || (len(f) == 1 && f[0].is(classContext|flagConstructed|1))
	}
	if len(f) > 0 && f[0].is(classContext|flagConstructed|1) {
		env.aad = append([]byte{tagSet}, f[0].full[1:]...) // authenticated as a DER SET OF (RFC 5083 2.2)
		f = f[1:]
	}
	if len(f) == 0 || f[0].tag&^flagConstructed != tagOctetString {
		return false
	}
	mac, err := f[0].octets(64)
	if err != nil || len(mac) != env.tagSize {
		return false
	}
	env.mac = mac
	f = f[1:]
	return len(f) == 0 || (len(f) == 1 && f[0].is(classContext|flagConstructed|2))
}

// decrypt decrypts and authenticates (GCM) or unpads (CBC) the content with cek. In place, the
// ciphertext's own storage (a slice of the input, or the copy that joined its segments) receives
// the plaintext, and the tag is moved to just after it.
func (env *envelope) decrypt(cek []byte, inPlace bool) ([]byte, bool) {
	ct := env.ciphertext
	if !env.auth {
		if inPlace {
			return cbcDecryptInPlace(cek, env.iv, ct)
		}
		return cbcDecrypt(cek, env.iv, ct)
	}
	aead, err := newGCM(cek, env.tagSize)
	if err != nil {
		return nil, false
	}
	var buf []byte
	if inPlace && cap(ct)-len(ct) >= len(env.mac) {
		tag := append([]byte(nil), env.mac...) // the mac may lie where it is about to be written
		buf = append(ct, tag...)               // within capacity: into the input, after the ciphertext
	} else {
		buf = make([]byte, 0, len(ct)+len(env.mac))
		buf = append(append(buf, ct...), env.mac...)
	}
	plain, err := aead.Open(buf[:0], env.iv, buf, env.aad)
	return plain, err == nil
}
