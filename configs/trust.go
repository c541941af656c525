package configs

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TrustConfig is S/MIME certificate validation: the trust anchors practitioners' certificates must chain
// to, per agency, and how revocation is checked.
type TrustConfig struct {
	FetchTimeout Duration      `toml:"fetch_timeout" default:"10s" doc:"Time allowed for one CRL download or one OCSP answer."`
	MaxCRLSize   Size          `toml:"max_crl_size" default:"16MiB" doc:"Largest CRL downloaded; a larger one counts as no answer."`
	RetryAfter   Duration      `toml:"retry_after" default:"1m" doc:"After a CRL download or an OCSP request fails, how long the same address is not tried again (the status is unknown meanwhile)."`
	Anchors      []TrustAnchor `toml:"anchor" doc:"Trust anchors, one [[trust.anchor]] table each. A practitioner's certificate is used only if it chains to an anchor that lists the practitioner's agency (or \"*\"), its key usage allows the use, it is within its validity dates, it is for the practitioner's mail address in the directory, and it is not revoked (OCSP where the certificate names a responder, else the CRL of its distribution point, cached until its nextUpdate). Without anchors no certificate is trusted."`
}

// TrustAnchor is one trust anchor.
type TrustAnchor struct {
	Name              string   `toml:"name" default:"" doc:"Short name of the anchor, used in logs and the ledger. Required, unique."`
	Agencies          []string `toml:"agencies" default:"" doc:"Agencies, as the directory names them (case-insensitive), whose practitioners' certificates must chain to this anchor; \"*\" for every agency. Required."`
	CAFile            string   `toml:"ca_file" default:"" doc:"PEM file of the anchor's root CA certificates. Required."`
	IntermediatesFile string   `toml:"intermediates_file" default:"" doc:"PEM file of intermediate CA certificates that may complete a chain; they are not trusted by themselves. Optional."`
	Revocation        string   `toml:"revocation" default:"strict" doc:"strict: a certificate whose revocation status cannot be learned (no CRL or OCSP answer) is not used: nothing is encrypted to it and a signature by it is refused. soft: it is used, and a warning is logged and recorded."`
}

// resolveTrust fills the anchors' defaults (array tables get none from the struct tags) and makes their
// file paths absolute against dir. The lead calls it from Config.resolve.
func (c *Config) resolveTrust(dir string) {
	for i := range c.Trust.Anchors {
		a := &c.Trust.Anchors[i]
		if a.Revocation == "" {
			a.Revocation = "strict"
		}
		for _, p := range []*string{&a.CAFile, &a.IntermediatesFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
		for j, ag := range a.Agencies {
			a.Agencies[j] = strings.TrimSpace(ag)
		}
	}
}

// validateTrust checks [trust] and its anchors, reading each anchor's PEM files. The lead calls it from
// Config.validate.
func (c *Config) validateTrust(file string) Problems {
	var ps Problems
	bad := func(setting, format string, args ...any) {
		ps = append(ps, Problem{File: file, Setting: setting, Message: fmt.Sprintf(format, args...)})
	}
	if c.Trust.FetchTimeout <= 0 {
		bad("trust.fetch_timeout", "must be greater than zero")
	}
	if c.Trust.MaxCRLSize <= 0 {
		bad("trust.max_crl_size", "must be greater than zero")
	}
	if c.Trust.RetryAfter <= 0 {
		bad("trust.retry_after", "must be greater than zero")
	}
	names := map[string]bool{}
	for i, a := range c.Trust.Anchors {
		at := fmt.Sprintf("trust.anchor[%d].", i)
		switch {
		case a.Name == "":
			bad(at+"name", "is required")
		case names[a.Name]:
			bad(at+"name", "%q is used by another anchor", a.Name)
		}
		names[a.Name] = true
		if len(a.Agencies) == 0 {
			bad(at+"agencies", "is required: list the agencies this anchor vouches for, or \"*\"")
		}
		for _, ag := range a.Agencies {
			if ag == "" {
				bad(at+"agencies", "holds an empty name")
			}
		}
		if a.Revocation != "strict" && a.Revocation != "soft" {
			bad(at+"revocation", "must be strict or soft, not %q", a.Revocation)
		}
		if a.CAFile == "" {
			bad(at+"ca_file", "is required")
		} else if err := checkPEMCerts(a.CAFile); err != nil {
			bad(at+"ca_file", "%v", err)
		}
		if a.IntermediatesFile != "" {
			if err := checkPEMCerts(a.IntermediatesFile); err != nil {
				bad(at+"intermediates_file", "%v", err)
			}
		}
	}
	return ps
}

// checkPEMCerts requires a readable PEM file of at least one certificate, each a CA certificate. An anchor
// need not be self-signed: an agency may trust a sub-CA of a wider hierarchy.
func checkPEMCerts(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %v", path, errText(err))
	}
	n := 0
	for {
		var blk *pem.Block
		if blk, data = pem.Decode(data); blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return fmt.Errorf("%s: certificate %d does not parse: %v", path, n+1, err)
		}
		if !cert.IsCA {
			return fmt.Errorf("%s: certificate %d (%s) is not a CA certificate", path, n+1, cert.Subject)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%s holds no PEM CERTIFICATE block", path)
	}
	return nil
}
