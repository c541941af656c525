package mailbox

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"cafgate/directory"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// episodeStore opens a fresh store with a settable clock starting 2025-03-04 09:00 UTC.
func episodeStore(t testing.TB) (*Store, *clock, ChildKey) {
	t.Helper()
	clk := &clock{t: time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC)}
	opt := testOpts(t)
	opt.Now = clk.Now
	s := openTest(t, opt)
	key, err := DeriveChildKey(opt.ContentKey)
	if err != nil {
		t.Fatal(err)
	}
	return s, clk, key
}

func samplePerson(mail, agency string, roles ...directory.Role) *directory.Practitioner {
	return &directory.Practitioner{Mail: mail, Agency: agency, Roles: append([]directory.Role{directory.RolePractitioner}, roles...),
		VettingValidUntil: time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC)}
}

// The sample directory's people, as the directory would return them.
var (
	pPriya   = samplePerson("priya.placeholder@health.cafgate.test", "Riverside Community Health", directory.RoleLeadProfessional)
	pHarriet = samplePerson("harriet.example@school.cafgate.test", "Northfield Primary School", directory.RoleSafeguardingPerson)
	pGwen    = samplePerson("gwen.testcase@socialcare.cafgate.test", "Eastshire Children's Services")
	pRita    = samplePerson("rita.notreal@police.cafgate.test", "Eastshire Police")
	pSam     = func() *directory.Practitioner {
		p := samplePerson("sam.fictitious@health.cafgate.test", "Riverside Community Health")
		p.SensitiveService = true
		return p
	}()
	pOliver = func() *directory.Practitioner {
		p := samplePerson("oliver.sample@school.cafgate.test", "Northfield Primary School")
		p.VettingValidUntil = time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC)
		return p
	}()
	pTom = func() *directory.Practitioner {
		p := samplePerson("tom.pretend@police.cafgate.test", "Eastshire Police")
		p.Disabled = true
		return p
	}()
)

// fakeDirectory answers Lookup from a fixed list.
type fakeDirectory []*directory.Practitioner

func (d fakeDirectory) Lookup(_ context.Context, mail string) (*directory.Practitioner, error) {
	for _, p := range d {
		if strings.EqualFold(p.Mail, mail) {
			c := *p
			return &c, nil
		}
	}
	return nil, directory.ErrNotFound
}

func (d fakeDirectory) Authenticate(context.Context, string, string) (*directory.Practitioner, error) {
	return nil, directory.ErrBadCredentials
}

var sampleDirectory = fakeDirectory{pPriya, pHarriet, pGwen, pRita, pSam, pOliver, pTom}

// ledgerTypes returns the types of the ledger events after seq, in order.
func ledgerTypes(t testing.TB, s *Store, afterSeq int) []string {
	t.Helper()
	rows, err := s.rdb.Query(`SELECT type FROM ledger_events WHERE seq > ? ORDER BY seq`, afterSeq)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var typ string
		if err := rows.Scan(&typ); err != nil {
			t.Fatal(err)
		}
		out = append(out, typ)
	}
	return out
}
