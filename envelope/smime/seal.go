package smime

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"

	"github.com/emersion/go-message/textproto"

	"cafgate/envelope/cms"
)

// SealOptions say how a message is protected: signed, encrypted, or signed then encrypted.
type SealOptions struct {
	// Signer signs the message (as the gateway); nil for no signature.
	Signer *cms.Signer
	// Opaque signs as application/pkcs7-mime; smime-type=signed-data instead of multipart/signed.
	Opaque bool
	// Encrypt encrypts (after signing) to its recipients; nil for a message signed only.
	Encrypt *cms.EncryptOptions
}

// Seal reads a complete message (RFC 5322 header and MIME body) and writes it protected: its
// Content-* header fields and body become the signed and/or encrypted MIME entity; every other header
// field (From, To, Subject, Date, Message-ID, ...) stays outside, followed by MIME-Version and the
// S/MIME entity's own fields. Line endings are made CRLF first. msg is never modified; memory use is
// about one copy of msg (two if msg is not already CRLF) plus the output written to w.
func Seal(w io.Writer, msg []byte, opts SealOptions) error {
	if opts.Signer == nil && opts.Encrypt == nil {
		return errors.New("smime: nothing to do: neither signer nor recipients")
	}
	msg = Canonical(msg)
	block, body, err := splitEntity(msg)
	if err != nil {
		return err
	}
	h, err := readHeader(block)
	if err != nil {
		return err
	}
	parts, err := entityParts(h, body)
	if err != nil {
		return err
	}

	return writeSealed(w, h, func(bw io.Writer) error { return sealEntity(bw, parts, opts) })
}

// writeOuter writes the fields of h that stay outside the protection, then MIME-Version.
func writeOuter(w io.Writer, h textproto.Header) error {
	if err := writeHeaderFields(w, h, isOuterField); err != nil {
		return err
	}
	_, err := io.WriteString(w, "MIME-Version: 1.0\r\n")
	return err
}

// entityParts is the MIME entity to protect, in two parts: the Content-* fields of h (a plain-text
// Content-Type when it has none) and the body.
func entityParts(h textproto.Header, body []byte) ([][]byte, error) {
	var entityHead bytes.Buffer
	if err := writeHeaderFields(&entityHead, h, isContentField); err != nil {
		return nil, err
	}
	if !h.Has("Content-Type") {
		entityHead.WriteString("Content-Type: text/plain; charset=us-ascii\r\n")
	}
	entityHead.Write(crlf)
	return [][]byte{entityHead.Bytes(), body}, nil
}

// Signed is a message's protected entity signed once, for SealSigned to encrypt to each of several
// recipients: the copies of one package to recipients allowed the same sections share their entity,
// and one signature (the same bytes, as one message signed to several recipients has) serves them all.
type Signed struct {
	entity []byte // the multipart/signed entity, CRLF
}

// Sign signs the protected entity of msg (its Content-* fields and body; its other fields are not
// part of it) with signer, as Seal with SealOptions{Signer: signer} signs it before encrypting.
func Sign(msg []byte, signer *cms.Signer) (*Signed, error) {
	if signer == nil {
		return nil, errors.New("smime: no signer")
	}
	block, body, err := splitEntity(Canonical(msg))
	if err != nil {
		return nil, err
	}
	h, err := readHeader(block)
	if err != nil {
		return nil, err
	}
	parts, err := entityParts(h, body)
	if err != nil {
		return nil, err
	}
	signed, err := signEntity(nil, parts, SealOptions{Signer: signer})
	if err != nil {
		return nil, err
	}
	return &Signed{entity: signed}, nil
}

// Size is the size of the signed entity.
func (s *Signed) Size() int { return len(s.entity) }

// SealedSizeBound is a size the sealed form of an entity of n octets does not exceed, the outer
// header aside: the entity encrypted (CMS, with room for a dozen recipients' keys), then base64 in
// lines of 76 octets and CRLF. For sizing the buffer a copy is sealed into: a buffer that has to
// grow doubles, and for a 1 MiB package that is a 4 MB buffer cleared and a 2 MB copy per copy.
func SealedSizeBound(n int) int {
	return base64LinesSize(n + 16<<10)
}

// SealedSizeBoundFor is SealedSizeBound for encryption with opts: room for opts' recipients' keys
// (each key's RecipientInfo: its certificate's issuer and serial or key identifier, the encrypted or
// wrapped key, the algorithm) instead of a dozen of any size. For a 4 KiB copy to one or two
// recipients that is about 8 KB less than SealedSizeBound.
func SealedSizeBoundFor(n int, opts cms.EncryptOptions) int {
	der := n + 1<<10 // ContentInfo, the algorithm and its nonce or IV, the tag, CBC's padding
	for _, r := range opts.Recipients {
		der += 512 // the RecipientInfo's own fields, algorithm and parameters, an ephemeral EC key
		if c := r.Cert; c != nil {
			der += len(c.RawIssuer) + len(c.SubjectKeyId) + len(c.RawSubjectPublicKeyInfo)
			if c.SerialNumber != nil {
				der += len(c.SerialNumber.Bytes()) + 1
			}
		}
	}
	return base64LinesSize(der)
}

// base64LinesSize is the size of n octets in base64, in lines of 76 octets and CRLF.
func base64LinesSize(n int) int {
	b64 := (n + 2) / 3 * 4
	return b64 + (b64/76+1)*2
}

// SealSigned writes what Seal writes for a message whose header block is header (fields, each ending
// in CRLF, no blank line after them) and whose entity s signed, encrypted with opts: header's fields
// other than Content-* and MIME-Version, MIME-Version, then s encrypted. s is not changed.
func SealSigned(w io.Writer, header []byte, s *Signed, opts cms.EncryptOptions) error {
	h, err := readHeader(Canonical(header))
	if err != nil {
		return err
	}
	return writeSealed(w, h, func(bw io.Writer) error {
		// Encrypted in place in a pooled copy (16 octets of room for AES-GCM's tag): s serves others.
		bp := signedBuffers.Get().(*[]byte)
		defer signedBuffers.Put(bp)
		buf := append((*bp)[:0], s.entity...)
		if cap(buf) < len(buf)+16 {
			buf = append(buf, make([]byte, 16)...)[:len(s.entity)]
		}
		*bp = buf[:0]
		return EncryptInPlace(bw, buf, opts)
	})
}

// writeSealed writes the outer header h, then what entity writes, through a pooled buffered writer.
func writeSealed(w io.Writer, h textproto.Header, entity func(io.Writer) error) error {
	bw := outerWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	defer putOuterWriter(bw)
	if err := writeOuter(bw, h); err != nil {
		return err
	}
	if err := entity(bw); err != nil {
		return err
	}
	return bw.Flush()
}

// sealEntity writes the protected entity built from parts.
func sealEntity(w io.Writer, parts [][]byte, opts SealOptions) error {
	if opts.Signer == nil {
		return EncryptInPlace(w, bytes.Join(parts, nil), *opts.Encrypt)
	}
	if opts.Encrypt == nil && !opts.Opaque {
		return signDetached(w, opts.Signer, parts)
	}
	if opts.Encrypt == nil {
		signed, err := signEntity(nil, parts, opts)
		if err != nil {
			return err
		}
		_, err = w.Write(signed)
		return err
	}
	// Signed, then encrypted in place and written: the signed entity is dead once written, so its
	// buffer goes back to the pool (a fresh one of a megabyte costs its clearing at every copy).
	bp := signedBuffers.Get().(*[]byte)
	defer signedBuffers.Put(bp)
	signed, err := signEntity((*bp)[:0], parts, opts)
	if err != nil {
		return err
	}
	*bp = signed[:0]
	return EncryptInPlace(w, signed, *opts.Encrypt)
}

// signedBuffers hold signed entities while they are encrypted.
var signedBuffers = sync.Pool{New: func() any { return new([]byte) }}

// outerWriters holds the 64 KiB buffered writers Seal and SealSigned write through: a fresh one per
// copy was 64 KiB allocated and cleared for each (157 MB/s at 800 packages of three copies a second).
var outerWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// putOuterWriter returns bw to outerWriters, no longer holding its writer.
func putOuterWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	outerWriters.Put(bw)
}

// signEntity returns the signed entity in one buffer with room to encrypt it in place, reusing
// dst's storage when it is large enough.
func signEntity(dst []byte, parts [][]byte, opts SealOptions) ([]byte, error) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	sigLen := 2048 + len(opts.Signer.Cert.Raw)
	for _, c := range opts.Signer.Chain {
		sigLen += len(c.Raw)
	}
	buf := bytes.NewBuffer(dst[:0])
	if opts.Opaque {
		buf.Grow(len(signedDataType+p7mTrailer) + base64Len(n+sigLen) + 16)
		if err := SignOpaque(buf, bytes.Join(parts, nil), opts.Signer); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	buf.Grow(n + signedOverhead(sigLen) + 16)
	if err := signDetached(buf, opts.Signer, parts); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// isOuterField: the message's own fields, kept outside the protected entity.
func isOuterField(key string) bool {
	return !isContentField(key) && !strings.EqualFold(key, "MIME-Version")
}
