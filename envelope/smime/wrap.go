package smime

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"io"

	"cafgate/envelope/cms"
)

// The fixed header blocks of the parts this package writes (RFC 8551 3.3-3.5).
const (
	sigPartHeader = "Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"smime.p7s\"\r\n" +
		"Content-Description: S/MIME Cryptographic Signature\r\n\r\n"
	p7mTrailer = "; name=\"smime.p7m\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"smime.p7m\"\r\n" +
		"Content-Description: S/MIME Cryptographic Message\r\n\r\n"
	signedDataType        = "Content-Type: application/pkcs7-mime; smime-type=signed-data"
	envelopedDataType     = "Content-Type: application/pkcs7-mime; smime-type=enveloped-data"
	authEnvelopedDataType = "Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data"
	preamble              = "This is a cryptographically signed message in MIME format.\r\n\r\n"
)

// SignDetached writes to w a multipart/signed entity (header fields, blank line, body; protocol
// application/pkcs7-signature, micalg sha-256) whose first part is entity, a MIME entity (header
// and body) in canonical CRLF form (see Canonical), signed byte for byte.
func SignDetached(w io.Writer, entity []byte, s *cms.Signer) error {
	bw := bufio.NewWriter(w)
	if err := signDetached(bw, s, [][]byte{entity}); err != nil {
		return err
	}
	return bw.Flush()
}

// SignOpaque writes to w an application/pkcs7-mime; smime-type=signed-data entity encapsulating
// entity.
func SignOpaque(w io.Writer, entity []byte, s *cms.Signer) error {
	bw := bufio.NewWriter(w)
	if _, err := io.WriteString(bw, signedDataType+p7mTrailer); err != nil {
		return err
	}
	b64 := newBase64Body(bw)
	if err := s.SignOpaque(b64, entity); err != nil {
		return err
	}
	if err := b64.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// Encrypt writes to w an application/pkcs7-mime entity (smime-type authEnveloped-data for AES-GCM,
// enveloped-data for AES-CBC) holding entity encrypted as opts say. entity is not modified.
func Encrypt(w io.Writer, entity []byte, opts cms.EncryptOptions) error {
	return encryptEntity(w, entity, opts, false)
}

// EncryptInPlace is Encrypt that may overwrite entity with ciphertext (give it 16 octets of spare
// capacity) instead of copying it.
func EncryptInPlace(w io.Writer, entity []byte, opts cms.EncryptOptions) error {
	return encryptEntity(w, entity, opts, true)
}

func encryptEntity(w io.Writer, entity []byte, opts cms.EncryptOptions, inPlace bool) error {
	bw := bufio.NewWriter(w)
	typ := envelopedDataType
	if opts.Cipher.IsGCM() {
		typ = authEnvelopedDataType
	}
	if _, err := io.WriteString(bw, typ+p7mTrailer); err != nil {
		return err
	}
	b64 := newBase64Body(bw)
	encrypt := cms.Encrypt
	if inPlace {
		encrypt = cms.EncryptInPlace
	}
	if err := encrypt(b64, entity, opts); err != nil {
		return err
	}
	if err := b64.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// partsReader reads the concatenation of its parts. Its WriteTo hands each part to the writer as it
// is, so io.Copy into the signer's hash needs no buffer (io.MultiReader's took 32 KiB per signature).
type partsReader struct{ parts [][]byte }

func (p *partsReader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for len(p.parts) > 0 {
		m, err := w.Write(p.parts[0])
		n += int64(m)
		p.parts[0] = p.parts[0][m:]
		if err != nil {
			return n, err
		}
		p.parts = p.parts[1:]
	}
	return n, nil
}

func (p *partsReader) Read(b []byte) (int, error) {
	for len(p.parts) > 0 && len(p.parts[0]) == 0 {
		p.parts = p.parts[1:]
	}
	if len(p.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.parts[0])
	p.parts[0] = p.parts[0][n:]
	return n, nil
}

// signDetached writes the multipart/signed entity over the concatenation of parts.
func signDetached(w io.Writer, s *cms.Signer, parts [][]byte) error {
	sig, err := s.SignDetached(&partsReader{parts: append([][]byte(nil), parts...)})
	if err != nil {
		return err
	}
	boundary, err := newBoundary()
	if err != nil {
		return err
	}
	head := "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256;\r\n" +
		" boundary=\"" + boundary + "\"\r\n\r\n" + preamble + "--" + boundary + "\r\n"
	if _, err := io.WriteString(w, head); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	if _, err := io.WriteString(w, "\r\n--"+boundary+"\r\n"+sigPartHeader); err != nil {
		return err
	}
	b64 := newBase64Body(w)
	if _, err := b64.Write(sig); err != nil {
		return err
	}
	if err := b64.Close(); err != nil {
		return err
	}
	_, err = io.WriteString(w, "\r\n--"+boundary+"--\r\n")
	return err
}

// signedOverhead bounds what signDetached adds around the parts, for a signature of sigLen octets.
func signedOverhead(sigLen int) int {
	return 512 + len(preamble) + len(sigPartHeader) + base64Len(sigLen)
}

// newBoundary returns a random boundary for a multipart entity. It holds 120 random bits drawn after
// the parts were written, so their author cannot have put it in them, and a chance occurrence
// in a part of n bytes has a probability below n/2^120: the parts are not searched for it (a search
// was a pass over every byte of every sealed copy).
func newBoundary() (string, error) {
	var r [15]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return "cafgate-" + hex.EncodeToString(r[:]), nil
}
