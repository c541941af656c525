// Package smime wraps and unwraps S/MIME (RFC 8551) on top of go-message: multipart/signed with
// application/pkcs7-signature and micalg sha-256, application/pkcs7-mime with smime-type signed-data,
// enveloped-data and authEnveloped-data (name smime.p7m), and the reading of incoming messages in any
// nesting of those, returning the inner MIME entity and the verified signer. The cryptography is
// cafgate/envelope/cms.
//
// Everything signed is the canonical form: CRLF line endings, byte for byte as transmitted. Content
// to be signed should already use a 7-bit transfer encoding (quoted-printable or base64) for
// non-ASCII text, because relays may rewrite 8-bit bodies; this package does not re-encode.
package smime

import (
	"bytes"

	"github.com/emersion/go-message"
)

// EntityBytes serialises a go-message entity (header and body, transfer encoding applied) in
// canonical CRLF form, ready for SignDetached, SignOpaque or Encrypt.
func EntityBytes(e *message.Entity) ([]byte, error) {
	var b bytes.Buffer
	if err := e.WriteTo(&b); err != nil {
		return nil, err
	}
	return Canonical(b.Bytes()), nil
}
