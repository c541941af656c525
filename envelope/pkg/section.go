package pkg

import "strings"

// Section is one of the six sections of the CAF form. Its value is the label used in manifests, in the
// CAF-Sections header and in attachment file names.
type Section string

// The sections of the CAF form, in the form's order.
const (
	ChildsDetails         Section = "childs-details"
	DevelopmentOfTheChild Section = "development-of-the-child"
	ParentsAndCarers      Section = "parents-and-carers"
	FamilyAndEnvironment  Section = "family-and-environment"
	ConclusionsAndActions Section = "conclusions-and-actions"
	Consent               Section = "consent"
)

// AllSections returns the six sections in the form's order: the whole assessment.
func AllSections() []Section {
	return []Section{ChildsDetails, DevelopmentOfTheChild, ParentsAndCarers, FamilyAndEnvironment,
		ConclusionsAndActions, Consent}
}

// Valid reports whether s is one of the six sections (exactly, in lower case).
func (s Section) Valid() bool {
	switch s {
	case ChildsDetails, DevelopmentOfTheChild, ParentsAndCarers, FamilyAndEnvironment, ConclusionsAndActions, Consent:
		return true
	}
	return false
}

// Title is the section's name as the CAF form prints it.
func (s Section) Title() string {
	switch s {
	case ChildsDetails:
		return "Child's details"
	case DevelopmentOfTheChild:
		return "Development of the child"
	case ParentsAndCarers:
		return "Parents and carers"
	case FamilyAndEnvironment:
		return "Family and environment"
	case ConclusionsAndActions:
		return "Conclusions and actions"
	case Consent:
		return "Consent"
	}
	return "unknown section"
}

// ParseSectionLabel reads a label as a practitioner may type it (in a header or a file name): case and
// surrounding space are ignored. ok is false for anything that is not one of the six labels.
func ParseSectionLabel(label string) (s Section, ok bool) {
	s = Section(strings.ToLower(strings.TrimSpace(label)))
	return s, s.Valid()
}

// sectionSet is a set of sections kept in the form's order when listed.
type sectionSet map[Section]bool

func newSectionSet(ss []Section) sectionSet {
	set := sectionSet{}
	for _, s := range ss {
		set[s] = true
	}
	return set
}

// covers reports whether every section of ss is in the set.
func (set sectionSet) covers(ss []Section) bool {
	for _, s := range ss {
		if !set[s] {
			return false
		}
	}
	return true
}

// list returns the set's sections in the form's order.
func (set sectionSet) list() []Section {
	var out []Section
	for _, s := range AllSections() {
		if set[s] {
			out = append(out, s)
		}
	}
	return out
}
