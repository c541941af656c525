package cms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/asn1"
	"io"
)

// Cipher is a content-encryption algorithm.
type Cipher int

// The content-encryption algorithms. Encryption offers AES256GCM (AuthEnvelopedData) and AES256CBC
// (EnvelopedData); decryption also accepts the 128- and 192-bit variants that mail clients send.
const (
	AES256GCM Cipher = iota // AuthEnvelopedData, RFC 5083/5084: the default, as RFC 8551 requires
	AES256CBC               // EnvelopedData, RFC 3565: only where a recipient lacks GCM (EFAIL-prone)
	AES128GCM
	AES192GCM
	AES128CBC
	AES192CBC
)

type cipherInfo struct {
	name    string
	oid     asn1.ObjectIdentifier
	keySize int
	gcm     bool
}

var ciphers = map[Cipher]cipherInfo{
	AES256GCM: {"AES-256-GCM", oidAES256GCM, 32, true},
	AES256CBC: {"AES-256-CBC", oidAES256CBC, 32, false},
	AES128GCM: {"AES-128-GCM", oidAES128GCM, 16, true},
	AES192GCM: {"AES-192-GCM", oidAES192GCM, 24, true},
	AES128CBC: {"AES-128-CBC", oidAES128CBC, 16, false},
	AES192CBC: {"AES-192-CBC", oidAES192CBC, 24, false},
}

// String names the algorithm, for logs and the ledger ("AES-256-GCM").
func (c Cipher) String() string {
	if i, ok := ciphers[c]; ok {
		return i.name
	}
	return "unknown cipher"
}

// IsGCM reports whether the algorithm is AES-GCM (carried in AuthEnvelopedData).
func (c Cipher) IsGCM() bool { return ciphers[c].gcm }

func cipherForOID(oid asn1.ObjectIdentifier) (Cipher, bool) {
	for c, i := range ciphers {
		if i.oid.Equal(oid) {
			return c, true
		}
	}
	return 0, false
}

const (
	gcmNonceSize = 12
	gcmTagSize   = 16 // written as aes-ICVlen; RFC 5084's default is 12
	cbcChunk     = 64 << 10
)

// gcmParams is GCMParameters (RFC 5084 3.2) with a 12-octet nonce and a 16-octet tag.
func gcmParams(nonce []byte) []byte {
	return seq(octetString(nonce), intBytes(gcmTagSize))
}

// cbcEncrypt writes the AES-CBC encryption of plaintext with PKCS#7 padding to w, a chunk at a time,
// without copying plaintext.
func cbcEncrypt(w io.Writer, key, iv, plaintext []byte) error {
	block, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	enc := cipher.NewCBCEncrypter(block, iv)
	buf := make([]byte, cbcChunk)
	full := len(plaintext) - len(plaintext)%aes.BlockSize
	for off := 0; off < full; off += cbcChunk {
		n := min(cbcChunk, full-off)
		enc.CryptBlocks(buf[:n], plaintext[off:off+n])
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
	}
	last := pad(plaintext[full:], aes.BlockSize)
	enc.CryptBlocks(last, last)
	_, err = w.Write(last)
	return err
}

// cbcLen is the length of the CBC ciphertext of n octets.
func cbcLen(n int) int { return n - n%aes.BlockSize + aes.BlockSize }

// pad returns tail (shorter than a block) with PKCS#7 padding, in a new block.
func pad(tail []byte, block int) []byte {
	out := make([]byte, block)
	copy(out, tail)
	p := byte(block - len(tail))
	for i := len(tail); i < block; i++ {
		out[i] = p
	}
	return out
}

// cbcDecrypt decrypts ciphertext into a new buffer and removes the padding. ok is false for any
// failure; the padding check runs in constant time.
func cbcDecrypt(key, iv, ciphertext []byte) (plaintext []byte, ok bool) {
	block, err := aes.NewCipher(key)
	if err != nil || len(iv) != aes.BlockSize || len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
		return nil, false
	}
	out := make([]byte, len(ciphertext))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, ciphertext)
	return unpad(out, aes.BlockSize)
}

// cbcDecryptInPlace is cbcDecrypt writing the plaintext over the ciphertext.
func cbcDecryptInPlace(key, iv, ciphertext []byte) ([]byte, bool) {
	block, err := aes.NewCipher(key)
	if err != nil || len(iv) != aes.BlockSize || len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
		return nil, false
	}
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(ciphertext, ciphertext)
	return unpad(ciphertext, aes.BlockSize)
}

// unpad removes PKCS#7 padding in constant time with respect to the padding's content. It never
// panics: b must be a non-empty multiple of block (checked), block at most 255.
func unpad(b []byte, block int) ([]byte, bool) {
	if len(b) == 0 || len(b)%block != 0 || block > 255 {
		return nil, false
	}
	p := int(b[len(b)-1])
	good := subtle.ConstantTimeLessOrEq(1, p) & subtle.ConstantTimeLessOrEq(p, block)
	last := b[len(b)-block:]
	for i := 0; i < block; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i+1, p) // the i-th octet from the end is padding
		match := subtle.ConstantTimeByteEq(last[block-1-i], byte(p))
		good &= subtle.ConstantTimeSelect(inPad, match, 1)
	}
	n := subtle.ConstantTimeSelect(good, len(b)-p, len(b))
	return b[:n], good == 1
}

// newGCM returns AES-GCM with the given nonce and tag sizes (RFC 5084 allows tags of 12 to 16).
func newGCM(key []byte, tagSize int) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithTagSize(block, tagSize)
}
