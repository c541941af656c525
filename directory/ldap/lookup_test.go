package ldap

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"cafgate/directory"
)

// TestLookup: every sample practitioner maps as configs/README-directory.md says; unknown, ambiguous
// and foreign addresses give the right sentinel; an entry the map cannot read fails closed.
func TestLookup(t *testing.T) {
	t.Parallel()
	e := startCafgateSlapd(t)
	d := e.open(t, nil)
	now := time.Now()
	type want struct {
		agency    string
		roles     []directory.Role
		standing  error
		sensitive bool
	}
	P, L, S, A, U := directory.RolePractitioner, directory.RoleLeadProfessional, directory.RoleSafeguardingPerson,
		directory.RoleAgencyAdmin, directory.RoleAuditor
	for mail, w := range map[string]want{
		"harriet.example@school.cafgate.test":   {"Northfield Primary School", []directory.Role{P, S}, nil, false},
		"oliver.sample@school.cafgate.test":     {"Northfield Primary School", []directory.Role{P}, directory.ErrVettingLapsed, false},
		"priya.placeholder@health.cafgate.test": {"Riverside Community Health", []directory.Role{P, L}, nil, false},
		"sam.fictitious@health.cafgate.test":    {"Riverside Community Health", []directory.Role{P}, nil, true},
		"declan.madeup@socialcare.cafgate.test": {"Eastshire Children's Services", []directory.Role{A}, nil, false},
		"una.imaginary@socialcare.cafgate.test": {"Eastshire Children's Services", []directory.Role{U}, nil, false},
		"tom.pretend@police.cafgate.test":       {"Eastshire Police", []directory.Role{P}, directory.ErrDisabled, false},
	} {
		p, err := d.Lookup(bg(), mail)
		if err != nil {
			t.Errorf("Lookup(%s): %v", mail, err)
			continue
		}
		if p.Mail != mail || p.Agency != w.agency || fmt.Sprint(p.Roles) != fmt.Sprint(w.roles) ||
			!errors.Is(p.Standing(now), w.standing) || (w.standing == nil) != (p.Standing(now) == nil) ||
			p.SensitiveService != w.sensitive || p.Directory != "test" || p.Name == "" {
			t.Errorf("Lookup(%s) = %+v; want %+v", mail, p, w)
		}
	}
	if p := must(t)(d.Lookup(bg(), "HARRIET.Example@School.cafgate.test")); p.Mail != "harriet.example@school.cafgate.test" {
		t.Errorf("mixed-case look-up gave mail %q", p.Mail)
	}
	for mail, want := range map[string]error{
		"nobody@school.cafgate.test":          directory.ErrNotFound,
		"harriet.example@elsewhere.test":      directory.ErrNotFound,
		"":                                    directory.ErrNotFound,
		"dup.entry@school.cafgate.test":       directory.ErrAmbiguous,
		"DUP.ENTRY@school.cafgate.test":       directory.ErrAmbiguous,
		"harriet.example@school.cafgate.test": nil,
	} {
		if _, err := d.Lookup(bg(), mail); !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("Lookup(%q): %v; want %v", mail, err, want)
		}
	}
	// Entries the map cannot read: an unknown role, an agency the directory may not name.
	bad := practitionerEntry("bad.role", "bad.role@police.cafgate.test", "Eastshire Police", "pw")
	bad.Attrs = append(bad.Attrs, attr("cafRole", "superuser"))
	foreign := practitionerEntry("foreign", "foreign@police.cafgate.test", "Westshire Police", "pw")
	if err := e.srv.Add(marshal(t, bad, foreign)); err != nil {
		t.Fatal(err)
	}
	for _, mail := range []string{"bad.role@police.cafgate.test", "foreign@police.cafgate.test"} {
		if _, err := d.Lookup(bg(), mail); !errors.Is(err, directory.ErrUnavailable) {
			t.Errorf("Lookup(%s): %v; want ErrUnavailable (an entry the map cannot read)", mail, err)
		}
	}
	// A fixed agency overrides what entries say.
	fixed := e.open(t, func(o *Options) { o.Agency, o.Agencies = "Eastshire Police", nil })
	if p := must(t)(fixed.Lookup(bg(), "foreign@police.cafgate.test")); p.Agency != "Eastshire Police" {
		t.Errorf("fixed agency: %q", p.Agency)
	}
}

// TestPool: concurrent look-ups share at most PoolSize connections; without a pool each dials its own.
func TestPool(t *testing.T) {
	t.Parallel()
	e := startCafgateSlapd(t)
	d := e.open(t, func(o *Options) { o.PoolSize = 2 })
	mails := []string{"harriet.example@school.cafgate.test", "rita.notreal@police.cafgate.test", "nobody@police.cafgate.test"}
	var wg sync.WaitGroup
	errs := make(chan error, 80)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				mail := mails[(g+i)%len(mails)]
				if _, err := d.Lookup(bg(), mail); err != nil && !errors.Is(err, directory.ErrNotFound) {
					errs <- err
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := d.Dials(); n < 1 || n > 2 {
		t.Errorf("80 look-ups with a pool of 2 dialled %d connections", n)
	}
	nopool := e.open(t, func(o *Options) { o.PoolSize = 0 })
	for i := 0; i < 5; i++ {
		must(t)(nopool.Lookup(bg(), mails[0]))
	}
	if n := nopool.Dials(); n != 5 {
		t.Errorf("5 look-ups without a pool dialled %d connections", n)
	}
	d.Close()
	if _, err := d.Lookup(bg(), mails[0]); !errors.Is(err, directory.ErrUnavailable) {
		t.Errorf("Lookup after Close: %v", err)
	}
}
