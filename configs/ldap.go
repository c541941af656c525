package configs

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
)

// LDAPConfig is one LDAP directory ([directory.ldap] of a [[directory]] with type = "ldap"). The
// gateway only reads it: searches as the service account, binds as a practitioner to check a password.
type LDAPConfig struct {
	URL              string            `toml:"url" default:"" doc:"For type ldap: ldaps://host[:636] (TLS from the start) or ldap://host[:389] (StartTLS before anything else is sent). Required."`
	InsecurePlain    bool              `toml:"insecure_plain" default:"false" doc:"With an ldap:// url only: skip StartTLS, so the service password and every practitioner's password cross the network in clear. For a test bench only; logged at ERROR on every start."`
	CAFile           string            `toml:"ca_file" default:"" doc:"PEM file of the CA certificates the directory server's certificate must chain to. Empty means the system's trust store."`
	TLSServerName    string            `toml:"tls_server_name" default:"" doc:"Name the server's certificate must hold. Empty means the host of url."`
	BindDN           string            `toml:"bind_dn" default:"" doc:"Service account the gateway binds as to search. Required; read access to the practitioner entries is all it needs (the gateway never writes to a directory)."`
	BindPasswordFile string            `toml:"bind_password_file" default:"" doc:"File holding the service account's password (its first line; mode 0600). Required: the password is never written in this file."`
	BaseDN           string            `toml:"base_dn" default:"" doc:"Where practitioner entries are searched for (the whole subtree). Required."`
	ConnectTimeout   Duration          `toml:"connect_timeout" default:"5s" doc:"Time allowed to connect, finish TLS and bind. Past it the request is answered as a temporary failure (SMTP 451 4.4.3, or 454 4.7.0 at sign-in)."`
	Timeout          Duration          `toml:"timeout" default:"5s" doc:"Time allowed for one search or bind; past it the request is answered as a temporary failure, never as \"no such user\"."`
	PoolSize         int               `toml:"pool_size" default:"4" doc:"Most connections kept open, bound as the service account, for look-ups and sign-in searches (1 to 64). A practitioner's own bind always uses a fresh connection that is closed afterwards."`
	CacheTTL         Duration          `toml:"cache_ttl" default:"10s" doc:"How long a look-up's answer (an entry, or no such address) is reused, 1s to 5m: a disabled account or lapsed vetting takes up to this long to count for mail to that practitioner. Sign-in is never cached."`
	Agency           string            `toml:"agency" default:"" doc:"The agency of every practitioner in this directory, whatever an entry says. Set this or agencies."`
	Agencies         []string          `toml:"agencies" default:"" doc:"The agencies entries of this directory may name (in map.agency); an entry naming another is refused. Set this or agency."`
	Map              LDAPMapConfig     `toml:"map" doc:"Which attributes hold what ([directory.ldap.map]). An empty setting takes the preset's value; \"none\" means the directory holds no such thing."`
	Groups           []LDAPGroupConfig `toml:"group" doc:"What membership of a group means ([[directory.ldap.group]], one table per group), read from map.groups (memberOf). Groups not listed give nothing."`
}

// LDAPMapConfig is the attribute map: a preset and the settings that change it.
type LDAPMapConfig struct {
	Preset      string   `toml:"preset" default:"cafgate" doc:"cafgate (the cafgate schema: configs/cafgate.schema.ldif) or active-directory (userPrincipalName or mail, displayName, company, memberOf, extensionAttribute1, userAccountControl bit 2). See configs/README-directory.md."`
	Filter      string   `toml:"filter" default:"" doc:"LDAP filter every practitioner entry matches. Preset: (objectClass=cafPractitioner) or (objectClass=user)."`
	Mail        []string `toml:"mail" default:"" doc:"Attributes holding an entry's mail addresses; look-up and sign-in match any of them. Preset: [\"mail\"] or [\"userPrincipalName\", \"mail\"]."`
	Name        []string `toml:"name" default:"" doc:"Attributes tried in order for the display name. Preset: [\"cn\", \"displayName\"] or [\"displayName\", \"cn\"]."`
	Agency      string   `toml:"agency" default:"" doc:"Attribute naming the agency (used when agency is not fixed). Preset: cafAgency or company."`
	Roles       string   `toml:"roles" default:"" doc:"Attribute whose values are cafgate role names. Preset: cafRole or none."`
	Groups      string   `toml:"groups" default:"" doc:"Attribute listing the DNs of the entry's groups, mapped by [[directory.ldap.group]]. Preset: none or memberOf."`
	Certificate string   `toml:"certificate" default:"" doc:"Attribute holding DER S/MIME certificates. Preset: userCertificate;binary."`
	Vetting     string   `toml:"vetting" default:"" doc:"Attribute holding the time vetting is valid until, as a GeneralizedTime (20271231000000Z); absent means lapsed. Preset: cafVettingValidUntil or extensionAttribute1."`
	Disabled    string   `toml:"disabled" default:"" doc:"NAME for an LDAP Boolean attribute (TRUE = disabled), or NAME:BITS for an integer attribute that means disabled when any of BITS is set. Preset: cafAccountDisabled or userAccountControl:2."`
	Sensitive   string   `toml:"sensitive" default:"" doc:"LDAP Boolean attribute, TRUE for a practitioner in a sensitive service (a group can say so too). Preset: cafSensitiveService or none."`
}

// LDAPGroupConfig is one group of the group table.
type LDAPGroupConfig struct {
	DN               string `toml:"dn" default:"" doc:"The group's DN, as map.groups lists it (compared without regard to case)."`
	Role             string `toml:"role" default:"" doc:"cafgate role its members hold: practitioner, lead-professional, safeguarding-person, agency-admin or auditor. Empty for none."`
	SensitiveService bool   `toml:"sensitive_service" default:"false" doc:"Its members work in a sensitive service (sexual health, pregnancy, mental health)."`
}

// maxLDAPCacheTTL keeps the look-up cache short: a disabled account must stop counting soon.
const maxLDAPCacheTTL = 5 * time.Minute

// resolveLDAP makes the LDAP files of c's directories absolute against dir (the configuration file's).
func resolveLDAP(l *LDAPConfig, dir string) {
	for _, p := range []*string{&l.CAFile, &l.BindPasswordFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// validateLDAP checks the [directory.ldap] settings of one directory of type ldap.
func validateLDAP(bad badFunc, l *LDAPConfig) {
	checkLDAPURL(bad, l)
	checkFile(bad, "ldap.ca_file", l.CAFile, false)
	checkKey(bad, "ldap.bind_password_file", l.BindPasswordFile, true)
	if l.BindPasswordFile != "" {
		if b, err := os.ReadFile(l.BindPasswordFile); err == nil && strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]) == "" {
			bad("ldap.bind_password_file", "%s is empty: the service account needs a password", l.BindPasswordFile)
		}
	}
	checkDN(bad, "ldap.bind_dn", l.BindDN)
	checkDN(bad, "ldap.base_dn", l.BaseDN)
	if l.ConnectTimeout <= 0 || l.Timeout <= 0 {
		bad("ldap", "connect_timeout and timeout must be greater than zero (an unlimited wait is not allowed)")
	}
	if l.PoolSize < 1 || l.PoolSize > 64 {
		bad("ldap.pool_size", "must be 1 to 64, not %d", l.PoolSize)
	}
	if l.CacheTTL.D() > maxLDAPCacheTTL || l.CacheTTL.D() < time.Second {
		bad("ldap.cache_ttl", "must be 1s to 5m: a disabled account must stop counting soon")
	}
	if (l.Agency == "") == (len(l.Agencies) == 0) {
		bad("ldap", "set agency (one agency for the whole directory) or agencies (those its entries may name), not both or neither")
	}
	validateLDAPMap(bad, &l.Map, len(l.Groups) > 0)
	for i, g := range l.Groups {
		at := "ldap.group[" + strconv.Itoa(i) + "]"
		checkDN(bad, at+".dn", g.DN)
		if g.Role != "" && !knownRole(g.Role) {
			bad(at+".role", "%q is not practitioner, lead-professional, safeguarding-person, agency-admin or auditor", g.Role)
		}
		if g.Role == "" && !g.SensitiveService {
			bad(at, "gives neither a role nor sensitive_service")
		}
	}
}

func checkLDAPURL(bad badFunc, l *LDAPConfig) {
	scheme, rest, _ := strings.Cut(l.URL, "://")
	host := strings.TrimSuffix(rest, "/")
	switch {
	case l.URL == "":
		bad("ldap.url", "is required")
	case (scheme != "ldaps" && scheme != "ldap") || host == "" || strings.ContainsAny(host, "/?@ "):
		bad("ldap.url", "%q is not ldaps://host[:port] or ldap://host[:port]", l.URL)
	case scheme == "ldaps" && l.InsecurePlain:
		bad("ldap.insecure_plain", "makes no sense with an ldaps:// url; remove it")
	}
}

func checkDN(bad badFunc, setting, dn string) {
	if dn == "" {
		bad(setting, "is required")
	} else if _, err := goldap.ParseDN(dn); err != nil {
		bad(setting, "%q is not a DN such as cn=cafgate,ou=services,dc=example,dc=org", dn)
	}
}

func validateLDAPMap(bad badFunc, m *LDAPMapConfig, groups bool) {
	if m.Preset != "cafgate" && m.Preset != "active-directory" {
		bad("ldap.map.preset", "must be cafgate or active-directory, not %q", m.Preset)
	}
	if m.Filter != "" {
		if _, err := goldap.CompileFilter(m.Filter); err != nil {
			bad("ldap.map.filter", "%q is not an LDAP filter: %v", m.Filter, err)
		}
	}
	attrs := map[string]string{"agency": m.Agency, "roles": m.Roles, "groups": m.Groups, "certificate": m.Certificate,
		"vetting": m.Vetting, "sensitive": m.Sensitive, "disabled": strings.SplitN(m.Disabled, ":", 2)[0]}
	for i, a := range m.Mail {
		attrs["mail["+strconv.Itoa(i)+"]"] = a
	}
	for i, a := range m.Name {
		attrs["name["+strconv.Itoa(i)+"]"] = a
	}
	for _, k := range sortedKeys(attrs) {
		if a := attrs[k]; a != "" && !attrName.MatchString(a) {
			bad("ldap.map."+k, "%q is not an attribute name such as mail or userCertificate;binary", a)
		}
	}
	if m.Vetting == "none" {
		bad("ldap.map.vetting", "cannot be none: without it every practitioner counts as lapsed")
	}
	if groups && (m.Groups == "none" || (m.Groups == "" && m.Preset == "cafgate")) {
		bad("ldap.map.groups", "[[directory.ldap.group]] is set but no groups attribute (memberOf) is")
	}
	if name, bits, ok := strings.Cut(m.Disabled, ":"); ok {
		if n, err := strconv.ParseInt(bits, 0, 64); err != nil || n <= 0 || name == "" {
			bad("ldap.map.disabled", "%q: write NAME or NAME:BITS (BITS a positive integer, e.g. userAccountControl:2)", m.Disabled)
		}
	}
}

// attrName is an LDAP attribute description: a name or OID with options (RFC 4512 2.5).
var attrName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*(;[A-Za-z0-9-]+)*$`)

func knownRole(r string) bool {
	switch r {
	case "practitioner", "lead-professional", "safeguarding-person", "agency-admin", "auditor":
		return true
	}
	return false
}
