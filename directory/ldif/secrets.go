package ldif

import (
	"slices"
	"strings"
)

// WithSecrets returns copies of entries in which each entry whose mail is a key of passwords has its
// userPassword replaced by the {SSHA} hash of that password, and each entry whose mail is a key of
// certs has its userCertificate values replaced by "userCertificate;binary" holding that DER
// certificate. Mail keys are compared case-insensitively; empty passwords and certificates are skipped.
// The inputs are not changed.
func WithSecrets(entries []Entry, passwords map[string]string, certs map[string][]byte) []Entry {
	pw := map[string]string{}
	for m, p := range passwords {
		if p != "" {
			pw[strings.ToLower(m)] = p
		}
	}
	cs := map[string][]byte{}
	for m, c := range certs {
		if len(c) > 0 {
			cs[strings.ToLower(m)] = c
		}
	}
	out := make([]Entry, len(entries))
	for i, e := range entries {
		out[i] = withSecrets(e, pw, cs)
	}
	return out
}

func withSecrets(e Entry, passwords map[string]string, certs map[string][]byte) Entry {
	var (
		password string
		cert     []byte
	)
	for _, m := range e.Get(attrMail) {
		mail := strings.ToLower(string(m))
		if p, ok := passwords[mail]; ok && password == "" {
			password = p
		}
		if c, ok := certs[mail]; ok && cert == nil {
			cert = c
		}
	}
	out := Entry{DN: e.DN}
	for _, a := range e.Attrs {
		key := attrKey(a.Name)
		if password != "" && key == strings.ToLower(attrPassword) ||
			cert != nil && strings.SplitN(key, ";", 2)[0] == strings.ToLower(attrCertificate) {
			continue
		}
		out.Attrs = append(out.Attrs, Attr{Name: a.Name, Value: slices.Clone(a.Value)})
	}
	if password != "" {
		out.Attrs = append(out.Attrs, Attr{Name: attrPassword, Value: []byte(HashSSHA(password))})
	}
	if cert != nil {
		out.Attrs = append(out.Attrs, Attr{Name: attrCertificate + ";binary", Value: slices.Clone(cert)})
	}
	return out
}
