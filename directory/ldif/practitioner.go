package ldif

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"cafgate/directory"
)

// The attribute map: the cafgate schema (configs/cafgate.schema.ldif) on top of inetOrgPerson.
const (
	attrMail        = "mail"
	attrCN          = "cn"
	attrDisplayName = "displayName"
	attrAgency      = "cafAgency"
	attrRole        = "cafRole"
	attrCertificate = "userCertificate" // matches userCertificate;binary too
	attrVetting     = "cafVettingValidUntil"
	attrDisabled    = "cafAccountDisabled"
	attrSensitive   = "cafSensitiveService"
	attrPassword    = "userPassword"
)

var knownRoles = map[string]directory.Role{
	string(directory.RolePractitioner):       directory.RolePractitioner,
	string(directory.RoleLeadProfessional):   directory.RoleLeadProfessional,
	string(directory.RoleSafeguardingPerson): directory.RoleSafeguardingPerson,
	string(directory.RoleAgencyAdmin):        directory.RoleAgencyAdmin,
	string(directory.RoleAuditor):            directory.RoleAuditor,
}

// toPractitioner maps an entry to a Practitioner (Mail and Directory left for the caller). A value the
// schema does not allow (unknown role, malformed time or Boolean, two values of a single-valued
// attribute) is an error: a directory that says something unexpected is not guessed at.
func toPractitioner(e Entry) (directory.Practitioner, error) {
	p := directory.Practitioner{DN: e.DN}
	var err error
	if p.Name, err = single(e, attrCN); err == nil && p.Name == "" {
		p.Name, err = single(e, attrDisplayName)
	}
	if err != nil {
		return p, err
	}
	if p.Agency, err = single(e, attrAgency); err != nil {
		return p, err
	}
	if p.Roles, err = roles(e); err != nil {
		return p, err
	}
	for _, c := range e.Get(attrCertificate) {
		p.Certificates = append(p.Certificates, append([]byte(nil), c...))
	}
	if v, err := single(e, attrVetting); err != nil {
		return p, err
	} else if v != "" {
		if p.VettingValidUntil, err = ParseGeneralizedTime(v); err != nil {
			return p, fmt.Errorf("%s: %w", attrVetting, err)
		}
	}
	if p.Disabled, err = boolean(e, attrDisabled); err != nil {
		return p, err
	}
	p.SensitiveService, err = boolean(e, attrSensitive)
	return p, err
}

// single returns the one value of a single-valued attribute, "" when absent. cn is multi-valued in
// inetOrgPerson; its first value is the name.
func single(e Entry, name string) (string, error) {
	vs := e.Get(name)
	if len(vs) == 0 {
		return "", nil
	}
	if len(vs) > 1 && name != attrCN && name != attrDisplayName {
		return "", fmt.Errorf("%s has %d values; it is single-valued", name, len(vs))
	}
	return string(vs[0]), nil
}

func roles(e Entry) ([]directory.Role, error) {
	var out []directory.Role
	for _, v := range e.Get(attrRole) {
		r, ok := knownRoles[strings.ToLower(string(v))]
		if !ok {
			return nil, fmt.Errorf("%s %q is not a cafgate role (practitioner, lead-professional, safeguarding-person, agency-admin, auditor)", attrRole, v)
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// boolean reads an LDAP Boolean (RFC 4517 3.3.3: TRUE or FALSE); absent is false.
func boolean(e Entry, name string) (bool, error) {
	v, err := single(e, name)
	switch {
	case err != nil:
		return false, err
	case v == "" || v == "FALSE":
		return false, nil
	case v == "TRUE":
		return true, nil
	}
	return false, fmt.Errorf("%s %q is not an LDAP Boolean (TRUE or FALSE)", name, v)
}

// ParseGeneralizedTime parses an LDAP GeneralizedTime (RFC 4517 3.3.13): YYYYMMDDHH, optional
// minutes, optional seconds, an optional fraction after the seconds, then Z or a +hh[mm]/-hh[mm]
// offset, e.g. 20271231000000Z. The result is in UTC.
func ParseGeneralizedTime(s string) (time.Time, error) {
	bad := fmt.Errorf("%q is not a GeneralizedTime (write it like 20271231000000Z)", s)
	zone := strings.IndexAny(s, "Z+-")
	if zone < 10 {
		return time.Time{}, bad
	}
	body, tz := s[:zone], s[zone:]
	frac := ""
	if i := strings.IndexAny(body, ".,"); i >= 0 {
		body, frac = body[:i], body[i+1:]
		if len(body) != 14 || frac == "" || !allDigits(frac) {
			return time.Time{}, bad
		}
	}
	layout := map[int]string{10: "2006010215", 12: "200601021504", 14: "20060102150405"}[len(body)]
	if layout == "" || !allDigits(body) {
		return time.Time{}, bad
	}
	t, err := time.Parse(layout, body)
	if err != nil {
		return time.Time{}, bad
	}
	if frac != "" {
		ns, _ := time.ParseDuration("0." + frac + "s")
		t = t.Add(ns)
	}
	off, err := zoneOffset(tz)
	if err != nil {
		return time.Time{}, bad
	}
	return t.Add(-off).UTC(), nil
}

func zoneOffset(tz string) (time.Duration, error) {
	if tz == "Z" {
		return 0, nil
	}
	digits := tz[1:]
	if (len(digits) != 2 && len(digits) != 4) || !allDigits(digits) {
		return 0, fmt.Errorf("bad zone")
	}
	h, m := atoi2(digits[:2]), 0
	if len(digits) == 4 {
		m = atoi2(digits[2:])
	}
	if h > 23 || m > 59 {
		return 0, fmt.Errorf("bad zone")
	}
	off := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute
	if tz[0] == '-' {
		off = -off
	}
	return off, nil
}

func allDigits(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }

func atoi2(s string) int { return int(s[0]-'0')*10 + int(s[1]-'0') }
