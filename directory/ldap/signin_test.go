package ldap

import (
	"errors"
	"strings"
	"testing"
	"time"

	"cafgate/directory"
)

// TestSignIn: sign-in against slapd over ldaps://: the right password gives the mapped entry, and every
// failure is ErrBadCredentials whose text never holds the password.
func TestSignIn(t *testing.T) {
	t.Parallel()
	e := startCafgateSlapd(t)
	d := e.open(t, nil)
	priya := "priya.placeholder@health.cafgate.test"
	p, err := d.Authenticate(bg(), "Priya.Placeholder@health.cafgate.test", e.passwords[priya])
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC)
	if p.Mail != priya || p.Name != "Priya Placeholder" || p.Agency != "Riverside Community Health" ||
		!p.HasRole(directory.RoleLeadProfessional) || !p.HasRole(directory.RolePractitioner) || len(p.Roles) != 2 ||
		!p.VettingValidUntil.Equal(want) || p.Disabled || p.SensitiveService || p.Directory != "test" ||
		p.DN != "uid=priya.placeholder,ou=people,"+base || len(p.Certificates) != 1 || string(p.Certificates[0]) != string(e.certDER) {
		t.Errorf("signed-in entry %+v", p)
	}
	if err := p.Standing(time.Now()); err != nil {
		t.Errorf("standing of an active practitioner: %v", err)
	}
	// Disabled and lapsed entries sign in; Standing refuses them (the intake answers like a wrong password).
	for mail, want := range map[string]error{"tom.pretend@police.cafgate.test": directory.ErrDisabled,
		"oliver.sample@school.cafgate.test": directory.ErrVettingLapsed} {
		p, err := d.Authenticate(bg(), mail, e.passwords[mail])
		if err != nil || !errors.Is(p.Standing(time.Now()), want) {
			t.Errorf("%s: %v, %v; want an entry whose standing is %v", mail, p, err, want)
		}
	}
	cases := []struct{ mail, password, reason string }{
		{priya, "wrong password", "refused"},
		{priya, e.passwords[priya] + " ", "refused"},
		{priya, strings.ToUpper(e.passwords[priya]), "refused"},
		{priya, "", "empty password"},
		{priya, strings.Repeat("x", 2000), "too long"},
		{"nobody@health.cafgate.test", e.passwords[priya], "unknown user"},
		{"priya.placeholder@elsewhere.test", e.passwords[priya], "domains"},
		{"priya.placeholder", e.passwords[priya], "domains"},
		{"dup.entry@school.cafgate.test", "pw-dup", "more than one entry"},
		{"harriet.example@school.cafgate.test", e.passwords[priya], "refused"}, // someone else's password
	}
	for _, c := range cases {
		p, err := d.Authenticate(bg(), c.mail, c.password)
		if !errors.Is(err, directory.ErrBadCredentials) || p != nil {
			t.Errorf("Authenticate(%q, %q) = %v, %v; want ErrBadCredentials", c.mail, c.password, p, err)
			continue
		}
		if !strings.Contains(err.Error(), c.reason) {
			t.Errorf("Authenticate(%q): %v does not say %q", c.mail, err, c.reason)
		}
		if c.password != "" && strings.Contains(err.Error(), c.password) {
			t.Errorf("error %q holds the password", err)
		}
	}
	checkPoolIdentity(t, d)
}

// checkPoolIdentity: the connections left in the pool are still bound as the service account, never
// as a practitioner who signed in.
func checkPoolIdentity(t *testing.T, d *Directory) {
	t.Helper()
	if _, err := d.Lookup(bg(), "gwen.testcase@socialcare.cafgate.test"); err != nil {
		t.Fatal(err)
	}
	n := len(d.pool.idle)
	if n == 0 {
		t.Fatal("no idle pooled connection after a look-up")
	}
	for i := 0; i < n; i++ {
		c := <-d.pool.idle
		who, err := c.WhoAmI(nil)
		d.pool.idle <- c
		if err != nil || who.AuthzID != "dn:"+serviceDN {
			t.Errorf("pooled connection bound as %+v (%v), want the service account", who, err)
		}
	}
}

// TestInjection: filter metacharacters, NUL and parentheses in the user name find nobody and sign
// nobody in, even with a real practitioner's password.
func TestInjection(t *testing.T) {
	t.Parallel()
	e := startCafgateSlapd(t)
	d := e.open(t, nil)
	harriet := "harriet.example@school.cafgate.test"
	for _, mail := range []string{
		"*)(mail=*@school.cafgate.test",
		"*@school.cafgate.test",
		"harriet*@school.cafgate.test",
		"*)(|(mail=*)@school.cafgate.test",
		harriet + ")(objectClass=*",
		"harriet.example)(cafRole=*@school.cafgate.test",
		"(harriet.example@school.cafgate.test)",
		"harriet.example\x00@school.cafgate.test",
		"harriet.example@school.cafgate.test\x00",
		"harriet.example\\2a@school.cafgate.test",
		"harriet.example\\@school.cafgate.test",
	} {
		if p, err := d.Lookup(bg(), mail); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("Lookup(%q) = %v, %v; want ErrNotFound", mail, p, err)
		}
		if p, err := d.Authenticate(bg(), mail, e.passwords[harriet]); !errors.Is(err, directory.ErrBadCredentials) {
			t.Errorf("Authenticate(%q) = %v, %v; want ErrBadCredentials", mail, p, err)
		}
	}
	if _, err := d.Authenticate(bg(), harriet, e.passwords[harriet]); err != nil {
		t.Errorf("the real address no longer signs in: %v", err)
	}
}

// TestInjectionFilter: every metacharacter reaches the filter escaped (RFC 4515).
func TestInjectionFilter(t *testing.T) {
	d, err := New(Options{Name: "t", Domains: []string{"x.test"}, URL: "ldaps://127.0.0.1:1", BaseDN: base,
		ConnectTimeout: time.Second, Timeout: time.Second, Map: ActiveDirectoryMap(), Agency: "A"})
	if err != nil {
		t.Fatal(err)
	}
	got := d.filter("*)(uid=\x00\\é@x.test")
	want := `(&(objectClass=user)(|(userPrincipalName=\2a\29\28uid=\00\5c\c3\a9@x.test)(mail=\2a\29\28uid=\00\5c\c3\a9@x.test)))`
	if got != want {
		t.Errorf("filter\n got %s\nwant %s", got, want)
	}
}
