package main

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"cafgate/certs/validate"
	"cafgate/configs"
	"cafgate/envelope/cms"
	"cafgate/envelope/smime"
	"cafgate/gateway/intake"
	"cafgate/mailbox"
)

// gatewayIdentity is the gateway's own S/MIME certificate and key: it decrypts submissions encrypted
// to the gateway and signs what the gateway forwards, unless a separate signing certificate and key
// (smime.sign_cert_file, sign_key_file) sign instead.
type gatewayIdentity struct {
	Cert  *x509.Certificate
	Chain []*x509.Certificate
	Key   crypto.Signer
	// Sign is the separate signing identity; nil when Cert and Key sign.
	Sign *signingIdentity
}

// signingIdentity is a certificate, its chain and its key.
type signingIdentity struct {
	Cert  *x509.Certificate
	Chain []*x509.Certificate
	Key   crypto.Signer
}

func loadIdentity(sc configs.SMIMEConfig) (*gatewayIdentity, error) {
	if sc.CertFile == "" {
		return nil, nil
	}
	enc, err := loadPair(sc.CertFile, sc.KeyFile, "smime.cert_file", "smime.key_file")
	if err != nil {
		return nil, err
	}
	id := &gatewayIdentity{Cert: enc.Cert, Chain: enc.Chain, Key: enc.Key}
	if sc.SignCertFile == "" {
		return id, nil
	}
	if id.Sign, err = loadPair(sc.SignCertFile, sc.SignKeyFile, "smime.sign_cert_file", "smime.sign_key_file"); err != nil {
		return nil, err
	}
	if err := configs.CheckSigningCert(id.Sign.Cert, id.Cert, time.Now()); err != nil {
		return nil, fmt.Errorf("smime.sign_cert_file: %w", err)
	}
	return id, nil
}

// loadPair reads a PEM certificate chain and the private key that belongs to its first certificate.
func loadPair(certFile, keyFile, certSetting, keySetting string) (*signingIdentity, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", certSetting, keySetting, err)
	}
	certs := make([]*x509.Certificate, 0, len(pair.Certificate))
	for _, der := range pair.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", certSetting, err)
		}
		certs = append(certs, c)
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: the key cannot sign", keySetting)
	}
	return &signingIdentity{Cert: certs[0], Chain: certs[1:], Key: key}, nil
}

// newValidator builds the certificate validator from the [[trust.anchor]] tables, and the pool of
// every anchor's roots for building chains. A file: CRL distribution point is read when the file lies
// in the directory of an anchor's ca_file (where the development CA writes its CRL).
func newValidator(tc configs.TrustConfig, log *slog.Logger) (*validate.Validator, *x509.CertPool, error) {
	pool := x509.NewCertPool()
	var anchors []validate.Anchor
	var crlDirs []string
	for _, a := range tc.Anchors {
		crlDirs = append(crlDirs, filepath.Dir(a.CAFile))
		roots, err := validate.LoadPEMCertificates(a.CAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("trust anchor %q: %w", a.Name, err)
		}
		var inter []*x509.Certificate
		if a.IntermediatesFile != "" {
			if inter, err = validate.LoadPEMCertificates(a.IntermediatesFile); err != nil {
				return nil, nil, fmt.Errorf("trust anchor %q: %w", a.Name, err)
			}
		}
		for _, r := range roots {
			pool.AddCert(r)
		}
		anchors = append(anchors, validate.Anchor{Name: a.Name, Agencies: a.Agencies, Roots: roots, Intermediates: inter,
			SoftRevocation: strings.EqualFold(a.Revocation, "soft")})
	}
	v, err := validate.New(validate.Options{Anchors: anchors, Log: log, FetchTimeout: tc.FetchTimeout.D(),
		MaxCRLBytes: int64(tc.MaxCRLSize), RetryAfter: tc.RetryAfter.D(), CRLDirs: crlDirs})
	if err != nil {
		return nil, nil, fmt.Errorf("trust: %w", err)
	}
	return v, pool, nil
}

// intakeSMIME wires S/MIME submissions: the gateway's key decrypts, the validator checks signers, and
// the SMIMECapabilities of every verified signature are remembered in the store for the sender.
func intakeSMIME(id *gatewayIdentity, v *validate.Validator, roots *x509.CertPool, store *mailbox.Store, log *slog.Logger) *intake.SMIME {
	s := &intake.SMIME{Roots: roots, Validator: v, Remember: rememberCapabilities(store, log)}
	if id != nil {
		s.Decrypter = &cms.Decrypter{Cert: id.Cert, Key: id.Key}
	}
	return s
}

// signer is the gateway's signing identity for sealed copies; nil when none is configured. With a
// separate signing certificate, every signed copy also carries the encryption certificate and names it
// (SMIMEEncryptionKeyPreference) as the one to encrypt replies to.
func (id *gatewayIdentity) signer() *cms.Signer {
	if id == nil {
		return nil
	}
	if id.Sign != nil {
		return &cms.Signer{Cert: id.Sign.Cert, Key: id.Sign.Key, Chain: id.Sign.Chain, EncryptCert: id.Cert}
	}
	return &cms.Signer{Cert: id.Cert, Key: id.Key, Chain: id.Chain}
}

// rememberCapabilities records the content-encryption algorithms a verified signature announced. A
// signature without the SMIMECapabilities attribute tells nothing and changes nothing; a failure to
// record is logged and does not refuse the message.
func rememberCapabilities(store *mailbox.Store, log *slog.Logger) func(ctx context.Context, mail string, sig *cms.Signature) {
	return func(ctx context.Context, mail string, sig *cms.Signature) {
		if store == nil || sig == nil || !sig.HasCapabilities {
			return
		}
		c := mailbox.Capabilities{Ciphers: []string{}, OAEP: sig.AnnouncesOAEP, At: time.Now()}
		for _, ci := range sig.Capabilities {
			c.Ciphers = append(c.Ciphers, ci.String())
		}
		fp := sha256.Sum256(sig.Signer.Raw)
		c.Signer = hex.EncodeToString(fp[:])
		if err := store.RememberCapabilities(ctx, mail, c); err != nil {
			log.Warn("smime: remembering the sender's capabilities", "err", err)
		}
	}
}

// sealPolicy is how copies are sealed: the cipher from smime.cbc_for and the recipients' remembered or
// certified capabilities, and the [[smime.escrow]] certificates as extra recipients.
func sealPolicy(sc configs.SMIMEConfig, store *mailbox.Store) (*smime.Policy, error) {
	p := &smime.Policy{CBCFor: sc.CBCFor}
	for i, e := range sc.Escrow {
		cert, err := configs.LoadEscrowCert(e.CertFile, time.Now())
		if err != nil {
			return nil, fmt.Errorf("smime.escrow[%d].cert_file: %w", i, err)
		}
		p.Escrow = append(p.Escrow, smime.Escrow{Name: e.Name, Cert: cert, Agencies: e.Agencies})
	}
	if store != nil {
		p.Known = func(ctx context.Context, mail string) (smime.Capabilities, bool, error) {
			c, ok, err := store.KnownCapabilities(ctx, mail)
			if err != nil || !ok {
				return smime.Capabilities{}, false, err
			}
			caps := smime.Capabilities{OAEP: c.OAEP}
			for _, name := range c.Ciphers {
				if ci, known := cms.CipherByName(name); known {
					caps.Ciphers = append(caps.Ciphers, ci)
				}
			}
			return caps, true, nil
		}
	}
	return p, nil
}

// devEscrowMail is the development setup's escrow certificate (cafgate dev): the archive of the
// sample police agency.
const devEscrowMail = "archive@police.cafgate.test"

// devCRLValidity is how long the CRL `cafgate dev` writes at each start stays current.
const devCRLValidity = 30 * 24 * time.Hour
