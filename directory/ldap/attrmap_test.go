package ldap

import (
	"strings"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
)

// These tests read entries built in memory (goldap.NewEntry): what the map does with values a
// server could send. The server-facing behaviour is tested against slapd in the other files.

func entry(attrs map[string][]string) *goldap.Entry {
	base := map[string][]string{"mail": {"Ann@x.test"}, "cn": {"Ann"}, "cafAgency": {"A"},
		"cafRole": {"practitioner"}, "cafVettingValidUntil": {"20991231000000Z"}}
	for k, v := range attrs {
		if v == nil {
			delete(base, k)
		} else {
			base[k] = v
		}
	}
	return goldap.NewEntry("uid=ann,dc=x", base)
}

func TestMapRefusesWhatItCannotRead(t *testing.T) {
	r, err := newReader(CafgateMap(), "", []string{"A"}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := r.practitioner(entry(nil), "ann@x.test"); err != nil || p.Name != "Ann" || p.Agency != "A" {
		t.Fatalf("good entry: %+v, %v", p, err)
	}
	cases := map[string]map[string][]string{
		"not a cafgate role":      {"cafRole": {"practitioner", "root"}},
		"GeneralizedTime":         {"cafVettingValidUntil": {"31/12/2099"}},
		"single-valued":           {"cafVettingValidUntil": {"20991231000000Z", "20981231000000Z"}},
		"LDAP Boolean":            {"cafAccountDisabled": {"yes"}},
		"not one of the agencies": {"cafAgency": {"B"}},
		"has no cafAgency":        {"cafAgency": nil},
		"does not hold":           {"mail": {"someone.else@x.test"}},
	}
	for want, attrs := range cases {
		if p, err := r.practitioner(entry(attrs), "ann@x.test"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %+v, %v; want an error saying %q", attrs, p, err, want)
		}
	}
	p, err := r.practitioner(entry(map[string][]string{"cafVettingValidUntil": nil, "cafAccountDisabled": {"TRUE"},
		"cafSensitiveService": {"TRUE"}, "cafAgency": {"a"}}), "ann@x.test")
	if err != nil || !p.Disabled || !p.SensitiveService || !p.VettingValidUntil.IsZero() || p.Standing(time.Now()) == nil || p.Agency != "A" {
		t.Errorf("entry %+v, %v", p, err)
	}
}

func TestDisabledBits(t *testing.T) {
	m := ActiveDirectoryMap()
	r, err := newReader(m, "A", nil, "t")
	if err != nil {
		t.Fatal(err)
	}
	for uac, want := range map[string]bool{"512": false, "514": true, "2": true, "66048": false, "66050": true} {
		e := goldap.NewEntry("cn=a", map[string][]string{"userPrincipalName": {"a@x.test"}, "userAccountControl": {uac},
			"extensionAttribute1": {"20991231000000Z"}})
		p, err := r.practitioner(e, "a@x.test")
		if err != nil || p.Disabled != want {
			t.Errorf("userAccountControl %s: %+v, %v; want disabled=%v", uac, p, err, want)
		}
	}
	e := goldap.NewEntry("cn=a", map[string][]string{"userPrincipalName": {"a@x.test"}, "userAccountControl": {"lots"}})
	if _, err := r.practitioner(e, "a@x.test"); err == nil {
		t.Error("a userAccountControl that is not an integer was read")
	}
	for s, want := range map[string]int64{"cafAccountDisabled": 0, "userAccountControl:2": 2, "uac:0x12": 18} {
		if _, bits, err := ParseDisabled(s); err != nil || bits != want {
			t.Errorf("ParseDisabled(%q) = %d, %v", s, bits, err)
		}
	}
	for _, s := range []string{"uac:", "uac:0", "uac:-2", "uac:two"} {
		if _, _, err := ParseDisabled(s); err == nil {
			t.Errorf("ParseDisabled(%q) accepted", s)
		}
	}
}

func TestMapCheck(t *testing.T) {
	bad := map[string]func(*Map){
		"filter":            func(m *Map) { m.Filter = "(objectClass=user" },
		"no mail":           func(m *Map) { m.Mail = nil },
		"no vetting":        func(m *Map) { m.Vetting = "" },
		"attribute name":    func(m *Map) { m.Name = []string{"cn)(uid=*"} },
		"not a DN":          func(m *Map) { m.GroupRoles = []GroupRole{{DN: "not a dn", Role: "auditor"}} },
		"not a cafgate":     func(m *Map) { m.GroupRoles = []GroupRole{{DN: "cn=g,dc=x", Role: "root"}} },
		"no groups attribu": func(m *Map) { m.Groups, m.GroupRoles = "", []GroupRole{{DN: "cn=g,dc=x", Role: "auditor"}} },
	}
	for want, mod := range bad {
		m := ActiveDirectoryMap()
		mod(&m)
		if err := m.check(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
	if _, err := newReader(CafgateMap(), "", nil, "t"); err == nil {
		t.Error("an agency attribute without the list of agencies was accepted")
	}
	for _, name := range []string{"cafgate", "active-directory"} {
		m, err := Preset(name)
		if err != nil || m.check() != nil {
			t.Errorf("preset %s: %v %v", name, err, m.check())
		}
	}
	if _, err := Preset("novell"); err == nil {
		t.Error("unknown preset accepted")
	}
}

func TestOptionsRefused(t *testing.T) {
	good := Options{Name: "t", Domains: []string{"x.test"}, URL: "ldaps://ldap.x.test", BaseDN: "dc=x",
		ConnectTimeout: time.Second, Timeout: time.Second, Map: CafgateMap(), Agency: "A"}
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(*Options){
		"scheme":      func(o *Options) { o.URL = "http://ldap.x.test" },
		"not ldaps":   func(o *Options) { o.URL = "ldap.x.test:636" },
		"host[:port]": func(o *Options) { o.URL = "ldaps://ldap.x.test/dc=x?cn" },
		"ldaps://":    func(o *Options) { o.InsecurePlain = true },
		"base DN":     func(o *Options) { o.BaseDN = "" },
		"bind DN":     func(o *Options) { o.BindDN = "cn=svc" },
		"timeouts":    func(o *Options) { o.Timeout = 0 },
		"domains":     func(o *Options) { o.Domains = nil },
		"pool size":   func(o *Options) { o.PoolSize = -1 },
		"not a DN":    func(o *Options) { o.BindDN, o.BindPassword = "svc", "x" },
		"no name":     func(o *Options) { o.Name = "" },
		"attribute ":  func(o *Options) { o.Map.Mail = nil },
	}
	for want, mod := range bad {
		o := good
		mod(&o)
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), strings.TrimSpace(want)) {
			t.Errorf("%s: %v", want, err)
		}
	}
}
