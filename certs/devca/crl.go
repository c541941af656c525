package devca

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"cafgate/certs/pemfile"
)

// Files the CRL support keeps in the directory its caller names (usually the CA's own directory).
const (
	fileRevoked = "revoked.json" // the revocations, JSON
	fileCRL     = "ca.crl"       // the last CRL written, DER
	fileCRLPEM  = "ca.crl.pem"   // the same CRL, PEM
)

// CRL reason codes (RFC 5280 5.3.1) the development CA uses.
const (
	ReasonUnspecified     = 0
	ReasonKeyCompromise   = 1
	ReasonSuperseded      = 4
	ReasonCessation       = 5
	ReasonCertificateHold = 6
)

// Revocation is one revoked certificate as revoked.json keeps it.
type Revocation struct {
	Serial string    `json:"serial"` // hexadecimal
	At     time.Time `json:"at"`
	Reason int       `json:"reason"`
	Mail   string    `json:"mail,omitempty"` // the certificate's first rfc822Name, for people reading the file
}

// Revoke records cert, which this CA issued, as revoked at at for reason, in dir/revoked.json. Revoking a
// certificate twice keeps the first record. The CRLs CRL and WriteCRL make from then on list it.
func (ca *CA) Revoke(dir string, cert *x509.Certificate, reason int, at time.Time) error {
	if err := cert.CheckSignatureFrom(ca.cert); err != nil {
		return fmt.Errorf("devca: the certificate to revoke was not issued by this CA: %w", err)
	}
	if reason < 0 || reason > 10 || reason == 7 {
		return fmt.Errorf("devca: %d is not a CRL reason code", reason)
	}
	revs, err := ca.Revocations(dir)
	if err != nil {
		return err
	}
	serial := cert.SerialNumber.Text(16)
	if slices.ContainsFunc(revs, func(r Revocation) bool { return r.Serial == serial }) {
		return nil
	}
	r := Revocation{Serial: serial, At: at.UTC().Truncate(time.Second), Reason: reason}
	if len(cert.EmailAddresses) > 0 {
		r.Mail = cert.EmailAddresses[0]
	}
	data, err := json.MarshalIndent(append(revs, r), "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, fileRevoked), append(data, '\n'), 0o644)
}

// RevokeFile revokes the PEM certificate at certPath (see Revoke).
func (ca *CA) RevokeFile(dir, certPath string, reason int, at time.Time) error {
	cert, err := pemfile.LoadCertificate(certPath)
	if err != nil {
		return err
	}
	return ca.Revoke(dir, cert, reason, at)
}

// Revocations returns the revocations recorded in dir (none when there is no file yet).
func (ca *CA) Revocations(dir string) ([]Revocation, error) {
	data, err := os.ReadFile(filepath.Join(dir, fileRevoked))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var revs []Revocation
	if err := json.Unmarshal(data, &revs); err != nil {
		return nil, fmt.Errorf("devca: %s: %w", filepath.Join(dir, fileRevoked), err)
	}
	return revs, nil
}

// CRL returns a DER CRL (v2, signed by the CA key) listing dir's revocations, with thisUpdate at now and
// nextUpdate validity later, and a CRL number that grows with now.
func (ca *CA) CRL(dir string, now time.Time, validity time.Duration) ([]byte, error) {
	if validity <= 0 {
		return nil, errors.New("devca: a CRL needs a positive validity")
	}
	revs, err := ca.Revocations(dir)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(now.UnixNano()),
		ThisUpdate: now.UTC(),
		NextUpdate: now.Add(validity).UTC(),
	}
	for _, r := range revs {
		serial, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return nil, fmt.Errorf("devca: revoked.json: bad serial %q", r.Serial)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: serial, RevocationTime: r.At, ReasonCode: r.Reason})
	}
	return x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
}

// WriteCRL writes CRL's result to dir/ca.crl (DER, as a distribution point serves it) and
// dir/ca.crl.pem, and returns the DER file's path.
func (ca *CA) WriteCRL(dir string, now time.Time, validity time.Duration) (string, error) {
	der, err := ca.CRL(dir, now, validity)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fileCRL)
	if err := writeFileAtomic(path, der, 0o644); err != nil {
		return "", err
	}
	pemData := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	return path, writeFileAtomic(filepath.Join(dir, fileCRLPEM), pemData, 0o644)
}

// checkCRLURL accepts an http or https URL with a host, or a file URL with an absolute path.
func checkCRLURL(crlURL string) error {
	u, err := url.Parse(crlURL)
	switch {
	case err != nil:
		return fmt.Errorf("devca: %q is not a URL", crlURL)
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
	case u.Scheme == "file" && filepath.IsAbs(u.Path):
	default:
		return fmt.Errorf("devca: %q is not an http, https or absolute file URL", crlURL)
	}
	return nil
}

// IssueSMIMEWithCRL is IssueSMIME for a certificate that names crlURL (http, https, or a file URL
// such as CRLFileURL's for a validator given the directory) as its CRL distribution point, so validators fetch this CA's CRL from there. Existing files are reused only when
// they name the same URL (and pass IssueSMIME's own reuse rules).
func (ca *CA) IssueSMIMEWithCRL(dir, mail, name, crlURL string, now time.Time) (certPath, keyPath string, err error) {
	if err := checkCRLURL(crlURL); err != nil {
		return "", "", err
	}
	mail, err = checkSubject(mail, name)
	if err != nil {
		return "", "", err
	}
	certPath, keyPath = filepath.Join(dir, mail+".pem"), filepath.Join(dir, mail+".key")
	reuse := func(c *x509.Certificate) bool {
		return len(c.EmailAddresses) == 1 && strings.EqualFold(c.EmailAddresses[0], mail) &&
			c.Subject.CommonName == name && slices.Equal(c.CRLDistributionPoints, []string{crlURL}) &&
			ca.chains(c, x509.ExtKeyUsageEmailProtection, now)
	}
	issue := func() (*x509.Certificate, crypto.Signer, error) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, nil, err
		}
		tmpl, err := leafTemplate(key.Public(), now, smimeValidity)
		if err != nil {
			return nil, nil, err
		}
		tmpl.Subject = pkix.Name{CommonName: name, Organization: []string{"cafgate development"},
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidEmailAddress, Value: asn1IA5(mail)}}}
		tmpl.EmailAddresses = []string{mail}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
		tmpl.CRLDistributionPoints = []string{crlURL}
		return tmpl, key, nil
	}
	return certPath, keyPath, ca.reuseOrIssue(dir, certPath, keyPath, reuse, issue)
}

// CRLFileURL is the file URL of the DER CRL WriteCRL writes in dir (absolute), for certificates whose
// validator reads CRLs from that directory (validate.Options.CRLDirs).
func CRLFileURL(dir string) (string, error) {
	abs, err := filepath.Abs(filepath.Join(dir, fileCRL))
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String(), nil
}
