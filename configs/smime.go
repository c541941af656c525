package configs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"cafgate/certs/pemfile"
)

// resolveSMIME makes the signing and escrow files absolute against dir.
func (c *Config) resolveSMIME(dir string) {
	for _, p := range []*string{&c.SMIME.SignCertFile, &c.SMIME.SignKeyFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for i := range c.SMIME.Escrow {
		e := &c.SMIME.Escrow[i]
		if e.CertFile != "" && !filepath.IsAbs(e.CertFile) {
			e.CertFile = filepath.Join(dir, e.CertFile)
		}
	}
}

// validateSMIME checks smime.cbc_for and every [[smime.escrow]]: its certificate is read and must be
// usable for encryption now.
func (c *Config) validateSMIME(file string) Problems {
	var ps Problems
	bad := func(setting, format string, args ...any) {
		ps = append(ps, Problem{File: file, Setting: setting, Message: fmt.Sprintf(format, args...)})
	}
	for i, d := range c.SMIME.CBCFor {
		d = strings.TrimPrefix(strings.TrimSpace(d), "@")
		if d == "" || strings.ContainsAny(d, " \t,;<>") || strings.Count(d, "@") > 1 {
			bad(fmt.Sprintf("smime.cbc_for[%d]", i), "%q is neither a mail domain nor a mail address", c.SMIME.CBCFor[i])
		}
	}
	ps = append(ps, c.validateSigning(file)...)
	names := map[string]bool{}
	for i, e := range c.SMIME.Escrow {
		at := fmt.Sprintf("smime.escrow[%d].", i)
		switch {
		case e.Name == "":
			bad(at+"name", "is required")
		case names[e.Name]:
			bad(at+"name", "%q is used by another escrow", e.Name)
		}
		names[e.Name] = true
		if e.CertFile == "" {
			bad(at+"cert_file", "is required")
		} else if _, err := LoadEscrowCert(e.CertFile, time.Now()); err != nil {
			bad(at+"cert_file", "%v", err)
		}
		for _, a := range e.Agencies {
			if strings.TrimSpace(a) == "" {
				bad(at+"agencies", "holds an empty name")
			}
		}
	}
	return ps
}

// validateSigning checks smime.sign_cert_file and smime.sign_key_file, when set: both given, beside
// cert_file, the certificate fit for signing as cert_file's mail address (CheckSigningCert) and the key
// its own.
func (c *Config) validateSigning(file string) Problems {
	var ps Problems
	bad := func(setting, format string, args ...any) {
		ps = append(ps, Problem{File: file, Setting: setting, Message: fmt.Sprintf(format, args...)})
	}
	sc := c.SMIME
	if sc.SignCertFile == "" && sc.SignKeyFile == "" {
		return nil
	}
	if sc.SignCertFile == "" || sc.SignKeyFile == "" {
		bad("smime", "sign_cert_file and sign_key_file must both be set or both be empty")
		return ps
	}
	if sc.CertFile == "" {
		bad("smime.sign_cert_file", "needs smime.cert_file and smime.key_file: signed copies name that certificate as the one to encrypt replies to")
	}
	before := len(ps)
	checkFile(bad, "smime.sign_cert_file", sc.SignCertFile, true)
	checkKey(bad, "smime.sign_key_file", sc.SignKeyFile, true)
	if len(ps) > before || sc.CertFile == "" {
		return ps
	}
	sign, err := pemfile.LoadCertificate(sc.SignCertFile)
	if err != nil {
		bad("smime.sign_cert_file", "%v", err)
		return ps
	}
	enc, err := pemfile.LoadCertificate(sc.CertFile)
	if err != nil {
		bad("smime.cert_file", "%v", err)
		return ps
	}
	if err := CheckSigningCert(sign, enc, time.Now()); err != nil {
		bad("smime.sign_cert_file", "%s: %v", sc.SignCertFile, err)
	}
	key, err := pemfile.LoadKey(sc.SignKeyFile)
	if err != nil {
		bad("smime.sign_key_file", "%v", err)
	} else if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(sign.PublicKey) {
		bad("smime.sign_key_file", "%s does not hold the key of %s", sc.SignKeyFile, sc.SignCertFile)
	}
	return ps
}

// CheckSigningCert checks that sign can sign the gateway's copies as the owner of the encryption
// certificate enc at now: an end-entity certificate within its dates, for (one of) enc's mail
// addresses, key usage allowing digitalSignature when present, emailProtection among its extended key
// usages when it lists any, and an RSA key of 2048 bits or more or an ECDSA P-256 or P-384 key.
func CheckSigningCert(sign, enc *x509.Certificate, now time.Time) error {
	switch {
	case sign.IsCA:
		return fmt.Errorf("%s is a CA certificate, not the gateway's signing certificate", sign.Subject)
	case now.Before(sign.NotBefore):
		return fmt.Errorf("the certificate is not valid before %s", sign.NotBefore.UTC().Format(time.RFC3339))
	case now.After(sign.NotAfter):
		return fmt.Errorf("the certificate expired on %s", sign.NotAfter.UTC().Format(time.RFC3339))
	}
	switch k := sign.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("the RSA key has %d bits; at least 2048 are required", k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("the EC key is on %s; P-256 or P-384 is required", k.Curve.Params().Name)
		}
	default:
		return fmt.Errorf("the certificate's key (%T) cannot sign here; RSA (2048 bits or more), P-256 or P-384 is required", sign.PublicKey)
	}
	if sign.KeyUsage != 0 && sign.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fmt.Errorf("the certificate's key usage does not allow digitalSignature")
	}
	if len(sign.ExtKeyUsage) > 0 || len(sign.UnknownExtKeyUsage) > 0 {
		if !slices.Contains(sign.ExtKeyUsage, x509.ExtKeyUsageEmailProtection) && !slices.Contains(sign.ExtKeyUsage, x509.ExtKeyUsageAny) {
			return fmt.Errorf("the certificate's extended key usage lacks emailProtection (S/MIME)")
		}
	}
	want := certMails(enc)
	if len(want) == 0 {
		return fmt.Errorf("smime.cert_file's certificate names no mail address to compare with")
	}
	for _, m := range certMails(sign) {
		if slices.Contains(want, m) {
			return nil
		}
	}
	return fmt.Errorf("the certificate is for %s, not for smime.cert_file's %s", orNone(certMails(sign)), strings.Join(want, ", "))
}

// certMails lists a certificate's mail addresses in lower case: its rfc822Name SANs, or, when it has
// none, the legacy emailAddress attributes of its subject.
func certMails(c *x509.Certificate) []string {
	var out []string
	for _, m := range c.EmailAddresses {
		out = append(out, strings.ToLower(m))
	}
	if len(out) > 0 {
		return out
	}
	for _, a := range c.Subject.Names {
		if s, ok := a.Value.(string); ok && a.Type.Equal(oidEmailAddress) {
			out = append(out, strings.ToLower(s))
		}
	}
	return out
}

var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

func orNone(mails []string) string {
	if len(mails) == 0 {
		return "no mail address"
	}
	return strings.Join(mails, ", ")
}

// LoadEscrowCert reads the first certificate of a PEM file and checks it can be encrypted to at now:
// not a CA, within its dates, an RSA key of 2048 bits or more or a P-256 key, key usage allowing
// key encipherment (RSA) or key agreement (EC) when the extension is present.
func LoadEscrowCert(path string, now time.Time) (*x509.Certificate, error) {
	cert, err := pemfile.LoadCertificate(path)
	if err != nil {
		return nil, err
	}
	switch {
	case cert.IsCA:
		return nil, fmt.Errorf("%s: %s is a CA certificate, not an escrow recipient's", path, cert.Subject)
	case now.Before(cert.NotBefore):
		return nil, fmt.Errorf("%s: the certificate is not valid before %s", path, cert.NotBefore.UTC().Format(time.RFC3339))
	case now.After(cert.NotAfter):
		return nil, fmt.Errorf("%s: the certificate expired on %s", path, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	var need x509.KeyUsage
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%s: the RSA key has %d bits; at least 2048 are required", path, k.N.BitLen())
		}
		need = x509.KeyUsageKeyEncipherment
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%s: the EC key is on %s; only P-256 is supported", path, k.Curve.Params().Name)
		}
		need = x509.KeyUsageKeyAgreement
	default:
		return nil, fmt.Errorf("%s: the certificate's key (%T) cannot be encrypted to; RSA or P-256 is required", path, cert.PublicKey)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&need == 0 {
		return nil, fmt.Errorf("%s: the certificate's key usage does not allow encryption to it", path)
	}
	return cert, nil
}
