// Package pemfile reads certificates and private keys from PEM files, for the configuration checks and
// the development CA.
package pemfile

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// LoadKey reads the first PEM private key of a file: PKCS#8, or SEC 1 (EC PRIVATE KEY) or PKCS#1
// (RSA PRIVATE KEY); other blocks before it (a certificate) are skipped. It must be able to sign.
func LoadKey(path string) (crypto.Signer, error) {
	blk, err := firstBlock(path, "PRIVATE KEY", func(typ string) bool { return strings.HasSuffix(typ, "PRIVATE KEY") })
	if err != nil {
		return nil, err
	}
	var k any
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("%s: %s is not a private key format the gateway reads (PKCS#8, SEC 1 or PKCS#1)", path, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: the key does not parse: %v", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: a %T key cannot sign", path, k)
	}
	return s, nil
}

// LoadCertificate reads the first CERTIFICATE block of a PEM file; other blocks before it are skipped.
func LoadCertificate(path string) (*x509.Certificate, error) {
	blk, err := firstBlock(path, "CERTIFICATE", func(typ string) bool { return typ == "CERTIFICATE" })
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: the certificate does not parse: %v", path, err)
	}
	return cert, nil
}

// firstBlock returns the first PEM block of the file at path whose type match accepts; what names
// the kind of block in the error when there is none.
func firstBlock(path, what string, match func(typ string) bool) (*pem.Block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			err = pe.Err // the path is said once
		}
		return nil, fmt.Errorf("cannot read %s: %v", path, err)
	}
	for {
		var blk *pem.Block
		if blk, data = pem.Decode(data); blk == nil {
			return nil, fmt.Errorf("%s holds no PEM %s block", path, what)
		}
		if match(blk.Type) {
			return blk, nil
		}
	}
}
