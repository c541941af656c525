// Package cmstest makes throw-away certificate authorities and S/MIME certificates (RSA-2048,
// RSA-4096, ECDSA P-256) for tests of cafgate/envelope/cms, envelope/smime and the integration suite.
// Nothing here is for production use.
package cmstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// KeyType is the key of an issued certificate.
type KeyType int

// The key types.
const (
	RSA2048 KeyType = iota
	RSA4096
	P256
)

// String names the key type.
func (k KeyType) String() string {
	return [...]string{"RSA-2048", "RSA-4096", "P-256"}[k]
}

// CA is a self-signed ECDSA P-256 CA valid from an hour before now for a day.
type CA struct {
	Cert   *x509.Certificate
	Key    crypto.Signer
	Roots  *x509.CertPool
	now    time.Time
	serial atomic.Int64
}

// Leaf is an issued S/MIME certificate and its key.
type Leaf struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA makes a CA named name.
func NewCA(name string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{Cert: cert, Key: key, Roots: x509.NewCertPool(), now: now}
	ca.Roots.AddCert(cert)
	ca.serial.Store(1)
	return ca, nil
}

// Issue makes an S/MIME certificate for mail (EKU emailProtection, the mail in the SAN, a
// subjectKeyIdentifier; keyUsage digitalSignature with keyEncipherment for RSA, keyAgreement for EC).
func (ca *CA) Issue(mail string, kt KeyType) (Leaf, error) {
	var key crypto.Signer
	var err error
	usage := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	switch kt {
	case RSA2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case RSA4096:
		key, err = rsa.GenerateKey(rand.Reader, 4096)
	case P256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		usage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement
	}
	if err != nil {
		return Leaf{}, err
	}
	return ca.IssueKey(mail, key, usage)
}

// IssueKey makes an S/MIME certificate for mail with the given key and key usage.
func (ca *CA) IssueKey(mail string, key crypto.Signer, usage x509.KeyUsage) (Leaf, error) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial.Add(1)), Subject: pkix.Name{CommonName: mail},
		NotBefore: ca.now.Add(-time.Hour), NotAfter: ca.now.Add(24 * time.Hour),
		KeyUsage: usage, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses: []string{mail}, SubjectKeyId: SubjectKeyID(key.Public()),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return Leaf{}, err
	}
	c, err := x509.ParseCertificate(der)
	return Leaf{Cert: c, Key: key}, err
}

// SubjectKeyID is the RFC 5280 method 1 key identifier.
func SubjectKeyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		panic(err)
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:]
}

// WritePEM writes the leaf's certificate and PKCS#8 key as dir/name.pem and dir/name.key.
func (l Leaf) WritePEM(dir, name string) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	k, err := x509.MarshalPKCS8PrivateKey(l.Key)
	if err != nil {
		return "", "", err
	}
	if err := WriteCert(certPath, l.Cert); err != nil {
		return "", "", err
	}
	return certPath, keyPath, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), 0o600)
}

// WriteCert writes a certificate as PEM.
func WriteCert(path string, c *x509.Certificate) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o600)
}
