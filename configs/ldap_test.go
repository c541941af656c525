package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ldapDirectory is a [[directory]] of type ldap in the Active Directory style, with relative paths.
const ldapDirectory = `
[[directory]]
name = "eastshire-police"
type = "ldap"
domains = ["police.eastshire.example"]

[directory.ldap]
url = "ldaps://dc1.police.eastshire.example"
ca_file = "ldap/police-ca.pem"
bind_dn = "CN=svc-cafgate,OU=Service Accounts,DC=police,DC=eastshire,DC=example"
bind_password_file = "ldap/police.password"
base_dn = "OU=Users,DC=police,DC=eastshire,DC=example"
agency = "Eastshire Police"

[directory.ldap.map]
preset = "active-directory"

[[directory.ldap.group]]
dn = "CN=CAF Practitioners,OU=Groups,DC=police,DC=eastshire,DC=example"
role = "practitioner"

[[directory.ldap.group]]
dn = "CN=Sexual Health,OU=Groups,DC=police,DC=eastshire,DC=example"
sensitive_service = true
`

// ldapTree is exampleTree plus an LDAP directory and its files; it returns the file and its text.
func ldapTree(t *testing.T) (string, string) {
	t.Helper()
	path := exampleTree(t)
	dir := filepath.Dir(path)
	os.MkdirAll(filepath.Join(dir, "ldap"), 0o700)
	os.WriteFile(filepath.Join(dir, "ldap/police-ca.pem"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "ldap/police.password"), []byte("s3cret\n"), 0o600)
	base, _ := os.ReadFile(path)
	return path, string(base) + ldapDirectory
}

func TestLDAPDirectory(t *testing.T) {
	path, text := ldapTree(t)
	c, err := Parse(path, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Directories[2]
	l := d.LDAP
	if d.Type != "ldap" || l.ConnectTimeout.D().Seconds() != 5 || l.Timeout.D().Seconds() != 5 || l.PoolSize != 4 ||
		l.CacheTTL.D().Seconds() != 10 || l.Map.Preset != "active-directory" || len(l.Groups) != 2 || !l.Groups[1].SensitiveService {
		t.Errorf("decoded %+v", d)
	}
	if l.BindPasswordFile != filepath.Join(filepath.Dir(path), "ldap/police.password") || !filepath.IsAbs(l.CAFile) {
		t.Errorf("relative paths not resolved: %q %q", l.BindPasswordFile, l.CAFile)
	}
	if c.Directories[0].LDAP.PoolSize != 4 || c.Directories[0].Type != "file" {
		t.Error("a file directory lost its defaults")
	}
}

func TestLDAPDirectoryRefused(t *testing.T) {
	path, text := ldapTree(t)
	cases := []struct{ from, to, setting, words string }{
		{`url = "ldaps://dc1.police.eastshire.example"`, `url = "https://dc1"`, "directory[2].ldap.url", "not ldaps://"},
		{`url = "ldaps://dc1.police.eastshire.example"`, "url = \"ldaps://dc1\"\ninsecure_plain = true", "ldap.insecure_plain", "makes no sense"},
		{`url = "ldaps://dc1.police.eastshire.example"`, "", "ldap.url", "is required"},
		{`bind_dn = "CN=svc-cafgate`, `bind_dn = "svc-cafgate`, "ldap.bind_dn", "not a DN"},
		{`base_dn = "OU=Users,DC=police,DC=eastshire,DC=example"`, "", "ldap.base_dn", "is required"},
		{`bind_password_file = "ldap/police.password"`, `bind_password_file = "ldap/missing"`, "ldap.bind_password_file", "cannot read"},
		{`agency = "Eastshire Police"`, `agencies = ["Eastshire Police"]` + "\n" + `agency = "X"`, "directory[2].ldap", "not both"},
		{`agency = "Eastshire Police"`, "", "directory[2].ldap", "or neither"},
		{`preset = "active-directory"`, `preset = "novell"`, "ldap.map.preset", "cafgate or active-directory"},
		{`preset = "active-directory"`, `preset = "cafgate"`, "ldap.map.groups", "no groups attribute"},
		{`preset = "active-directory"`, "preset = \"active-directory\"\nfilter = \"(objectClass=user\"", "ldap.map.filter", "not an LDAP filter"},
		{`preset = "active-directory"`, "preset = \"active-directory\"\ndisabled = \"userAccountControl:two\"", "ldap.map.disabled", "NAME:BITS"},
		{`preset = "active-directory"`, "preset = \"active-directory\"\nvetting = \"none\"", "ldap.map.vetting", "lapsed"},
		{`preset = "active-directory"`, "preset = \"active-directory\"\nmail = [\"mail\", \"upn)(x=*\"]", "ldap.map.mail[1]", "not an attribute name"},
		{`role = "practitioner"`, `role = "superuser"`, "ldap.group[0].role", "not practitioner"},
		{"sensitive_service = true", "", "ldap.group[1]", "neither a role"},
		{`agency = "Eastshire Police"`, "agency = \"Eastshire Police\"\npool_size = 100", "ldap.pool_size", "1 to 64"},
		{`agency = "Eastshire Police"`, "agency = \"Eastshire Police\"\ncache_ttl = \"1h\"", "ldap.cache_ttl", "1s to 5m"},
		{`agency = "Eastshire Police"`, "agency = \"Eastshire Police\"\ncache_ttl = \"100ms\"", "ldap.cache_ttl", "1s to 5m"},
		{`agency = "Eastshire Police"`, "agency = \"Eastshire Police\"\nbind_password = \"s3cret\"", "bind_password", "unknown setting"},
		{`type = "ldap"`, `type = "ad"`, "directory[2].type", "file or ldap"},
	}
	for i, tc := range cases {
		bad := strings.Replace(text, tc.from, tc.to, 1)
		if bad == text {
			t.Fatalf("case %d: edit not applied", i)
		}
		_, err := Parse(path, []byte(bad))
		if err == nil || !strings.Contains(err.Error(), tc.setting) || !strings.Contains(err.Error(), tc.words) {
			t.Errorf("case %d: %v; want a problem naming %s and %q", i, err, tc.setting, tc.words)
		}
	}
	pw := filepath.Join(filepath.Dir(path), "ldap/police.password")
	os.Chmod(pw, 0o644)
	if _, err := Parse(path, []byte(text)); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Errorf("a world-readable password file: %v", err)
	}
	os.WriteFile(pw, []byte("\n"), 0o600)
	if _, err := Parse(path, []byte(text)); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("an empty password file: %v", err)
	}
}
