// Package directory answers who a practitioner is: sign-in and look-up by mail against the agency
// directories (a file-backed LDIF directory for development, LDAP for production) behind one interface.
package directory

import (
	"context"
	"errors"
	"time"
)

// Role is one of the roles a practitioner can hold.
type Role string

// The roles of the product brief.
const (
	RolePractitioner       Role = "practitioner"
	RoleLeadProfessional   Role = "lead-professional"
	RoleSafeguardingPerson Role = "safeguarding-person"
	RoleAgencyAdmin        Role = "agency-admin"
	RoleAuditor            Role = "auditor"
)

// Practitioner is a directory entry as the gateway needs it.
type Practitioner struct {
	DN                string
	Mail              string // lower-case
	Name              string
	Agency            string
	Roles             []Role
	Certificates      [][]byte  // DER X.509 S/MIME certificates, unvalidated
	VettingValidUntil time.Time // zero when the directory holds none: treated as lapsed
	Disabled          bool
	SensitiveService  bool   // works in a sensitive service (sexual health, pregnancy, mental health)
	Directory         string // name of the directory that answered
}

// HasRole reports whether p holds role r.
func (p *Practitioner) HasRole(r Role) bool {
	for _, x := range p.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// Standing returns nil when p may send and receive at now, else ErrDisabled or ErrVettingLapsed.
func (p *Practitioner) Standing(now time.Time) error {
	if p.Disabled {
		return ErrDisabled
	}
	if p.VettingValidUntil.IsZero() || !now.Before(p.VettingValidUntil) {
		return ErrVettingLapsed
	}
	return nil
}

// Errors a Directory returns, tested with errors.Is. They may be wrapped with detail for the log.
var (
	// ErrNotFound: no entry has this mail address.
	ErrNotFound = errors.New("directory: no such practitioner")
	// ErrBadCredentials: sign-in refused. Every reason (unknown user, wrong password, empty password,
	// ambiguous entry, locked) is this one error; the wrapped detail is for the log only.
	ErrBadCredentials = errors.New("directory: unknown credentials")
	// ErrUnavailable: the directory is down, slow past its timeout, or answered an error. Callers must
	// treat it as a temporary failure, never as "not found" and never as an acceptance.
	ErrUnavailable = errors.New("directory: unavailable")
	// ErrAmbiguous: more than one entry matched one mail address.
	ErrAmbiguous = errors.New("directory: more than one entry matches")
	// ErrDisabled and ErrVettingLapsed: the entry exists but may neither send nor receive.
	ErrDisabled      = errors.New("directory: account disabled")
	ErrVettingLapsed = errors.New("directory: vetting lapsed")
)

// Directory is what the gateway needs of a practitioner directory.
type Directory interface {
	// Authenticate checks mail and password and returns the entry. Failures are ErrBadCredentials
	// (wrapping the reason) or ErrUnavailable. It never caches.
	Authenticate(ctx context.Context, mail, password string) (*Practitioner, error)
	// Lookup finds the entry with this mail address: ErrNotFound, ErrAmbiguous or ErrUnavailable.
	Lookup(ctx context.Context, mail string) (*Practitioner, error)
}
