package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cafgate/certs/devca"
	"cafgate/configs"
	"cafgate/directory"
	"cafgate/directory/ldap/slapdtest"
)

func TestLDAPMap(t *testing.T) {
	m, err := ldapMap(configs.LDAPMapConfig{Preset: "active-directory", Mail: []string{"mail"}, Sensitive: "isSensitive",
		Certificate: "none", Disabled: "flags:0x10"}, []configs.LDAPGroupConfig{{DN: "cn=g,dc=x", Role: "auditor"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Filter != "(objectClass=user)" || fmt.Sprint(m.Mail) != "[mail]" || m.Sensitive != "isSensitive" || m.Certificate != "" ||
		m.Disabled != "flags" || m.DisabledBits != 16 || m.Groups != "memberOf" || len(m.GroupRoles) != 1 || m.GroupRoles[0].Role != directory.RoleAuditor {
		t.Errorf("map %+v", m)
	}
	if m, _ := ldapMap(configs.LDAPMapConfig{Preset: "cafgate", Disabled: "none"}, nil); m.Disabled != "" || m.Roles != "cafRole" {
		t.Errorf("cafgate map with disabled = none: %+v", m)
	}
	if _, err := ldapMap(configs.LDAPMapConfig{Preset: "novell"}, nil); err == nil {
		t.Error("unknown preset accepted")
	}
}

// TestDirectoryTest runs `cafgate directory test` (its body) against a real slapd over ldaps://.
func TestDirectoryTest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts slapd")
	}
	dir := t.TempDir()
	ca, err := devca.LoadOrCreate(filepath.Join(dir, "ca"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.IssueTLS(filepath.Join(dir, "tls"), "slapd", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	schema, _ := filepath.Abs("../../configs/cafgate.schema.ldif")
	const base, svcPW, userPW = "dc=cafgate,dc=test", "svc pw", "ann's pässword"
	srv := slapdtest.Start(t, slapdtest.Options{Suffix: base, Schemas: []string{schema}, CertFile: cert, KeyFile: key,
		LDIF: [][]byte{[]byte(fmt.Sprintf(`dn: %[1]s
objectClass: dcObject
objectClass: organization
dc: cafgate
o: t

dn: cn=svc,%[1]s
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: svc
userPassword: %[2]s

dn: uid=ann,%[1]s
objectClass: inetOrgPerson
objectClass: cafPractitioner
uid: ann
cn: Ann Example
sn: Example
mail: ann@school.test
cafAgency: Northfield Primary School
cafRole: lead-professional
cafVettingValidUntil: 20991231000000Z
userPassword: %[3]s
`, base, ssha(svcPW), ssha(userPW)))}})
	pwFile := filepath.Join(dir, "svc.password")
	os.WriteFile(pwFile, []byte(svcPW+"\n"), 0o600)
	dc := &configs.DirectoryConfig{Name: "school", Type: "ldap", Domains: []string{"school.test"}, LDAP: configs.LDAPConfig{
		URL: srv.LDAPSURL, CAFile: devca.CertPath(filepath.Join(dir, "ca")), BindDN: "cn=svc," + base, BindPasswordFile: pwFile,
		BaseDN: base, ConnectTimeout: configs.Duration(2 * time.Second), Timeout: configs.Duration(2 * time.Second), PoolSize: 1,
		Agencies: []string{"Northfield Primary School"}, Map: configs.LDAPMapConfig{Preset: "cafgate"}}}
	var out bytes.Buffer
	if err := directoryTest(&out, dc, "Ann@school.test", userPW, true); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"bind as cn=svc,dc=cafgate,dc=test, read dc=cafgate,dc=test: ok", "look-up of Ann@school.test: ok",
		"name:                Ann Example", "roles:               lead-professional", "standing:            may send and receive", "sign-in: ok"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	err = directoryTest(&out, dc, "ann@school.test", "wrong", true)
	if !errors.Is(err, directory.ErrBadCredentials) || !strings.Contains(out.String(), "sign-in: REFUSED") || strings.Contains(out.String()+err.Error(), userPW) {
		t.Errorf("wrong password: %v\n%s", err, out.String())
	}
	srv.Stop()
	out.Reset()
	if err := directoryTest(&out, dc, "ann@school.test", "", false); !errors.Is(err, directory.ErrUnavailable) || !strings.Contains(out.String(), "FAILED") {
		t.Errorf("slapd stopped: %v\n%s", err, out.String())
	}
}

func TestReadPasswordFromPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("s3cret pw\r\nsecond line\n")
	w.Close()
	var prompt bytes.Buffer
	pw, err := readPassword(r, &prompt, "ann@school.test")
	if err != nil || pw != "s3cret pw" || prompt.Len() != 0 {
		t.Errorf("readPassword = %q, %v; prompt %q", pw, err, prompt.String())
	}
}

func ssha(pw string) string {
	salt := []byte("12345678")
	h := sha1.Sum(append([]byte(pw), salt...))
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h[:], salt...))
}
