// Package devca is the development certificate authority of `cafgate dev`: one self-signed CA kept in
// a directory, which issues the gateway's TLS server certificate and S/MIME certificates for the
// gateway and the sample practitioners. It is for development and tests only; production certificates
// come from the agencies' own CAs.
package devca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// CommonName is the subject common name of the development CA.
const CommonName = "cafgate development CA"

// Validity periods.
const (
	caValidity    = 10 * 365 * 24 * time.Hour
	tlsValidity   = 825 * 24 * time.Hour // the CA/Browser Forum maximum of 2018, still accepted by clients
	smimeValidity = 2 * 365 * 24 * time.Hour
	backdate      = time.Hour           // tolerates clocks a little behind
	renewBefore   = 30 * 24 * time.Hour // a leaf this close to expiry is issued afresh
	caRenewBefore = 24 * time.Hour      // a CA this close to expiry is refused
	fileCA        = "ca.pem"            // name of the CA certificate file in its directory
	fileCAKey     = "ca.key"            // name of the CA key file in its directory
	serialBits    = 128                 // random serial numbers, as CA/B asks (at least 64 bits)
	dirPerm       = os.FileMode(0o700)  // directories the CA creates
)

// CA is a loaded development CA. Its methods write files and are not meant to issue the same name
// from two goroutines at once.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

// LoadOrCreate loads the CA from dir/ca.pem and dir/ca.key, or creates both on first run (ECDSA P-256,
// ten years, keyUsage certSign|crlSign, basic constraints CA with path length 0). The key is written
// 0600, atomically. A certificate without its key, a key that does not match, or a CA that has expired
// at now is an error naming the directory to remove.
func LoadOrCreate(dir string, now time.Time) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, fileCA), filepath.Join(dir, fileCAKey)
	haveCert, err := exists(certPath)
	if err != nil {
		return nil, err
	}
	if !haveCert {
		// No certificate: first run, or a crash after the key was written. Nothing was ever issued
		// by a CA whose certificate was never written, so starting afresh is safe.
		return create(dir, certPath, keyPath, now)
	}
	cert, key, err := readKeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("development CA in %s: %w (remove the directory to start a new CA)", dir, err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("development CA in %s: %s is not a CA certificate", dir, certPath)
	}
	if now.Before(cert.NotBefore) || !now.Add(caRenewBefore).Before(cert.NotAfter) {
		return nil, fmt.Errorf("development CA in %s is valid only from %s to %s (remove the directory to start a new CA)",
			dir, cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return newCA(cert, key), nil
}

func newCA(cert *x509.Certificate, key crypto.Signer) *CA {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, key: key, pool: pool}
}

func create(dir, certPath, keyPath string, now time.Time) (*CA, error) {
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl, err := caTemplate(key.Public(), now)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if err := writeKeyPair(certPath, keyPath, der, key); err != nil {
		return nil, fmt.Errorf("writing the development CA: %w", err)
	}
	return newCA(cert, key), nil
}

func caTemplate(pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	name := pkix.Name{CommonName: CommonName, Organization: []string{"cafgate development"}}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               name,
		Issuer:                name,
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski,
	}, nil
}

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPool returns a new pool holding only the CA certificate, for x509.VerifyOptions.Roots or
// tls.Config.RootCAs. Each call returns a fresh pool the caller may change.
func (ca *CA) CertPool() *x509.CertPool { return ca.pool.Clone() }

// CertPath returns the path of the CA certificate in dir, as LoadOrCreate writes it.
func CertPath(dir string) string { return filepath.Join(dir, fileCA) }

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), serialBits))
	if err != nil {
		return nil, err
	}
	if n.Sign() == 0 {
		return nil, errors.New("zero serial number") // 2^-128; refuse rather than issue it
	}
	return n, nil
}

// subjectKeyID is the SHA-1 of the subjectPublicKey bit string (RFC 5280 4.2.1.2 method 1), the form
// that CMS recipient and signer identifiers by subject key identifier expect.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, err
	}
	sum := sha1.Sum(info.PublicKey.Bytes)
	return sum[:], nil
}
