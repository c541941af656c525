package configs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// resolveSMIME makes the escrow files absolute against dir.
func (c *Config) resolveSMIME(dir string) {
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

// LoadEscrowCert reads the first certificate of a PEM file and checks it can be encrypted to at now:
// not a CA, within its dates, an RSA key of 2048 bits or more or a P-256 key, key usage allowing
// key encipherment (RSA) or key agreement (EC) when the extension is present.
func LoadEscrowCert(path string, now time.Time) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, errText(err))
	}
	var blk *pem.Block
	for {
		if blk, data = pem.Decode(data); blk == nil || blk.Type == "CERTIFICATE" {
			break
		}
	}
	if blk == nil {
		return nil, fmt.Errorf("%s holds no PEM CERTIFICATE block", path)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: the certificate does not parse: %v", path, err)
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
