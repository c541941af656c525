package validate

import (
	"crypto/x509"
	"encoding/asn1"
	"strings"
)

var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// checkMail requires the directory's address among the certificate's rfc822Name SANs or, for a
// certificate with none, its subject emailAddress attributes (RFC 8550 3). Addresses compare without
// regard to case.
func checkMail(c *x509.Certificate, mail string) *Error {
	mail = strings.TrimSpace(mail)
	if mail == "" {
		return failure(MailMismatch, nil, "The directory gives no mail address to match the certificate against.")
	}
	for _, a := range certMails(c) {
		if strings.EqualFold(a, mail) {
			return nil
		}
	}
	return failure(MailMismatch, nil, "The certificate is not for the practitioner's mail address in the directory.")
}

// certMails returns the rfc822Name SANs, or the subject emailAddress values when there are none.
func certMails(c *x509.Certificate) []string {
	if len(c.EmailAddresses) > 0 {
		return c.EmailAddresses
	}
	var out []string
	for _, n := range c.Subject.Names {
		if n.Type.Equal(oidEmailAddress) {
			if s, ok := n.Value.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}
