package slapdtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Where Debian 12 keeps slapd's modules and the standard schema files.
const (
	modulePath = "/usr/lib/ldap"
	schemaDir  = "/etc/ldap/schema"
)

// buildConfig writes cn=config with slapadd: modules, schema, TLS, one mdb database whose root DN is
// s.RootDN, read access for bound users and "auth" access to userPassword for anonymous binds.
func (s *Server) buildConfig() error {
	var b strings.Builder
	tls := ""
	if s.o.CertFile != "" {
		tls = fmt.Sprintf("olcTLSCertificateFile: %s\nolcTLSCertificateKeyFile: %s\n", s.o.CertFile, s.o.KeyFile)
	}
	fmt.Fprintf(&b, "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: %s\n%s\n",
		filepath.Join(s.Dir, "slapd.pid"), tls)
	modules := "olcModuleLoad: back_mdb\n"
	if s.o.MemberOf {
		modules += "olcModuleLoad: memberof\n"
	}
	fmt.Fprintf(&b, "dn: cn=module{0},cn=config\nobjectClass: olcModuleList\ncn: module{0}\nolcModulePath: %s\n%s\n",
		modulePath, modules)
	b.WriteString("dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n")
	for _, f := range append([]string{"core.ldif", "cosine.ldif", "inetorgperson.ldif"}, s.o.Schemas...) {
		if !filepath.IsAbs(f) {
			f = filepath.Join(schemaDir, f)
		}
		fmt.Fprintf(&b, "include: file://%s\n\n", f)
	}
	data := filepath.Join(s.Dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	fmt.Fprintf(&b, `dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: %s
olcDbDirectory: %s
olcDbMaxSize: 104857600
olcRootDN: %s
olcRootPW: %s
olcDbIndex: objectClass eq
olcDbIndex: mail eq
olcAccess: {0}to attrs=userPassword by anonymous auth by self write by * none
olcAccess: {1}to * by users read by * none
`, s.o.Suffix, data, s.RootDN, s.RootPW)
	if s.o.MemberOf {
		b.WriteString(`
dn: olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {0}memberof
olcMemberOfRefInt: TRUE
`)
	}
	ldif := filepath.Join(s.Dir, "config.ldif")
	if err := os.WriteFile(ldif, []byte(b.String()), 0o600); err != nil {
		return err
	}
	confDir := filepath.Join(s.Dir, "slapd.d")
	if err := os.MkdirAll(confDir, 0o700); err != nil {
		return err
	}
	slapadd, err := lookPath("slapadd")
	if err != nil {
		return err
	}
	if out, err := exec.Command(slapadd, "-n", "0", "-F", confDir, "-l", ldif).CombinedOutput(); err != nil {
		return fmt.Errorf("slapdtest: slapadd of cn=config: %v\n%s", err, out)
	}
	return nil
}
