// Package policy decides, for one package and one recipient, what that recipient may see: from the
// episode (state, lead, team), the consent in force, the sender's and the recipient's directory entries
// and the package (its sections and any child protection override). It is pure: no I/O, no clock, no
// randomness; callers pass everything in. docs/consent.md describes the rules with worked examples.
package policy

import (
	"errors"
	"fmt"
	"strings"
)

// Section is one part of the CAF form a package may hold.
type Section string

// The six sections of the CAF form, in form order.
const (
	SectionChildsDetails         Section = "childs-details"
	SectionDevelopment           Section = "development-of-the-child"
	SectionParentsAndCarers      Section = "parents-and-carers"
	SectionFamilyAndEnvironment  Section = "family-and-environment"
	SectionConclusionsAndActions Section = "conclusions-and-actions"
	SectionConsent               Section = "consent"
)

// allSections is the form order; the index of a section is its bit in a sectionSet.
var allSections = [...]Section{SectionChildsDetails, SectionDevelopment, SectionParentsAndCarers,
	SectionFamilyAndEnvironment, SectionConclusionsAndActions, SectionConsent}

var sectionTitles = [...]string{"child's details", "development of the child", "parents and carers",
	"family and environment", "conclusions and actions", "consent"}

// ErrInvalid marks input that breaks the model: an unknown section, a malformed grant, a bad transition.
var ErrInvalid = errors.New("policy: invalid")

// AllSections returns the six sections in form order.
func AllSections() []Section { return append([]Section(nil), allSections[:]...) }

// index returns the section's position in form order, or -1 when it is not one of the six.
func (s Section) index() int {
	for i, x := range allSections {
		if x == s {
			return i
		}
	}
	return -1
}

// Valid reports whether s is one of the six sections.
func (s Section) Valid() bool { return s.index() >= 0 }

// Title is the section's name in words, as a practitioner reads it ("family and environment").
func (s Section) Title() string {
	if i := s.index(); i >= 0 {
		return sectionTitles[i]
	}
	return string(s)
}

// ParseSection accepts a section's identifier, case-insensitively.
func ParseSection(s string) (Section, error) {
	sec := Section(strings.ToLower(strings.TrimSpace(s)))
	if !sec.Valid() {
		return "", fmt.Errorf("%w: unknown section %q (known: %s)", ErrInvalid, s, sectionList())
	}
	return sec, nil
}

// ParseSections parses a comma-separated list; "all" (alone) means every section and returns nil,
// which grants read as the whole assessment.
func ParseSections(list string) ([]Section, error) {
	if strings.EqualFold(strings.TrimSpace(list), "all") {
		return nil, nil
	}
	var out []Section
	for _, part := range strings.Split(list, ",") {
		sec, err := ParseSection(part)
		if err != nil {
			return nil, err
		}
		out = append(out, sec)
	}
	return setOf(out).list(), nil
}

func sectionList() string {
	names := make([]string, len(allSections))
	for i, s := range allSections {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// sectionSet is a set of sections as bits, in form order.
type sectionSet uint8

const everySection sectionSet = 1<<len(allSections) - 1

// setOf returns the set of the valid sections in list (unknown ones are left out; validate first).
func setOf(list []Section) sectionSet {
	var set sectionSet
	for _, s := range list {
		if i := s.index(); i >= 0 {
			set |= 1 << i
		}
	}
	return set
}

// wholeOr returns every section for an empty list (the whole assessment), else the set of list.
func wholeOr(list []Section) sectionSet {
	if len(list) == 0 {
		return everySection
	}
	return setOf(list)
}

func (set sectionSet) has(s Section) bool { i := s.index(); return i >= 0 && set&(1<<i) != 0 }

// list returns the members in form order; nil for the empty set.
func (set sectionSet) list() []Section {
	if set == 0 {
		return nil
	}
	out := make([]Section, 0, len(allSections))
	for i, s := range allSections {
		if set&(1<<i) != 0 {
			out = append(out, s)
		}
	}
	return out
}

// titles returns the members' titles joined for a sentence: "a", "a and b", "a, b and c".
func (set sectionSet) titles() string {
	var names []string
	for i := range allSections {
		if set&(1<<i) != 0 {
			names = append(names, sectionTitles[i])
		}
	}
	return joinWords(names)
}

// joinWords joins names as English does: "a", "a and b", "a, b and c".
func joinWords(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
