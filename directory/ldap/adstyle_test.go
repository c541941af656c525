package ldap

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"testing"
	"time"

	"cafgate/directory"
	"cafgate/directory/ldap/slapdtest"
	"cafgate/directory/ldif"
)

// The Active Directory style slapd: configs/ad-style.ldif (userPrincipalName, userAccountControl,
// company, extensionAttribute1, the user class) and the memberof overlay, which keeps memberOf on the
// members of groupOfNames groups as AD does for its groups.

const adBase = "dc=eastshire,dc=example"

type adEnv struct {
	srv      *slapdtest.Server
	pool     tls.Config
	password string
	certDER  []byte
}

func startADSlapd(t testing.TB) *adEnv {
	t.Helper()
	ca, _, cert, key := tlsFiles(t)
	blk, _ := pem.Decode(readFile(t, cert))
	e := &adEnv{pool: tls.Config{RootCAs: ca.CertPool()}, password: "Winter2099! pässword", certDER: blk.Bytes}
	ou := func(name string) ldif.Entry {
		return ldif.Entry{DN: "ou=" + name + "," + adBase, Attrs: []ldif.Attr{attr("objectClass", "organizationalUnit"), attr("ou", name)}}
	}
	entries := []ldif.Entry{
		{DN: adBase, Attrs: []ldif.Attr{attr("objectClass", "dcObject"), attr("objectClass", "organization"), attr("dc", "eastshire"), attr("o", "Eastshire")}},
		ou("Users"), ou("Groups"), ou("Service Accounts"),
		{DN: "cn=svc-cafgate,ou=Service Accounts," + adBase, Attrs: []ldif.Attr{attr("objectClass", "user"), attr("cn", "svc-cafgate"),
			attr("sn", "svc"), attr("userAccountControl", "512"), attr("userPassword", ldif.HashSSHA(servicePW))}},
		e.user("Alice Active", "a.active", "alice.active", "Eastshire Police", "20991231000000Z", 512),
		e.user("Dan Disabled", "dan.disabled", "dan.disabled", "Eastshire Police", "20991231000000Z", 514),
		e.user("Lars Lapsed", "lars.lapsed", "lars.lapsed", "Eastshire Police", "20200101000000Z", 512),
		e.user("Ada Admin", "ada.admin", "ada.a", "Eastshire Police", "20991231000000Z", 66048), // 512|65536 (password never expires)
		e.user("Nina Nurse", "nina.nurse", "nina.nurse", "Eastshire Police", "20991231000000Z", 512),
		e.user("Fred Foreign", "fred.foreign", "fred.foreign", "Westshire Police", "20991231000000Z", 512),
		e.user("Ada Copy", "ada.copy", "ada.admin", "Eastshire Police", "20991231000000Z", 512), // mail = Ada's UPN
	}
	entries[5].Attrs = append(entries[5].Attrs, ldif.Attr{Name: "userCertificate;binary", Value: e.certDER})
	group := func(name string, members ...string) ldif.Entry {
		g := ldif.Entry{DN: "cn=" + name + ",ou=Groups," + adBase, Attrs: []ldif.Attr{attr("objectClass", "groupOfNames"), attr("cn", name)}}
		for _, m := range members {
			g.Attrs = append(g.Attrs, attr("member", "cn="+m+",ou=Users,"+adBase))
		}
		return g
	}
	groups := []ldif.Entry{
		group("CAF Practitioners", "Alice Active", "Dan Disabled", "Lars Lapsed", "Nina Nurse", "Fred Foreign"),
		group("CAF Lead Professionals", "Alice Active"),
		group("CAF Agency Admins", "Ada Admin"),
		group("Sexual Health Service", "Nina Nurse"),
		group("Car Park Users", "Alice Active", "Ada Admin"),
	}
	e.srv = slapdtest.Start(t, slapdtest.Options{Suffix: adBase, Schemas: []string{abs(t, "../../configs/ad-style.ldif")},
		MemberOf: true, CertFile: cert, KeyFile: key, LDIF: [][]byte{marshal(t, entries...), marshal(t, groups...)}})
	return e
}

// user is an AD-style user whose sign-in name (userPrincipalName) is upn@ and whose mail is mail@
// police.eastshire.example.
func (e *adEnv) user(cn, upn, mail, company, vetting string, uac int) ldif.Entry {
	return ldif.Entry{DN: "cn=" + cn + ",ou=Users," + adBase, Attrs: []ldif.Attr{
		attr("objectClass", "user"), attr("cn", cn), attr("sn", cn), attr("displayName", cn),
		attr("sAMAccountName", upn), attr("userPrincipalName", upn+"@police.eastshire.example"),
		attr("mail", mail+"@police.eastshire.example"), attr("company", company),
		attr("extensionAttribute1", vetting), attr("userAccountControl", fmt.Sprint(uac)),
		attr("userPassword", ldif.HashSSHA(e.password)),
	}}
}

func (e *adEnv) open(t testing.TB, mod func(*Options)) *Directory {
	t.Helper()
	m := ActiveDirectoryMap()
	m.GroupRoles = []GroupRole{
		{DN: "CN=CAF Practitioners,OU=Groups,DC=eastshire,DC=example", Role: directory.RolePractitioner},
		{DN: "cn=caf lead professionals, ou=groups, dc=eastshire, dc=example", Role: directory.RoleLeadProfessional},
		{DN: "CN=CAF Agency Admins,OU=Groups,DC=Eastshire,DC=Example", Role: directory.RoleAgencyAdmin},
		{DN: "CN=Sexual Health Service,OU=Groups,DC=eastshire,DC=example", SensitiveService: true},
	}
	o := Options{Name: "police-ad", Domains: []string{"police.eastshire.example"}, URL: e.srv.LDAPSURL, TLS: &e.pool,
		BindDN: "CN=svc-cafgate,OU=Service Accounts," + adBase, BindPassword: servicePW, BaseDN: "ou=Users," + adBase,
		ConnectTimeout: 2 * time.Second, Timeout: 2 * time.Second, PoolSize: 2, Map: m, Agency: "Eastshire Police"}
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

// TestActiveDirectoryMap: sign-in by userPrincipalName or mail, roles from memberOf through the group
// table (other groups ignored), the sensitive service from a group, userAccountControl bit 2 as
// disabled, vetting from extensionAttribute1, and the agency fixed by the directory's configuration.
func TestActiveDirectoryMap(t *testing.T) {
	t.Parallel()
	e := startADSlapd(t)
	d := e.open(t, nil)
	const dom = "@police.eastshire.example"
	now := time.Now()
	P, L, A := directory.RolePractitioner, directory.RoleLeadProfessional, directory.RoleAgencyAdmin
	for _, name := range []string{"a.active", "alice.active"} { // UPN and mail differ
		p, err := d.Authenticate(bg(), name+dom, e.password)
		if err != nil {
			t.Fatalf("sign-in as %s: %v", name, err)
		}
		if p.Mail != name+dom || p.Name != "Alice Active" || p.Agency != "Eastshire Police" || fmt.Sprint(p.Roles) != fmt.Sprint([]directory.Role{P, L}) ||
			p.Standing(now) != nil || p.SensitiveService || len(p.Certificates) != 1 || string(p.Certificates[0]) != string(e.certDER) || p.Directory != "police-ad" {
			t.Errorf("sign-in as %s: %+v", name, p)
		}
	}
	cases := []struct {
		mail      string
		roles     []directory.Role
		standing  error
		sensitive bool
	}{
		{"dan.disabled", []directory.Role{P}, directory.ErrDisabled, false},
		{"lars.lapsed", []directory.Role{P}, directory.ErrVettingLapsed, false},
		{"ada.a", []directory.Role{A}, nil, false}, // bit 65536 set, bit 2 not: not disabled
		{"nina.nurse", []directory.Role{P}, nil, true},
	}
	for _, c := range cases {
		p, err := d.Lookup(bg(), c.mail+dom)
		if err != nil {
			t.Errorf("Lookup(%s): %v", c.mail, err)
			continue
		}
		if fmt.Sprint(p.Roles) != fmt.Sprint(c.roles) || !errors.Is(p.Standing(now), c.standing) ||
			(c.standing == nil) != (p.Standing(now) == nil) || p.SensitiveService != c.sensitive {
			t.Errorf("Lookup(%s) = %+v", c.mail, p)
		}
	}
	// Ada's UPN is another entry's mail: ambiguous, so neither look-up nor sign-in picks one.
	if _, err := d.Lookup(bg(), "ada.admin"+dom); !errors.Is(err, directory.ErrAmbiguous) {
		t.Errorf("Lookup of an address two entries hold: %v", err)
	}
	if _, err := d.Authenticate(bg(), "ada.admin"+dom, e.password); !errors.Is(err, directory.ErrBadCredentials) {
		t.Errorf("sign-in with an address two entries hold: %v", err)
	}
	for _, c := range []struct{ mail, pw string }{{"a.active" + dom, "wrong"}, {"nobody" + dom, e.password}, {"a.active" + dom, ""}} {
		if _, err := d.Authenticate(bg(), c.mail, c.pw); !errors.Is(err, directory.ErrBadCredentials) {
			t.Errorf("Authenticate(%s, %q): %v; want ErrBadCredentials", c.mail, c.pw, err)
		}
	}
	// Devolution: with the agency fixed, Fred's entry cannot claim another agency's name; with an
	// allow-list instead, his entry is refused (fail closed) rather than trusted.
	if p := must(t)(d.Lookup(bg(), "fred.foreign"+dom)); p.Agency != "Eastshire Police" {
		t.Errorf("fixed agency: Fred's agency is %q", p.Agency)
	}
	listed := e.open(t, func(o *Options) { o.Agency, o.Agencies = "", []string{"Eastshire Police"} })
	if _, err := listed.Lookup(bg(), "fred.foreign"+dom); !errors.Is(err, directory.ErrUnavailable) {
		t.Errorf("an entry naming an agency outside the list: %v; want ErrUnavailable", err)
	}
	must(t)(listed.Lookup(bg(), "alice.active"+dom))
}
