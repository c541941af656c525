package validate

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// AnyAgency in Anchor.Agencies makes an anchor vouch for practitioners of every agency.
const AnyAgency = "*"

// Anchor is one trust anchor: the root certificates of one CA (or of several an agency trusts), the
// agencies whose practitioners' certificates must chain to it, and how strict revocation is.
type Anchor struct {
	Name          string              // for results and logs
	Agencies      []string            // agency names as the directory gives them (case-insensitive), or AnyAgency
	Roots         []*x509.Certificate // trusted roots
	Intermediates []*x509.Certificate // CA certificates that may complete a chain (not trusted by themselves)
	// SoftRevocation lets a certificate whose revocation status cannot be learned pass with a warning;
	// by default (false) it fails with RevocationUnknown.
	SoftRevocation bool
}

func (a *Anchor) serves(agency string) bool {
	return slices.ContainsFunc(a.Agencies, func(s string) bool {
		return s == AnyAgency || (agency != "" && strings.EqualFold(s, agency))
	})
}

// LoadPEMCertificates reads every CERTIFICATE block of a PEM file. A file with none is an error.
func LoadPEMCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New(path + ": no PEM CERTIFICATE block")
	}
	return certs, nil
}
