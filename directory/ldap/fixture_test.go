package ldap

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cafgate/certs/devca"
	"cafgate/directory"
	"cafgate/directory/ldap/slapdtest"
	"cafgate/directory/ldif"
)

// The tests here run against a real OpenLDAP slapd (apt-get install slapd ldap-utils), started on a
// loopback port with TLS from a development CA of the test's own. Nothing is mocked.

const (
	base      = "dc=cafgate,dc=test"
	serviceDN = "cn=cafgate-gateway,ou=services,dc=cafgate,dc=test"
	servicePW = "service account pässword"
)

var sampleDomains = []string{"school.cafgate.test", "health.cafgate.test", "socialcare.cafgate.test", "police.cafgate.test"}

var sampleAgencies = []string{"Northfield Primary School", "Riverside Community Health",
	"Eastshire Children's Services", "Eastshire Police"}

// env is a slapd with the cafgate schema and the sample directory, and what a test needs to use it.
type env struct {
	srv       *slapdtest.Server
	ca        *devca.CA
	caPool    *x509.CertPool
	passwords map[string]string // mail -> password
	certDER   []byte            // priya's userCertificate;binary
	dir       string
}

// tlsFiles issues the slapd certificate (localhost, 127.0.0.1) from a fresh development CA.
func tlsFiles(t testing.TB) (ca *devca.CA, dir, cert, key string) {
	t.Helper()
	dir = t.TempDir()
	ca, err := devca.LoadOrCreate(filepath.Join(dir, "ca"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err = ca.IssueTLS(filepath.Join(dir, "tls"), "slapd", []string{"localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca, dir, cert, key
}

// startCafgateSlapd starts slapd with configs/cafgate.schema.ldif, configs/sample-directory.ldif (a
// password for every practitioner), a service account, and two entries sharing one mail address.
func startCafgateSlapd(t testing.TB) *env {
	t.Helper()
	ca, dir, cert, key := tlsFiles(t)
	e := &env{ca: ca, caPool: ca.CertPool(), dir: dir, passwords: map[string]string{}}
	sample, err := os.ReadFile("../../configs/sample-directory.ldif")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ldif.Parse(bytes.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if m := en.Get("mail"); len(m) == 1 {
			e.passwords[string(m[0])] = "pw-" + strings.Split(string(m[0]), "@")[0] + " ü"
		}
	}
	blk, _ := pem.Decode(readFile(t, cert))
	e.certDER = blk.Bytes
	entries = ldif.WithSecrets(entries, e.passwords, map[string][]byte{"priya.placeholder@health.cafgate.test": e.certDER})
	entries = append(entries, serviceEntries()...)
	entries = append(entries, practitionerEntry("dup.one", "dup.entry@school.cafgate.test", "Northfield Primary School", "pw-dup"),
		practitionerEntry("dup.two", "DUP.entry@school.cafgate.test", "Northfield Primary School", "pw-dup"))
	var data bytes.Buffer
	if err := ldif.Marshal(&data, entries); err != nil {
		t.Fatal(err)
	}
	e.srv = slapdtest.Start(t, slapdtest.Options{Suffix: base, Schemas: []string{abs(t, "../../configs/cafgate.schema.ldif")},
		CertFile: cert, KeyFile: key, LDIF: [][]byte{data.Bytes()}})
	return e
}

// serviceEntries is ou=services and the gateway's service account.
func serviceEntries() []ldif.Entry {
	return []ldif.Entry{
		{DN: "ou=services," + base, Attrs: []ldif.Attr{attr("objectClass", "organizationalUnit"), attr("ou", "services")}},
		{DN: serviceDN, Attrs: []ldif.Attr{attr("objectClass", "organizationalRole"), attr("objectClass", "simpleSecurityObject"),
			attr("cn", "cafgate-gateway"), attr("userPassword", ldif.HashSSHA(servicePW))}},
	}
}

// practitionerEntry is an active practitioner in the cafgate schema under ou=people.
func practitionerEntry(uid, mail, agency, password string) ldif.Entry {
	return ldif.Entry{DN: "uid=" + uid + ",ou=people," + base, Attrs: []ldif.Attr{
		attr("objectClass", "inetOrgPerson"), attr("objectClass", "cafPractitioner"),
		attr("uid", uid), attr("cn", uid), attr("sn", uid), attr("mail", mail),
		attr("cafAgency", agency), attr("cafRole", "practitioner"),
		attr("cafVettingValidUntil", "20991231000000Z"), attr("userPassword", ldif.HashSSHA(password)),
	}}
}

// options are Options for e's slapd over ldaps:// with the cafgate map.
func (e *env) options() Options {
	return Options{
		Name: "test", Domains: sampleDomains, URL: e.srv.LDAPSURL,
		TLS:    &tls.Config{RootCAs: e.caPool},
		BindDN: serviceDN, BindPassword: servicePW, BaseDN: base,
		ConnectTimeout: 2 * time.Second, Timeout: 2 * time.Second, PoolSize: 2,
		Map: CafgateMap(), Agencies: sampleAgencies,
	}
}

func (e *env) open(t testing.TB, mod func(*Options)) *Directory {
	t.Helper()
	o := e.options()
	if mod != nil {
		mod(&o)
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func abs(t testing.TB, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func bg() context.Context { return context.Background() }

// logBuffer is a slog destination a test can read.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// must returns a function that fails the test on an error and otherwise returns the entry:
// must(t)(d.Lookup(ctx, mail)).
func must(t testing.TB) func(*directory.Practitioner, error) *directory.Practitioner {
	return func(p *directory.Practitioner, err error) *directory.Practitioner {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return p
	}
}

func attr(name, value string) ldif.Attr { return ldif.Attr{Name: name, Value: []byte(value)} }

// marshal writes entries as LDIF for slapdtest.Server.Add.
func marshal(t testing.TB, entries ...ldif.Entry) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := ldif.Marshal(&b, entries); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
