package ldif

import (
	"bytes"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cafgate/certs/devca"
)

// TestSlapdSmoke runs configs/slapd-smoke.sh: the cafgate schema and the sample directory load into a
// real OpenLDAP slapd, and an entry written by WithSecrets + Marshal (userPassword from HashSSHA,
// userCertificate;binary from the development CA) loads too and binds with its password, proving slapd
// accepts our {SSHA} values. Skipped without slapd (apt-get install slapd ldap-utils) or with -short.
func TestSlapdSmoke(t *testing.T) {
	script := slapdScript(t)
	dn, pw := "uid=smoke.test,ou=people,dc=cafgate,dc=test", "smoke test pässword"
	extra := smokeEntry(t, dn, pw, "20991231000000Z")
	out, err := exec.Command(script, extra, dn, pw).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "slapd-smoke: PASS") {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	for _, want := range []string{"ldapwhoami: dn:" + dn, "wrong password refused", "userCertificate;binary stored"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestSlapdSmokeEnforcesSchema checks that the smoke test can fail: slapd refuses a value the cafgate
// schema does not allow.
func TestSlapdSmokeEnforcesSchema(t *testing.T) {
	script := slapdScript(t)
	dn := "uid=smoke.bad,ou=people,dc=cafgate,dc=test"
	extra := smokeEntry(t, dn, "pw", "31 December 2099")
	out, err := exec.Command(script, extra, dn, "pw").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ldapadd of") {
		t.Fatalf("a malformed cafVettingValidUntil was loaded: %v\n%s", err, out)
	}
}

func slapdScript(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts slapd")
	}
	if _, err := os.Stat("/usr/sbin/slapd"); err != nil {
		t.Skip("slapd not installed")
	}
	if _, err := exec.LookPath("ldapwhoami"); err != nil {
		t.Skip("ldap-utils not installed")
	}
	script, err := filepath.Abs("../../configs/slapd-smoke.sh")
	if err != nil {
		t.Fatal(err)
	}
	return script
}

// smokeEntry writes an LDIF file with one practitioner with a password and a certificate.
func smokeEntry(t *testing.T, dn, password, vetting string) string {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca, err := devca.LoadOrCreate(filepath.Join(dir, "ca"), now)
	if err != nil {
		t.Fatal(err)
	}
	mail := "smoke.test@school.cafgate.test"
	certPath, _, err := ca.IssueSMIME(filepath.Join(dir, "people"), mail, "Smoke Test", now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	e := Entry{DN: dn, Attrs: []Attr{
		{"objectClass", []byte("inetOrgPerson")},
		{"objectClass", []byte("cafPractitioner")},
		{"uid", []byte(strings.TrimPrefix(strings.Split(dn, ",")[0], "uid="))},
		{"cn", []byte("Smoke Test")},
		{"sn", []byte("Test")},
		{"mail", []byte(mail)},
		{"cafAgency", []byte("Northfield Primary School")},
		{"cafRole", []byte("practitioner")},
		{"cafVettingValidUntil", []byte(vetting)},
		{"cafAccountDisabled", []byte("FALSE")},
	}}
	var out bytes.Buffer
	if err := Marshal(&out, WithSecrets([]Entry{e}, map[string]string{mail: password}, map[string][]byte{mail: blk.Bytes})); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "extra.ldif")
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
