package smime

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"

	"cafgate/envelope/cms"
)

// Capabilities is what a practitioner's S/MIME client announced in the SMIMECapabilities signed
// attribute of verified signed mail they sent: the content-encryption algorithms cms knows, in the
// client's order of preference (empty: it announced none of them).
type Capabilities struct {
	Ciphers []cms.Cipher
	OAEP    bool // RSAES-OAEP key transport announced
}

// GCM reports whether the client announced AES-GCM.
func (c Capabilities) GCM() bool {
	for _, ci := range c.Ciphers {
		if ci.IsGCM() {
			return true
		}
	}
	return false
}

// Escrow is an escrow or archive certificate added as an extra recipient of sealed copies.
type Escrow struct {
	Name string
	Cert *x509.Certificate
	// Agencies limits the escrow to copies for recipients of these agencies (as the directory names
	// them, case-insensitive); empty: every copy the gateway seals.
	Agencies []string
}

// Policy chooses how a recipient's copy is encrypted: its content-encryption algorithm and the extra
// (escrow) recipients. The zero Policy, and a nil *Policy, seal with AES-256-GCM to the recipient only.
type Policy struct {
	// Escrow certificates are added to every copy they cover.
	Escrow []Escrow
	// CBCFor lists mail domains ("example.org") and addresses configured for AES-256-CBC whatever
	// their capabilities say.
	CBCFor []string
	// Known returns the capabilities remembered from the recipient's own verified signed mail; ok is
	// false when none are known. nil: none are ever known.
	Known func(ctx context.Context, mail string) (caps Capabilities, ok bool, err error)
	// KeyTransport is used for RSA recipients (the addressee and escrow); the zero value is
	// RSA-OAEP with SHA-256.
	KeyTransport cms.KeyTransport
}

// Why a cipher was chosen, as recorded in the ledger.
const (
	ChoiceDefault     = "default"     // nothing known of the recipient's client: AES-256-GCM
	ChoiceSignedMail  = "signed-mail" // from the SMIMECapabilities of mail they signed
	ChoiceCertificate = "certificate" // from their certificate's SMIMECapabilities extension
	ChoiceConfigured  = "configured"  // their domain or address is configured for CBC
)

// Plan is how one copy is sealed.
type Plan struct {
	Encrypt cms.EncryptOptions
	Cipher  cms.Cipher
	Why     string // one of the Choice constants
	// KeyTransport is the addressee's RSA key transport: the policy's, or RSA PKCS#1 v1.5 for a
	// client that gets AES-CBC and did not announce RSAES-OAEP.
	KeyTransport cms.KeyTransport
	Escrow       []string // SHA-256 fingerprints (lower-case hex) of the escrow certificates included
}

// Plan chooses the encryption of a copy for the practitioner mail (of agency) whose validated
// certificate is cert. Remembered capabilities of signed mail come first (they describe the client the
// recipient actually uses), then the certificate's SMIMECapabilities extension, then AES-256-GCM. A
// client that announced capabilities without AES-GCM gets AES-256-CBC (EnvelopedData); one that
// announced GCM, or about which nothing is known, gets AES-256-GCM (AuthEnvelopedData), as RFC 8551
// requires. An error (the store cannot be read) leaves the choice to a later attempt.
func (p *Policy) Plan(ctx context.Context, mail, agency string, cert *x509.Certificate) (Plan, error) {
	pl := Plan{Cipher: cms.AES256GCM, Why: ChoiceDefault}
	kt := cms.RSAOAEPSHA256
	rcptKT := kt
	var caps Capabilities
	if p != nil {
		kt, rcptKT = p.KeyTransport, p.KeyTransport
		var known bool
		var err error
		caps, known, err = p.known(ctx, mail)
		if err != nil {
			return Plan{}, err
		}
		certCiphers, certOAEP, certKnown := cms.CertificateCapabilities(cert)
		switch {
		case p.cbcConfigured(mail):
			pl.Cipher, pl.Why = cms.AES256CBC, ChoiceConfigured
		case known:
			pl.Cipher, pl.Why = cipherFor(caps), ChoiceSignedMail
		case certKnown:
			caps = Capabilities{Ciphers: certCiphers, OAEP: certOAEP}
			pl.Cipher, pl.Why = cipherFor(caps), ChoiceCertificate
		}
		if pl.Cipher == cms.AES256CBC && !caps.OAEP {
			// A client without AES-GCM that did not announce RSAES-OAEP gets the key transport every
			// S/MIME client reads (RFC 8551 2.3), as gpgsm 2.2 needs.
			rcptKT = cms.RSAPKCS1v15
		}
	}
	pl.KeyTransport = rcptKT
	pl.Encrypt = cms.EncryptOptions{Cipher: pl.Cipher, Recipients: []cms.Recipient{{Cert: cert, KeyTransport: rcptKT}}}
	if p == nil {
		return pl, nil
	}
	seen := map[string]bool{fingerprint(cert): true}
	for _, e := range p.Escrow {
		fp := fingerprint(e.Cert)
		if seen[fp] || !e.covers(agency) {
			continue
		}
		seen[fp] = true
		pl.Encrypt.Recipients = append(pl.Encrypt.Recipients, cms.Recipient{Cert: e.Cert, KeyTransport: kt})
		pl.Escrow = append(pl.Escrow, fp)
	}
	return pl, nil
}

func (p *Policy) known(ctx context.Context, mail string) (Capabilities, bool, error) {
	if p.Known == nil {
		return Capabilities{}, false, nil
	}
	return p.Known(ctx, strings.ToLower(mail))
}

// cbcConfigured reports whether mail, or its domain, is listed in CBCFor.
func (p *Policy) cbcConfigured(mail string) bool {
	mail = strings.ToLower(mail)
	_, domain, _ := strings.Cut(mail, "@")
	for _, c := range p.CBCFor {
		c = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(c), "@"))
		if c == mail || (domain != "" && c == domain) {
			return true
		}
	}
	return false
}

// cipherFor is AES-256-GCM if the client announced any AES-GCM, else AES-256-CBC. A client announcing
// only AES-128-CBC still gets AES-256-CBC: RFC 8551 2.7 requires every client to read it.
func cipherFor(c Capabilities) cms.Cipher {
	if c.GCM() {
		return cms.AES256GCM
	}
	return cms.AES256CBC
}

func (e Escrow) covers(agency string) bool {
	if len(e.Agencies) == 0 {
		return true
	}
	for _, a := range e.Agencies {
		if a == "*" || strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(agency)) {
			return true
		}
	}
	return false
}

func fingerprint(c *x509.Certificate) string {
	h := sha256.Sum256(c.Raw)
	return hex.EncodeToString(h[:])
}
