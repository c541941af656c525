package smime

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"cafgate/envelope/cms"
)

// DefaultMaxLayers bounds S/MIME nesting when OpenOptions.MaxLayers is zero: sign, encrypt, sign
// again (the RFC 8551 "triple wrapping") and one more.
const DefaultMaxLayers = 4

// Errors of Open besides ErrMalformed and the cms errors it wraps.
var (
	// ErrTooDeep: more S/MIME layers than the limit.
	ErrTooDeep = errors.New("smime: too many nested S/MIME layers")
	// ErrNoDecrypter: an encrypted layer and no key to decrypt it.
	ErrNoDecrypter = errors.New("smime: encrypted message and no decryption key")
	// ErrUnsupported: an S/MIME body this package does not read (certs-only, unknown CMS type).
	ErrUnsupported = errors.New("smime: unsupported S/MIME content")
)

// OpenOptions say how to read an incoming message.
type OpenOptions struct {
	// Decrypter decrypts layers encrypted to the gateway; nil refuses encrypted messages.
	Decrypter *cms.Decrypter
	// Verify is applied to every signature layer: trust anchors, time, and the caller's Check
	// (which is where "the signer must be the signed-in practitioner" belongs).
	Verify cms.VerifyOptions
	// MaxLayers bounds nesting; DefaultMaxLayers when zero.
	MaxLayers int
}

// LayerKind is one S/MIME protection.
type LayerKind int

// The layer kinds.
const (
	SignedDetached LayerKind = iota + 1 // multipart/signed with application/pkcs7-signature
	SignedOpaque                        // application/pkcs7-mime; smime-type=signed-data
	Encrypted                           // application/pkcs7-mime; enveloped-data or authEnveloped-data
)

// String names the kind, for logs.
func (k LayerKind) String() string {
	switch k {
	case SignedDetached:
		return "signed (detached)"
	case SignedOpaque:
		return "signed (opaque)"
	case Encrypted:
		return "encrypted"
	}
	return "unknown"
}

// Layer is one verified or decrypted protection.
type Layer struct {
	Kind      LayerKind
	Signature *cms.Signature // signed layers: the verified signer, chain, capabilities
	Cipher    cms.Cipher     // encrypted layers: the sender's content-encryption algorithm
}

// Opened is an incoming message with its S/MIME layers removed.
type Opened struct {
	// Header is the received message's own header.
	Header textproto.Header
	// Entity is the innermost MIME entity (header and body, canonical CRLF); for a message that is
	// neither signed nor encrypted, the whole message.
	Entity []byte
	// Layers are the protections found, outermost first; empty when there were none. Every signed
	// layer has verified and passed VerifyOptions.Check; every encrypted layer has decrypted.
	Layers []Layer
}

// Open reads a complete message and removes its S/MIME layers, outermost first, in any nesting
// (signed, encrypted, signed then encrypted, encrypted then signed, triple-wrapped). Any signature that
// does not verify, and any layer that does not decrypt, fails the whole message with an error that
// wraps the cms error (errors.Is(err, cms.ErrBadSignature), ...). A message that is not S/MIME is
// returned with no layers. The body of an application/pkcs7-mime part is routed by its CMS content
// type, not by its smime-type parameter.
func Open(msg []byte, opts OpenOptions) (o *Opened, err error) {
	defer func() {
		if r := recover(); r != nil { // defence in depth: no input may take the gateway down
			o, err = nil, fmt.Errorf("%w: panic while reading S/MIME", ErrMalformed)
		}
	}()
	msg = Canonical(msg)
	block, _, err := splitEntity(msg)
	if err != nil {
		return nil, err
	}
	h, err := readHeader(block)
	if err != nil {
		return nil, err
	}
	maxLayers := opts.MaxLayers
	if maxLayers <= 0 {
		maxLayers = DefaultMaxLayers
	}
	o = &Opened{Header: h}
	cur := msg
	for {
		next, layer, err := peel(cur, opts)
		if err != nil {
			return nil, fmt.Errorf("smime: layer %d: %w", len(o.Layers)+1, err)
		}
		if layer.Kind == 0 {
			break
		}
		if len(o.Layers) == maxLayers {
			return nil, ErrTooDeep
		}
		o.Layers = append(o.Layers, layer)
		cur = Canonical(next)
	}
	o.Entity = cur
	return o, nil
}

// Signed reports whether any layer was a verified signature.
func (o *Opened) Signed() bool { return o.Signature() != nil }

// Encrypted reports whether any layer was encrypted.
func (o *Opened) Encrypted() bool {
	for _, l := range o.Layers {
		if l.Kind == Encrypted {
			return true
		}
	}
	return false
}

// Signature returns the innermost signature (the one over the content itself), or nil.
func (o *Opened) Signature() *cms.Signature {
	for i := len(o.Layers) - 1; i >= 0; i-- {
		if o.Layers[i].Signature != nil {
			return o.Layers[i].Signature
		}
	}
	return nil
}

// Signer returns the certificate of the innermost signature, or nil.
func (o *Opened) Signer() *x509.Certificate {
	if s := o.Signature(); s != nil {
		return s.Signer
	}
	return nil
}

// Message returns a complete message: the received header's own fields (not its Content-* fields,
// and not any field the inner entity repeats, as protected headers win), MIME-Version, then the inner
// entity. With no layers it is the received message.
func (o *Opened) Message() ([]byte, error) {
	if len(o.Layers) == 0 {
		return o.Entity, nil
	}
	block, body, err := splitEntity(o.Entity)
	if err != nil {
		return nil, err
	}
	inner, err := readHeader(block)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(len(o.Entity) + 4096)
	keep := func(k string) bool { return isOuterField(k) && !inner.Has(k) }
	if err := writeHeaderFields(&b, o.Header, keep); err != nil {
		return nil, err
	}
	if !inner.Has("MIME-Version") {
		b.WriteString("MIME-Version: 1.0\r\n")
	}
	b.Write(block)
	b.Write(crlf)
	b.Write(body)
	return b.Bytes(), nil
}

// ParseEntity parses the inner entity with go-message (transfer encodings decoded, charsets left
// as they are).
func (o *Opened) ParseEntity() (*message.Entity, error) {
	e, err := message.Read(bytes.NewReader(o.Entity))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, err
	}
	return e, nil
}

// peel removes one S/MIME layer from entity. A zero Layer means entity is not S/MIME.
func peel(entity []byte, opts OpenOptions) ([]byte, Layer, error) {
	block, body, err := splitEntity(entity)
	if err != nil {
		return nil, Layer{}, err
	}
	h, err := readHeader(block)
	if err != nil {
		return nil, Layer{}, err
	}
	mt, params := mediaType(h)
	switch {
	case mt == "multipart/signed" && isSignatureType(params["protocol"]):
		return peelDetached(body, params["boundary"], opts)
	case isP7M(mt, params, h):
		der, owned, err := decodeBody(h, body)
		if err != nil {
			return nil, Layer{}, err
		}
		return peelP7M(der, owned, opts)
	}
	return nil, Layer{}, nil
}

func peelDetached(body []byte, boundary string, opts OpenOptions) ([]byte, Layer, error) {
	first, second, err := splitSigned(body, boundary)
	if err != nil {
		return nil, Layer{}, err
	}
	sigBlock, sigBody, err := splitEntity(second)
	if err != nil {
		return nil, Layer{}, err
	}
	sh, err := readHeader(sigBlock)
	if err != nil {
		return nil, Layer{}, err
	}
	if mt, _ := mediaType(sh); !isSignatureType(mt) {
		return nil, Layer{}, fmt.Errorf("%w: second part of multipart/signed is %s", ErrMalformed, mt)
	}
	der, _, err := decodeBody(sh, sigBody)
	if err != nil {
		return nil, Layer{}, err
	}
	sig, err := cms.VerifyDetached(der, first, opts.Verify)
	if err != nil {
		return nil, Layer{}, err
	}
	return first, Layer{Kind: SignedDetached, Signature: sig}, nil
}

// peelP7M verifies or decrypts an application/pkcs7-mime body; owned says der is a buffer of this
// package's (decoded from base64) that decryption may overwrite instead of copying.
func peelP7M(der []byte, owned bool, opts OpenOptions) ([]byte, Layer, error) {
	switch cms.Identify(der) {
	case cms.KindSignedData:
		content, sig, err := cms.VerifyOpaque(der, opts.Verify)
		if err != nil {
			return nil, Layer{}, err
		}
		return content, Layer{Kind: SignedOpaque, Signature: sig}, nil
	case cms.KindEnvelopedData, cms.KindAuthEnvelopedData:
		if opts.Decrypter == nil {
			return nil, Layer{}, ErrNoDecrypter
		}
		decrypt := opts.Decrypter.Decrypt
		if owned {
			decrypt = opts.Decrypter.DecryptInPlace
		}
		d, err := decrypt(der)
		if err != nil {
			return nil, Layer{}, err
		}
		return d.Content, Layer{Kind: Encrypted, Cipher: d.Cipher}, nil
	}
	return nil, Layer{}, ErrUnsupported
}

// isSignatureType accepts the RFC 8551 type and its pre-standard x- form.
func isSignatureType(t string) bool {
	t = strings.ToLower(t)
	return t == "application/pkcs7-signature" || t == "application/x-pkcs7-signature"
}

// isP7M recognises application/pkcs7-mime, its x- form, and the application/octet-stream with a .p7m
// name that some clients send.
func isP7M(mt string, params map[string]string, h textproto.Header) bool {
	if mt == "application/pkcs7-mime" || mt == "application/x-pkcs7-mime" {
		return true
	}
	if mt != "application/octet-stream" {
		return false
	}
	name := strings.ToLower(params["name"])
	if _, dp, err := parseDisposition(h); err == nil && dp["filename"] != "" {
		name = strings.ToLower(dp["filename"])
	}
	return strings.HasSuffix(name, ".p7m")
}

// decodeBody undoes the entity's Content-Transfer-Encoding (base64, or none). owned reports whether
// the result is a new buffer rather than a slice of body.
func decodeBody(h textproto.Header, body []byte) (der []byte, owned bool, err error) {
	switch cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))); cte {
	case "base64":
		der, err = decodeBase64(body)
		return der, true, err
	case "", "7bit", "8bit", "binary":
		return body, false, nil
	default:
		return nil, false, fmt.Errorf("%w: S/MIME body in %s", ErrMalformed, cte)
	}
}
