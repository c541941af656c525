package devca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// loopbackHosts are always in a TLS certificate, so the development gateway answers on loopback by any
// of its names.
var loopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// oidEmailAddress is PKCS#9 emailAddress, the legacy subject attribute many S/MIME clients still show.
var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// IssueTLS returns dir/name.pem and dir/name.key: a TLS server certificate (ECDSA P-256, EKU serverAuth,
// 825 days) for hosts plus localhost, 127.0.0.1 and ::1. Entries of hosts that parse as IP addresses
// become IP SANs, the rest DNS SANs. Existing files are reused when they hold a certificate of this CA
// for exactly these hosts, valid at now for another 30 days, with its key; otherwise they are replaced.
func (ca *CA) IssueTLS(dir, name string, hosts []string, now time.Time) (certPath, keyPath string, err error) {
	if err := checkFileName(name); err != nil {
		return "", "", err
	}
	dnsNames, ips, err := splitHosts(append(slices.Clone(hosts), loopbackHosts...))
	if err != nil {
		return "", "", err
	}
	certPath, keyPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	reuse := func(c *x509.Certificate) bool {
		return sameStrings(c.DNSNames, dnsNames) && sameIPs(c.IPAddresses, ips) &&
			ca.chains(c, x509.ExtKeyUsageServerAuth, now)
	}
	issue := func() (*x509.Certificate, crypto.Signer, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl, err := leafTemplate(key.Public(), now, tlsValidity)
		if err != nil {
			return nil, nil, err
		}
		tmpl.Subject = pkix.Name{CommonName: firstHost(dnsNames, ips), Organization: []string{"cafgate development"}}
		tmpl.DNSNames, tmpl.IPAddresses = dnsNames, ips
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		return tmpl, key, nil
	}
	return certPath, keyPath, ca.reuseOrIssue(dir, certPath, keyPath, reuse, issue)
}

// IssueSMIME returns dir/<mail>.pem and dir/<mail>.key (mail in lower case): an S/MIME certificate for
// mail (RSA-2048, keyUsage digitalSignature|keyEncipherment, EKU emailProtection, two years, mail in the
// rfc822Name SAN and the subject emailAddress, name as common name) and its PKCS#8 key (0600). Existing
// files are reused when they hold a certificate of this CA for this mail and name, valid at now for
// another 30 days, with its key; otherwise they are replaced.
func (ca *CA) IssueSMIME(dir, mail, name string, now time.Time) (certPath, keyPath string, err error) {
	mail, err = checkSubject(mail, name)
	if err != nil {
		return "", "", err
	}
	certPath, keyPath = filepath.Join(dir, mail+".pem"), filepath.Join(dir, mail+".key")
	reuse := func(c *x509.Certificate) bool {
		return len(c.EmailAddresses) == 1 && strings.EqualFold(c.EmailAddresses[0], mail) &&
			c.Subject.CommonName == name && ca.chains(c, x509.ExtKeyUsageEmailProtection, now)
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
		return tmpl, key, nil
	}
	return certPath, keyPath, ca.reuseOrIssue(dir, certPath, keyPath, reuse, issue)
}

// reuseOrIssue keeps the pair at certPath/keyPath when it loads and reuse approves it, else signs the
// template issue returns and writes the new pair.
func (ca *CA) reuseOrIssue(dir, certPath, keyPath string, reuse func(*x509.Certificate) bool,
	issue func() (*x509.Certificate, crypto.Signer, error)) error {
	if ok, err := exists(certPath); err != nil {
		return err
	} else if ok {
		if c, _, err := readKeyPair(certPath, keyPath); err == nil && reuse(c) {
			return nil
		}
	}
	tmpl, key, err := issue()
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return err
	}
	return writeKeyPair(certPath, keyPath, der, key)
}

func leafTemplate(pub crypto.PublicKey, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-backdate)
	return &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validity),
		BasicConstraintsValid: true,
		SubjectKeyId:          ski,
	}, nil
}

// chains reports whether c was issued by this CA for usage and stays valid from now for renewBefore.
func (ca *CA) chains(c *x509.Certificate, usage x509.ExtKeyUsage, now time.Time) bool {
	if !now.Add(renewBefore).Before(c.NotAfter) {
		return false
	}
	_, err := c.Verify(x509.VerifyOptions{Roots: ca.pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err == nil
}

func splitHosts(hosts []string) (dnsNames []string, ips []net.IP, err error) {
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		if h == "" || strings.ContainsAny(h, " /\\@:") {
			return nil, nil, fmt.Errorf("devca: %q is neither a host name nor an IP address", h)
		}
		if !slices.Contains(dnsNames, h) {
			dnsNames = append(dnsNames, h)
		}
	}
	return dnsNames, ips, nil
}

func firstHost(dnsNames []string, ips []net.IP) string {
	if len(dnsNames) > 0 {
		return dnsNames[0]
	}
	return ips[0].String()
}

func sameStrings(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(s string) bool {
		return !slices.ContainsFunc(b, func(t string) bool { return strings.EqualFold(s, t) })
	})
}

func sameIPs(a, b []net.IP) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(ip net.IP) bool { return !slices.ContainsFunc(b, ip.Equal) })
}

// checkFileName refuses names that would leave the directory or hide the file.
func checkFileName(name string) error {
	if name == "" || name == "." || name == ".." || strings.HasPrefix(name, ".") ||
		strings.ContainsAny(name, `/\`+"\x00") {
		return fmt.Errorf("devca: %q is not a plain file name", name)
	}
	return nil
}

// checkMail accepts a plain addr-spec whose characters are safe in a file name.
func checkMail(mail string) error {
	at := strings.LastIndexByte(mail, '@')
	if at <= 0 || at == len(mail)-1 || strings.Count(mail, "@") != 1 {
		return fmt.Errorf("devca: %q is not a mail address", mail)
	}
	for _, r := range mail {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("@.-_+", r)) {
			return fmt.Errorf("devca: mail address %q has a character the development CA does not handle", mail)
		}
	}
	if strings.HasPrefix(mail, ".") || strings.Contains(mail, "..") {
		return fmt.Errorf("devca: %q is not a mail address", mail)
	}
	return checkFileName(mail)
}

// asn1IA5 makes the emailAddress value an IA5String, as PKCS#9 requires (the default would be a
// PrintableString, which cannot hold '@').
func asn1IA5(s string) asn1.RawValue {
	return asn1.RawValue{Tag: asn1.TagIA5String, Class: asn1.ClassUniversal, Bytes: []byte(s)}
}

// IssueSMIMESigning returns dir/<file>.pem and dir/<file>.key: a signing-only S/MIME certificate for
// mail (ECDSA P-256, keyUsage digitalSignature, EKU emailProtection, two years, mail in the rfc822Name
// SAN and the subject emailAddress, name as common name, crlURL as its CRL distribution point) and its
// PKCS#8 key (0600). It is the gateway's signing certificate beside its RSA one (IssueSMIMEWithCRL),
// which keeps decrypting; file keeps the two apart. Existing files are reused when they hold a
// certificate of this CA for this mail, name and CRL URL, a P-256 signing-only key, valid at now for
// another 30 days, with its key; otherwise they are replaced.
func (ca *CA) IssueSMIMESigning(dir, file, mail, name, crlURL string, now time.Time) (certPath, keyPath string, err error) {
	if err := checkCRLURL(crlURL); err != nil {
		return "", "", err
	}
	if err := checkFileName(file); err != nil {
		return "", "", err
	}
	mail, err = checkSubject(mail, name)
	if err != nil {
		return "", "", err
	}
	certPath, keyPath = filepath.Join(dir, file+".pem"), filepath.Join(dir, file+".key")
	reuse := func(c *x509.Certificate) bool {
		k, ok := c.PublicKey.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P256() && c.KeyUsage == x509.KeyUsageDigitalSignature &&
			len(c.EmailAddresses) == 1 && strings.EqualFold(c.EmailAddresses[0], mail) &&
			c.Subject.CommonName == name && slices.Equal(c.CRLDistributionPoints, []string{crlURL}) &&
			ca.chains(c, x509.ExtKeyUsageEmailProtection, now)
	}
	issue := func() (*x509.Certificate, crypto.Signer, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
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
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
		tmpl.CRLDistributionPoints = []string{crlURL}
		return tmpl, key, nil
	}
	return certPath, keyPath, ca.reuseOrIssue(dir, certPath, keyPath, reuse, issue)
}

// checkSubject checks an S/MIME certificate's mail address and name and returns the address in lower
// case.
func checkSubject(mail, name string) (string, error) {
	mail = strings.ToLower(mail)
	if err := checkMail(mail); err != nil {
		return "", err
	}
	if strings.TrimSpace(name) == "" {
		return "", fmt.Errorf("devca: empty name for %s", mail)
	}
	return mail, nil
}
