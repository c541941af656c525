package ldif

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cafgate/directory"
)

var sampleDomains = []string{"school.cafgate.test", "health.cafgate.test", "socialcare.cafgate.test", "police.cafgate.test"}

const samplePath = "../../configs/sample-directory.ldif"

func readSample(t *testing.T) []Entry {
	t.Helper()
	b, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// writeDir writes entries to a file and opens it, as `cafgate dev` does.
func writeDir(t *testing.T, entries []Entry, domains []string) (*Directory, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "directory.ldif")
	var b bytes.Buffer
	if err := Marshal(&b, entries); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return Open(path, "test", domains)
}

func TestSampleDirectory(t *testing.T) {
	entries := readSample(t)
	for _, e := range entries {
		if len(e.Get("userPassword")) > 0 || len(e.Get("userCertificate")) > 0 {
			t.Errorf("%s: the sample must hold no passwords or certificates", e.DN)
		}
	}
	d, err := Open(samplePath, "sample", sampleDomains)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	count := map[directory.Role]int{}
	var lapsed, disabled, sensitive, active []string
	agencies := map[string]bool{}
	for mail := range d.byMail {
		p, err := d.Lookup(context.Background(), mail)
		if err != nil {
			t.Fatalf("Lookup(%s): %v", mail, err)
		}
		if p.Name == "" || p.Agency == "" || len(p.Roles) == 0 || p.Directory != "sample" || p.Mail != mail {
			t.Errorf("%s: incomplete entry %+v", mail, p)
		}
		agencies[p.Agency] = true
		for _, r := range p.Roles {
			count[r]++
		}
		switch err := p.Standing(now); {
		case errors.Is(err, directory.ErrDisabled):
			disabled = append(disabled, mail)
		case errors.Is(err, directory.ErrVettingLapsed):
			lapsed = append(lapsed, mail)
		case err == nil:
			active = append(active, mail)
			if p.VettingValidUntil.Before(now.AddDate(20, 0, 0)) {
				t.Errorf("%s: active vetting should be far in the future, is %v", mail, p.VettingValidUntil)
			}
		}
		if p.SensitiveService {
			sensitive = append(sensitive, mail)
		}
	}
	if len(d.byMail) < 8 || len(agencies) != 4 {
		t.Errorf("%d practitioners in %d agencies, want about 8 in 4", len(d.byMail), len(agencies))
	}
	for _, r := range []directory.Role{directory.RoleLeadProfessional, directory.RoleSafeguardingPerson, directory.RoleAgencyAdmin, directory.RoleAuditor} {
		if count[r] != 1 {
			t.Errorf("%d holders of %s, want 1", count[r], r)
		}
	}
	if len(lapsed) != 1 || len(disabled) != 1 || len(sensitive) != 1 {
		t.Errorf("lapsed %v, disabled %v, sensitive %v: want one each", lapsed, disabled, sensitive)
	}
	if len(sensitive) == 1 && !strings.HasSuffix(sensitive[0], "@health.cafgate.test") {
		t.Errorf("the sensitive-service practitioner %s should be in health", sensitive[0])
	}
}

func secretsDir(t *testing.T) *Directory {
	t.Helper()
	entries := WithSecrets(readSample(t),
		map[string]string{"Priya.Placeholder@health.cafgate.test": "right password", "tom.pretend@police.cafgate.test": "pw2"},
		map[string][]byte{"priya.placeholder@health.cafgate.test": []byte("DER")})
	d, err := writeDir(t, entries, sampleDomains)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestAuthenticate(t *testing.T) {
	d := secretsDir(t)
	ctx := context.Background()
	p, err := d.Authenticate(ctx, "PRIYA.placeholder@health.cafgate.test", "right password")
	if err != nil {
		t.Fatal(err)
	}
	if p.Mail != "priya.placeholder@health.cafgate.test" || !p.HasRole(directory.RoleLeadProfessional) ||
		len(p.Certificates) != 1 || string(p.Certificates[0]) != "DER" {
		t.Errorf("authenticated entry %+v", p)
	}
	// Authenticate leaves standing to the caller: a disabled entry signs in, Standing refuses it.
	if p, err := d.Authenticate(ctx, "tom.pretend@police.cafgate.test", "pw2"); err != nil || !errors.Is(p.Standing(time.Now()), directory.ErrDisabled) {
		t.Errorf("disabled entry: %v, %v", p, err)
	}
	cases := []struct{ mail, password, reason string }{
		{"priya.placeholder@health.cafgate.test", "hunter2-xyz", "wrong password"},
		{"priya.placeholder@health.cafgate.test", "", "empty password"},
		{"priya.placeholder@health.cafgate.test", "right password ", "wrong password"},
		{"nobody@health.cafgate.test", "right password", "unknown user"},
		{"priya.placeholder@elsewhere.test", "right password", "unknown user"},
		{"gwen.testcase@socialcare.cafgate.test", "", "empty password"},
		{"gwen.testcase@socialcare.cafgate.test", "anything", "no userPassword"},
	}
	for _, c := range cases {
		p, err := d.Authenticate(ctx, c.mail, c.password)
		if !errors.Is(err, directory.ErrBadCredentials) || p != nil {
			t.Errorf("Authenticate(%s, %q) = %v, %v; want ErrBadCredentials", c.mail, c.password, p, err)
			continue
		}
		if !strings.Contains(err.Error(), c.reason) {
			t.Errorf("Authenticate(%s, %q): %v does not say %q", c.mail, c.password, err, c.reason)
		}
		if strings.Contains(err.Error(), c.password) && c.password != "" {
			t.Errorf("error %q contains the password", err)
		}
	}
}

func TestAuthenticateRefusesOtherSchemes(t *testing.T) {
	e := sampleEntry("ann@school.cafgate.test")
	for _, stored := range []string{"secret", "{CLEARTEXT}secret", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "{SSHA}garbage"} {
		e2 := e
		e2.Attrs = append(append([]Attr{}, e.Attrs...), Attr{"userPassword", []byte(stored)})
		d, err := New([]Entry{e2}, "t", []string{"school.cafgate.test"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Authenticate(context.Background(), "ann@school.cafgate.test", "secret"); !errors.Is(err, directory.ErrBadCredentials) {
			t.Errorf("userPassword %q accepted: %v", stored, err)
		}
	}
}

func TestAmbiguousMail(t *testing.T) {
	a, b := sampleEntry("dup@school.cafgate.test"), sampleEntry("DUP@school.cafgate.test")
	b.DN = "uid=other,dc=x"
	entries := WithSecrets([]Entry{a, b}, map[string]string{"dup@school.cafgate.test": "pw"}, nil)
	d, err := New(entries, "t", []string{"school.cafgate.test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Lookup(context.Background(), "dup@school.cafgate.test"); !errors.Is(err, directory.ErrAmbiguous) {
		t.Errorf("Lookup: %v, want ErrAmbiguous", err)
	}
	if _, err := d.Authenticate(context.Background(), "dup@school.cafgate.test", "pw"); !errors.Is(err, directory.ErrBadCredentials) {
		t.Errorf("Authenticate: %v, want ErrBadCredentials", err)
	}
	// One entry listing its own address twice is not ambiguous.
	c := sampleEntry("self@school.cafgate.test")
	c.Attrs = append(c.Attrs, Attr{"mail", []byte("Self@school.cafgate.test")})
	d, err = New([]Entry{c}, "t", []string{"school.cafgate.test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Lookup(context.Background(), "self@school.cafgate.test"); err != nil {
		t.Errorf("Lookup of an entry with a repeated mail: %v", err)
	}
}

func TestLookup(t *testing.T) {
	d := secretsDir(t)
	ctx := context.Background()
	p, err := d.Lookup(ctx, "Priya.Placeholder@HEALTH.cafgate.test")
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC)
	if p.Name != "Priya Placeholder" || p.Agency != "Riverside Community Health" || !p.VettingValidUntil.Equal(want) ||
		p.Disabled || p.SensitiveService || p.DN != "uid=priya.placeholder,ou=people,dc=cafgate,dc=test" {
		t.Errorf("entry %+v", p)
	}
	// The result is a copy: changing it changes nothing in the directory.
	p.Roles[0], p.Certificates[0][0], p.Name = directory.RoleAuditor, 'X', "changed"
	again, _ := d.Lookup(ctx, "priya.placeholder@health.cafgate.test")
	if again.Roles[0] == directory.RoleAuditor || string(again.Certificates[0]) != "DER" || again.Name != "Priya Placeholder" {
		t.Errorf("Lookup returned shared state: %+v", again)
	}
	for _, mail := range []string{"nobody@health.cafgate.test", "priya.placeholder@other.test", "", "priya.placeholder"} {
		if _, err := d.Lookup(ctx, mail); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("Lookup(%q): %v, want ErrNotFound", mail, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.Lookup(cancelled, "priya.placeholder@health.cafgate.test"); !errors.Is(err, directory.ErrUnavailable) {
		t.Errorf("cancelled Lookup: %v, want ErrUnavailable", err)
	}
	if _, err := d.Authenticate(cancelled, "priya.placeholder@health.cafgate.test", "right password"); !errors.Is(err, directory.ErrUnavailable) {
		t.Errorf("cancelled Authenticate: %v, want ErrUnavailable", err)
	}
}

func TestOpenRefusesBadEntries(t *testing.T) {
	// with sets name to value, replacing a value sampleEntry has, or adding a second with add.
	with := func(name, value string, add bool) Entry {
		e := sampleEntry("ann@school.cafgate.test")
		for i, a := range e.Attrs {
			if a.Name == name && !add {
				e.Attrs[i].Value = []byte(value)
				return e
			}
		}
		e.Attrs = append(e.Attrs, Attr{name, []byte(value)})
		return e
	}
	cases := map[string]Entry{
		"GeneralizedTime": with("cafVettingValidUntil", "2027-12-31", false),
		"single-valued":   with("cafAgency", "Second Agency", true),
		"Boolean":         with("cafAccountDisabled", "yes", false),
		"cafgate role":    with("cafRole", "superuser", true),
		"domains":         sampleEntry("ann@elsewhere.test"),
	}
	for want, e := range cases {
		_, err := writeDir(t, []Entry{e}, []string{"school.cafgate.test"})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), e.DN) {
			t.Errorf("%s: err = %v", want, err)
		}
	}
	if _, err := New(nil, "t", nil); err == nil {
		t.Error("a directory without domains was accepted")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.ldif"), "t", []string{"x.test"}); err == nil {
		t.Error("a missing file was accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.ldif")
	os.WriteFile(bad, []byte("dn: a=b\nchangetype: delete\n"), 0o600)
	if _, err := Open(bad, "t", []string{"x.test"}); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("change record: err = %v", err)
	}
}

func TestWithSecrets(t *testing.T) {
	e := sampleEntry("Ann@school.cafgate.test")
	e.Attrs = append(e.Attrs, Attr{"userPassword", []byte("{SSHA}old")}, Attr{"userCertificate;binary", []byte("old")})
	other := sampleEntry("bob@school.cafgate.test")
	in := []Entry{e, other}
	out := WithSecrets(in, map[string]string{"ann@SCHOOL.cafgate.test": "new"}, map[string][]byte{"ann@school.cafgate.test": []byte("new cert\x00")})
	if got := out[0].Get("userPassword"); len(got) != 1 || !VerifySSHA(string(got[0]), "new") {
		t.Errorf("userPassword %q, want one {SSHA} of the new password", got)
	}
	if got := out[0].Get("userCertificate"); len(got) != 1 || string(got[0]) != "new cert\x00" {
		t.Errorf("userCertificate %q", got)
	}
	if len(out[1].Get("userPassword")) != 0 || len(out[1].Get("userCertificate")) != 0 {
		t.Errorf("entry without secrets changed: %+v", out[1])
	}
	if got := in[0].Get("userPassword"); len(got) != 1 || string(got[0]) != "{SSHA}old" {
		t.Errorf("input changed: %q", got)
	}
	out[1].Attrs[0].Value[0] = 'X'
	if other.Attrs[0].Value[0] == 'X' {
		t.Error("output shares values with the input")
	}
	var b bytes.Buffer
	if err := Marshal(&b, out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\nuserCertificate;binary:: ") || !strings.Contains(b.String(), "\nuserPassword: {SSHA}") {
		t.Errorf("marshalled secrets:\n%s", b.String())
	}
}

func TestParseGeneralizedTime(t *testing.T) {
	good := map[string]time.Time{
		"20271231000000Z":     time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC),
		"2027123112Z":         time.Date(2027, 12, 31, 12, 0, 0, 0, time.UTC),
		"202712311230Z":       time.Date(2027, 12, 31, 12, 30, 0, 0, time.UTC),
		"20271231123045.5Z":   time.Date(2027, 12, 31, 12, 30, 45, 5e8, time.UTC),
		"20271231123045,25Z":  time.Date(2027, 12, 31, 12, 30, 45, 25e7, time.UTC),
		"20271231010000+0100": time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC),
		"20271230230000-01":   time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC),
		"20271231000000-0030": time.Date(2027, 12, 31, 0, 30, 0, 0, time.UTC),
	}
	for s, want := range good {
		got, err := ParseGeneralizedTime(s)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseGeneralizedTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "20271231000000", "2027-12-31", "20271331000000Z", "20271231246000Z", "2027123100000Z",
		"20271231000000+25", "20271231000000+01x0", "20271231.5Z", "20271231000000.Z", "20271231000000ZZ", "Z", "-20271231000000Z"} {
		if got, err := ParseGeneralizedTime(s); err == nil {
			t.Errorf("ParseGeneralizedTime(%q) = %v, want an error", s, got)
		}
	}
}

// sampleEntry is a minimal practitioner entry.
func sampleEntry(mail string) Entry {
	return Entry{DN: "uid=" + strings.ToLower(strings.Split(mail, "@")[0]) + ",dc=x", Attrs: []Attr{
		{"objectClass", []byte("inetOrgPerson")},
		{"objectClass", []byte("cafPractitioner")},
		{"cn", []byte("Ann Example")},
		{"mail", []byte(mail)},
		{"cafAgency", []byte("Northfield Primary School")},
		{"cafRole", []byte("practitioner")},
		{"cafVettingValidUntil", []byte("20991231000000Z")},
	}}
}
