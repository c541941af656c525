package cms

import (
	"crypto/aes"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
)

// EncryptOptions say how and to whom a message is encrypted.
type EncryptOptions struct {
	// Cipher is AES256GCM (the zero value: AuthEnvelopedData) or AES256CBC (EnvelopedData); the
	// 128- and 192-bit variants are accepted too.
	Cipher Cipher
	// Recipients each receive the content key: the addressee and, optionally, an escrow certificate.
	Recipients []Recipient
	// Rand supplies the content key, nonce or IV and ephemeral randomness; crypto/rand.Reader when
	// nil. (Go's RSA and ECDH use their own secure source whatever is passed.)
	Rand io.Reader
}

// Encrypt writes to w a DER ContentInfo holding plaintext encrypted to the recipients: an
// AuthEnvelopedData for AES-GCM, an EnvelopedData for AES-CBC, content type id-data. plaintext is
// not modified; AES-GCM makes one copy of it, AES-CBC none.
func Encrypt(w io.Writer, plaintext []byte, opts EncryptOptions) error {
	return encrypt(w, plaintext, opts, false)
}

// EncryptInPlace is Encrypt that may overwrite buf with the ciphertext instead of copying it. Give
// buf 16 octets of spare capacity (cap(buf) >= len(buf)+16) for AES-GCM to work without a copy.
func EncryptInPlace(w io.Writer, buf []byte, opts EncryptOptions) error {
	return encrypt(w, buf, opts, true)
}

func encrypt(w io.Writer, plaintext []byte, opts EncryptOptions, inPlace bool) error {
	info, ok := ciphers[opts.Cipher]
	if !ok {
		return fmt.Errorf("cms: unknown cipher %d", opts.Cipher)
	}
	if len(opts.Recipients) == 0 {
		return errors.New("cms: no recipients")
	}
	random := opts.Rand
	if random == nil {
		random = rand.Reader
	}
	cek := make([]byte, info.keySize)
	if _, err := io.ReadFull(random, cek); err != nil {
		return err
	}
	ris, version, err := recipientInfos(opts.Recipients, cek, random)
	if err != nil {
		return err
	}
	if info.gcm {
		return writeAuthEnveloped(w, plaintext, cek, info.oid, ris, random, inPlace)
	}
	return writeEnveloped(w, plaintext, cek, info.oid, ris, version, random)
}

// recipientInfos encodes the RecipientInfos SET and the EnvelopedData version it implies (0 when
// every recipient is a version 0 ktri, else 2; RFC 5652 6.1).
func recipientInfos(rs []Recipient, cek []byte, random io.Reader) ([]byte, int, error) {
	var infos [][]byte
	version := 0
	for _, r := range rs {
		ri, v, err := r.recipientInfo(cek, random)
		if err != nil {
			return nil, 0, err
		}
		if v != 0 {
			version = 2
		}
		infos = append(infos, ri)
	}
	return setOf(infos...), version, nil
}

// writeAuthEnveloped writes AuthEnvelopedData (RFC 5083) with AES-GCM (RFC 5084): version 0, no
// authenticated attributes, a 12-octet nonce and a 16-octet tag in mac.
func writeAuthEnveloped(w io.Writer, plaintext, cek []byte, alg asn1.ObjectIdentifier, ris []byte, random io.Reader, inPlace bool) error {
	nonce := make([]byte, gcmNonceSize)
	if _, err := io.ReadFull(random, nonce); err != nil {
		return err
	}
	aead, err := newGCM(cek, gcmTagSize)
	if err != nil {
		return err
	}
	var dst []byte
	if inPlace {
		dst = plaintext[:0]
	} else {
		dst = make([]byte, 0, len(plaintext)+gcmTagSize)
	}
	sealed := aead.Seal(dst, nonce, plaintext, nil)
	ct, tag := sealed[:len(plaintext)], sealed[len(plaintext):]
	prefix := append(intBytes(0), ris...)
	writeCT := func(w io.Writer) error { _, err := w.Write(ct); return err }
	return writeEnvelope(w, oidAuthEnvelopedData, prefix, algID(alg, gcmParams(nonce)), len(ct), writeCT, octetString(tag))
}

// writeEnveloped writes EnvelopedData (RFC 5652 6) with AES-CBC (RFC 3565), streaming the
// ciphertext.
func writeEnveloped(w io.Writer, plaintext, cek []byte, alg asn1.ObjectIdentifier, ris []byte, version int, random io.Reader) error {
	iv := make([]byte, aes.BlockSize)
	if _, err := io.ReadFull(random, iv); err != nil {
		return err
	}
	prefix := append(intBytes(int64(version)), ris...)
	writeCT := func(w io.Writer) error { return cbcEncrypt(w, cek, iv, plaintext) }
	return writeEnvelope(w, oidEnvelopedData, prefix, algID(alg, octetString(iv)), cbcLen(len(plaintext)), writeCT, nil)
}

// writeEnvelope writes ContentInfo { ctype, [0] SEQUENCE { prefix, EncryptedContentInfo { id-data,
// alg, [0] IMPLICIT ciphertext }, suffix } } with definite lengths, the ciphertext (ctLen octets)
// streamed by writeCT.
func writeEnvelope(w io.Writer, ctype asn1.ObjectIdentifier, prefix, alg []byte, ctLen int, writeCT func(io.Writer) error, suffix []byte) error {
	ctHdr := derHeader(classContext|0, ctLen)
	dataOID := oidBytes(oidData)
	eciBody := len(dataOID) + len(alg) + len(ctHdr) + ctLen
	eciHdr := derHeader(tagSequence, eciBody)
	body := len(prefix) + len(eciHdr) + eciBody + len(suffix)
	hdr := derHeader(tagSequence, body)
	ex := derHeader(classContext|flagConstructed|0, len(hdr)+body)
	ctOID := oidBytes(ctype)
	ci := derHeader(tagSequence, len(ctOID)+len(ex)+len(hdr)+body)
	if err := writeAll(w, ci, ctOID, ex, hdr, prefix, eciHdr, dataOID, alg, ctHdr); err != nil {
		return err
	}
	if err := writeCT(w); err != nil {
		return err
	}
	return writeAll(w, suffix)
}
