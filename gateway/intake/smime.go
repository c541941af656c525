package intake

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"cafgate/certs/validate"
	"cafgate/directory"
	"cafgate/envelope/cms"
	"cafgate/envelope/smime"
	"cafgate/gateway/fault"
)

// SMIME opens S/MIME submissions (RFC 8551): layers encrypted to the gateway are decrypted, and every
// signature must verify, chain to a trust anchor serving the sender's agency, and be the signed-in
// practitioner's own.
type SMIME struct {
	Decrypter *cms.Decrypter      // the gateway's S/MIME key; nil refuses encrypted submissions
	Roots     *x509.CertPool      // every trust anchor's roots, for building the signature's chain
	Validator *validate.Validator // the full check: usage, dates, agency's anchor, mail, revocation
	// Remember, when set, is given the sender's verified signature (its SMIMECapabilities).
	Remember func(ctx context.Context, mail string, sig *cms.Signature)
}

// Opened is what an S/MIME submission held.
type Opened struct {
	Content   []byte // the innermost message, the package itself
	Signed    bool
	Encrypted bool
	SignerFP  string // SHA-256 fingerprint of the signer's certificate, hex
}

// openSMIME removes the S/MIME layers of s.Content. A message that is not S/MIME comes back as it is.
func (in *Intake) openSMIME(ctx context.Context, s *Submission) (*Opened, *fault.Error) {
	var dec *cms.Decrypter
	var roots *x509.CertPool
	if in.SMIME != nil {
		dec, roots = in.SMIME.Decrypter, in.SMIME.Roots
	}
	var checkErr error
	check := func(signer *x509.Certificate, inter []*x509.Certificate) error {
		checkErr = in.checkSigner(ctx, s.Sender, signer, inter)
		return checkErr
	}
	o, err := smime.Open(s.Content, smime.OpenOptions{Decrypter: dec,
		Verify: cms.VerifyOptions{Roots: roots, Now: in.Now(), Check: check}})
	switch {
	case err == nil:
	case checkErr != nil:
		return nil, fault.New(fault.NotPermitted, checkErr.Error(), err)
	case errors.Is(err, smime.ErrNoDecrypter):
		return nil, fault.New(fault.NotPermitted, "The message is encrypted, but this gateway has no S/MIME key to decrypt it; send it unencrypted over TLS.", err)
	case errors.Is(err, cms.ErrDecrypt), errors.Is(err, cms.ErrNoRecipient):
		return nil, fault.New(fault.NotPermitted, "The message is encrypted, but not to this gateway's certificate, so it cannot be read. Encrypt it to the gateway's certificate or send it unencrypted over TLS.", err)
	case errors.Is(err, cms.ErrBadSignature):
		return nil, fault.New(fault.NotPermitted, "The message's S/MIME signature does not match its content: it may have been altered. It was not accepted.", err)
	case errors.Is(err, cms.ErrUntrusted):
		return nil, fault.New(fault.NotPermitted, "The message is signed with a certificate that no trusted agency authority issued. It was not accepted.", err)
	case errors.Is(err, cms.ErrTooLarge):
		return nil, fault.New(fault.TooBig, "", err)
	default:
		return nil, fault.New(fault.BadMessage, "The message's S/MIME structure is malformed and cannot be read. It was not accepted.", err)
	}
	out := &Opened{Content: s.Content, Signed: o.Signed(), Encrypted: o.Encrypted()}
	if len(o.Layers) == 0 {
		return out, nil
	}
	if out.Content, err = o.Message(); err != nil {
		return nil, fault.New(fault.BadMessage, "The message inside the S/MIME layers is malformed. It was not accepted.", err)
	}
	if out.Signed {
		fp := sha256.Sum256(o.Signer().Raw)
		out.SignerFP = hex.EncodeToString(fp[:])
	}
	if err := CheckContent(out.Content); err != nil {
		return nil, err
	}
	if out.Signed && in.SMIME != nil && in.SMIME.Remember != nil {
		in.SMIME.Remember(ctx, s.Sender.Mail, o.Signature())
	}
	return out, nil
}

// checkSigner is the caller's check of a verified signature: the signer's certificate must be valid
// for signing, chain to an anchor of the sender's agency, not be revoked, and be the signed-in
// practitioner's: their directory mail address in the certificate (RFC 8550).
func (in *Intake) checkSigner(ctx context.Context, p *directory.Practitioner, signer *x509.Certificate, inter []*x509.Certificate) error {
	if in.SMIME == nil || in.SMIME.Validator == nil {
		return errors.New("This gateway trusts no certificate authority, so signed messages cannot be checked; send it unsigned over TLS.")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := in.SMIME.Validator.Validate(ctx, validate.Request{Cert: signer, Intermediates: inter, Mail: p.Mail, Agency: p.Agency, Usage: validate.ForSigning})
	if err == nil {
		return nil
	}
	var ve *validate.Error
	if errors.As(err, &ve) {
		return fmt.Errorf("The message's S/MIME signature was refused: %s", ve.Sentence)
	}
	return errors.New("The message's S/MIME signature could not be checked just now.")
}
