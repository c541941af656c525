package ldap

import (
	"fmt"
	"strconv"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"

	"cafgate/directory"
)

// Map says which attributes of an entry hold what the gateway needs. An empty attribute name means
// the directory holds no such thing (no roles attribute, no sensitive-service flag, ...).
type Map struct {
	// Filter is what every practitioner entry matches, ANDed with the mail match,
	// e.g. (objectClass=cafPractitioner).
	Filter string
	// Mail lists the attributes that hold an entry's mail addresses; a look-up matches any of them.
	Mail []string
	// Name lists the attributes tried in order for the display name; the first value found wins.
	Name []string
	// Agency is the attribute naming the entry's agency; unused when Options.Agency is set.
	Agency string
	// Roles is an attribute whose values are cafgate role names (practitioner, lead-professional, ...).
	Roles string
	// Groups is an attribute listing the DNs of the groups the entry belongs to (memberOf);
	// GroupRoles says what membership of each group means. Groups not listed there are ignored.
	Groups     string
	GroupRoles []GroupRole
	// Certificate holds DER S/MIME certificates, e.g. userCertificate;binary.
	Certificate string
	// Vetting holds the time vetting is valid until, as a GeneralizedTime; absent means lapsed.
	Vetting string
	// Disabled is the attribute that says an account is disabled: an LDAP Boolean (TRUE/FALSE) when
	// DisabledBits is 0, else an integer whose value ANDed with DisabledBits is non-zero when disabled
	// (Active Directory: userAccountControl, bit 2).
	Disabled     string
	DisabledBits int64
	// Sensitive is an LDAP Boolean attribute, TRUE for practitioners in a sensitive service.
	Sensitive string
}

// GroupRole is what membership of one group means.
type GroupRole struct {
	DN               string
	Role             directory.Role // "" when the group grants no role
	SensitiveService bool           // members work in a sensitive service
}

// CafgateMap is the map of the cafgate schema (configs/cafgate.schema.ldif) on inetOrgPerson.
func CafgateMap() Map {
	return Map{
		Filter:      "(objectClass=cafPractitioner)",
		Mail:        []string{"mail"},
		Name:        []string{"cn", "displayName"},
		Agency:      "cafAgency",
		Roles:       "cafRole",
		Certificate: "userCertificate;binary",
		Vetting:     "cafVettingValidUntil",
		Disabled:    "cafAccountDisabled",
		Sensitive:   "cafSensitiveService",
	}
}

// ActiveDirectoryMap is the Active Directory style map: userPrincipalName or mail, displayName,
// company, roles from memberOf through the group table (GroupRoles, to be filled in), vetting in
// extensionAttribute1 and disabled when userAccountControl has bit 2 (ACCOUNTDISABLE) set.
func ActiveDirectoryMap() Map {
	return Map{
		Filter:       "(objectClass=user)",
		Mail:         []string{"userPrincipalName", "mail"},
		Name:         []string{"displayName", "cn"},
		Agency:       "company",
		Groups:       "memberOf",
		Certificate:  "userCertificate;binary",
		Vetting:      "extensionAttribute1",
		Disabled:     "userAccountControl",
		DisabledBits: 2,
	}
}

// Preset returns the map called name: "cafgate" or "active-directory".
func Preset(name string) (Map, error) {
	switch name {
	case "cafgate", "":
		return CafgateMap(), nil
	case "active-directory":
		return ActiveDirectoryMap(), nil
	}
	return Map{}, fmt.Errorf("attribute map %q is not cafgate or active-directory", name)
}

// ParseDisabled reads a disabled setting: "attr" (an LDAP Boolean) or "attr:BITS" (an integer attribute,
// disabled when any of BITS is set, e.g. userAccountControl:2).
func ParseDisabled(s string) (attr string, bits int64, err error) {
	attr, num, ok := strings.Cut(s, ":")
	if !ok {
		return attr, 0, nil
	}
	bits, err = strconv.ParseInt(num, 0, 64)
	if err != nil || bits <= 0 {
		return "", 0, fmt.Errorf("%q: write the disabled attribute as NAME or NAME:BITS with BITS a positive integer", s)
	}
	return attr, bits, nil
}

// check reports a map the directory could not be searched or read with.
func (m Map) check() error {
	if _, err := goldap.CompileFilter(m.Filter); err != nil {
		return fmt.Errorf("filter %q: %v", m.Filter, err)
	}
	if len(m.Mail) == 0 {
		return fmt.Errorf("no mail attribute")
	}
	if m.Vetting == "" {
		return fmt.Errorf("no vetting attribute: every entry would count as lapsed")
	}
	for _, a := range m.attributes() {
		if !validAttr(a) {
			return fmt.Errorf("%q is not an attribute name", a)
		}
	}
	for _, g := range m.GroupRoles {
		if _, err := goldap.ParseDN(g.DN); err != nil || g.DN == "" {
			return fmt.Errorf("group %q is not a DN", g.DN)
		}
		if _, ok := knownRole(string(g.Role)); g.Role != "" && !ok {
			return fmt.Errorf("group %q: %q is not a cafgate role", g.DN, g.Role)
		}
	}
	if len(m.GroupRoles) > 0 && m.Groups == "" {
		return fmt.Errorf("groups are listed but no groups attribute (memberOf) is set")
	}
	return nil
}

// attributes lists every attribute the map reads, for the search request.
func (m Map) attributes() []string {
	var out []string
	add := func(names ...string) {
		for _, n := range names {
			if n != "" && !containsFold(out, n) {
				out = append(out, n)
			}
		}
	}
	add(m.Mail...)
	add(m.Name...)
	add(m.Agency, m.Roles, m.Groups, m.Certificate, m.Vetting, m.Disabled, m.Sensitive)
	return out
}

// validAttr accepts an attribute description: a name or OID with options (RFC 4512 2.5), no more.
func validAttr(s string) bool {
	if s == "" {
		return false
	}
	for _, part := range strings.Split(s, ";") {
		if part == "" {
			return false
		}
		for _, c := range part {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				return false
			}
		}
	}
	return true
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

var roles = []directory.Role{directory.RolePractitioner, directory.RoleLeadProfessional,
	directory.RoleSafeguardingPerson, directory.RoleAgencyAdmin, directory.RoleAuditor}

func knownRole(s string) (directory.Role, bool) {
	for _, r := range roles {
		if strings.EqualFold(s, string(r)) {
			return r, true
		}
	}
	return "", false
}
