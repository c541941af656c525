// Consent: each version is a complete statement by the child, a parent or a carer of who may receive
// what; a later version replaces the earlier one from the moment it is recorded, and the history is
// kept by the store.

package policy

import (
	"fmt"
	"strings"
	"time"
)

// Giver is who gave (or withdrew) consent. No free text about the family is kept.
type Giver string

// The people who may give consent.
const (
	GivenByChild  Giver = "child"
	GivenByParent Giver = "parent"
	GivenByCarer  Giver = "carer"
)

// ParseGiver accepts child, parent or carer.
func ParseGiver(s string) (Giver, error) {
	g := Giver(strings.ToLower(strings.TrimSpace(s)))
	switch g {
	case GivenByChild, GivenByParent, GivenByCarer:
		return g, nil
	}
	return "", fmt.Errorf("%w: consent is given by the child, a parent or a carer, not %q", ErrInvalid, s)
}

// ScopeKind is whom a grant or refusal is about.
type ScopeKind string

// Scopes. A refusal is about an agency or a person, never the team.
const (
	ScopeTeam   ScopeKind = "team"   // every member of the episode's team
	ScopeAgency ScopeKind = "agency" // every practitioner of the agency (directory agency name)
	ScopePerson ScopeKind = "person" // one named practitioner (mail)
)

// Grant shares sections (none listed: the whole assessment) with a scope.
type Grant struct {
	To       ScopeKind `json:"to"`
	Name     string    `json:"name,omitempty"`     // agency name or practitioner mail; empty for the team
	Sections []Section `json:"sections,omitempty"` // empty: the whole assessment
}

// Refusal withholds one section (none: everything) from an agency or a named practitioner.
type Refusal struct {
	Of      ScopeKind `json:"of"`
	Name    string    `json:"name"`
	Section Section   `json:"section,omitempty"` // empty: everything
}

// Consent is one version of an episode's consent: complete in itself, never changed once recorded.
type Consent struct {
	Episode    string    `json:"episode"`
	Version    int       `json:"version"` // 1, 2, 3… per episode, assigned by the store
	GivenBy    Giver     `json:"given_by"`
	GivenAt    time.Time `json:"given_at"`    // when the family gave it (may be before it was recorded)
	RecordedAt time.Time `json:"recorded_at"` // when the gateway recorded it: in force from then on
	RecordedBy string    `json:"recorded_by"` // practitioner or administrator who recorded it
	Grants     []Grant   `json:"grants,omitempty"`
	Refusals   []Refusal `json:"refusals,omitempty"`
	Withdrawn  bool      `json:"withdrawn,omitempty"` // nothing new is shared (an override aside)
}

// Validate checks c and normalises it in place (mails lower-case, names trimmed, sections deduplicated
// in form order). Errors wrap ErrInvalid and name the entry at fault.
func (c *Consent) Validate() error {
	if _, err := ParseGiver(string(c.GivenBy)); err != nil {
		return err
	}
	c.GivenBy = Giver(strings.ToLower(strings.TrimSpace(string(c.GivenBy))))
	if c.Withdrawn && len(c.Grants) > 0 {
		return fmt.Errorf("%w: a withdrawal grants nothing; record new consent as a separate version", ErrInvalid)
	}
	for i := range c.Grants {
		if err := c.Grants[i].normalise(); err != nil {
			return fmt.Errorf("grant %d: %w", i+1, err)
		}
	}
	for i := range c.Refusals {
		if err := c.Refusals[i].normalise(); err != nil {
			return fmt.Errorf("refusal %d: %w", i+1, err)
		}
	}
	return nil
}

func (g *Grant) normalise() error {
	name, err := scopeName(g.To, g.Name, true)
	if err != nil {
		return err
	}
	g.Name = name
	for _, s := range g.Sections {
		if !s.Valid() {
			return fmt.Errorf("%w: unknown section %q", ErrInvalid, s)
		}
	}
	g.Sections = setOf(g.Sections).list()
	if len(g.Sections) == len(allSections) {
		g.Sections = nil // every section listed is the whole assessment
	}
	return nil
}

func (r *Refusal) normalise() error {
	name, err := scopeName(r.Of, r.Name, false)
	if err != nil {
		return err
	}
	r.Name = name
	if r.Section != "" && !r.Section.Valid() {
		return fmt.Errorf("%w: unknown section %q", ErrInvalid, r.Section)
	}
	return nil
}

// scopeName checks a scope and returns its normalised name.
func scopeName(kind ScopeKind, name string, teamAllowed bool) (string, error) {
	name = strings.TrimSpace(name)
	switch kind {
	case ScopeTeam:
		if !teamAllowed {
			return "", fmt.Errorf("%w: a refusal names an agency or a person, not the team", ErrInvalid)
		}
		if name != "" {
			return "", fmt.Errorf("%w: the team takes no name", ErrInvalid)
		}
		return "", nil
	case ScopeAgency:
		if name == "" {
			return "", fmt.Errorf("%w: agency name missing", ErrInvalid)
		}
		return name, nil
	case ScopePerson:
		if strings.Count(name, "@") != 1 || strings.HasPrefix(name, "@") || strings.HasSuffix(name, "@") {
			return "", fmt.Errorf("%w: %q is not a practitioner's mail address", ErrInvalid, name)
		}
		return strings.ToLower(name), nil
	}
	return "", fmt.Errorf("%w: unknown scope %q (team, agency or person)", ErrInvalid, kind)
}

// InForce returns the version in force at t: the one recorded last at or before t, or nil. versions may
// be in any order.
func InForce(versions []Consent, t time.Time) *Consent {
	var best *Consent
	for i := range versions {
		v := &versions[i]
		if v.RecordedAt.After(t) {
			continue
		}
		if best == nil || v.Version > best.Version {
			best = v
		}
	}
	return best
}
