// The short written form of grants and refusals, used by the CLI and docs/consent.md:
//
//	team                          the whole assessment to the episode's team
//	team:childs-details,consent   two sections to the team
//	agency=Eastshire Police       an agency (grant) or refusal of an agency
//	person=rita@police.example:family-and-environment
//
// Sections follow the last colon; "all" means the whole assessment (needed when an agency's name
// itself holds a colon).

package policy

import (
	"fmt"
	"strings"
)

// ParseGrant reads one grant in the short form.
func ParseGrant(spec string) (Grant, error) {
	kind, name, sections, err := splitSpec(spec)
	if err != nil {
		return Grant{}, err
	}
	g := Grant{To: kind, Name: name, Sections: sections}
	if err := g.normalise(); err != nil {
		return Grant{}, fmt.Errorf("grant %q: %w", spec, err)
	}
	return g, nil
}

// ParseRefusal reads one refusal in the short form; a list of sections gives one refusal per section.
func ParseRefusal(spec string) ([]Refusal, error) {
	kind, name, sections, err := splitSpec(spec)
	if err != nil {
		return nil, err
	}
	if len(sections) == 0 {
		sections = []Section{""}
	}
	out := make([]Refusal, 0, len(sections))
	for _, s := range sections {
		r := Refusal{Of: kind, Name: name, Section: s}
		if err := r.normalise(); err != nil {
			return nil, fmt.Errorf("refusal %q: %w", spec, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// splitSpec splits "kind=name:sections" (or "team[:sections]").
func splitSpec(spec string) (ScopeKind, string, []Section, error) {
	body := strings.TrimSpace(spec)
	var secPart string
	hasSections := false
	if i := strings.LastIndexByte(body, ':'); i >= 0 {
		body, secPart, hasSections = body[:i], body[i+1:], true
	}
	var kind ScopeKind
	var name string
	if k, n, ok := strings.Cut(body, "="); ok {
		kind, name = ScopeKind(strings.ToLower(strings.TrimSpace(k))), n
	} else {
		kind = ScopeKind(strings.ToLower(strings.TrimSpace(body)))
	}
	if !hasSections {
		return kind, name, nil, nil
	}
	sections, err := ParseSections(secPart)
	if err != nil {
		return "", "", nil, fmt.Errorf("%q: %w (an agency name holding a colon needs \":all\" or a section list after it)", spec, err)
	}
	return kind, name, sections, nil
}

// String gives the grant in the short form.
func (g Grant) String() string {
	return specString(g.To, g.Name, sectionNames(g.Sections))
}

// String gives the refusal in the short form.
func (r Refusal) String() string {
	var secs string
	if r.Section != "" {
		secs = string(r.Section)
	}
	return specString(r.Of, r.Name, secs)
}

func specString(kind ScopeKind, name, sections string) string {
	s := string(kind)
	if kind != ScopeTeam {
		s += "=" + name
	}
	if sections == "" && strings.Contains(name, ":") {
		sections = "all"
	}
	if sections != "" {
		s += ":" + sections
	}
	return s
}

func sectionNames(list []Section) string {
	names := make([]string, len(list))
	for i, s := range list {
		names[i] = string(s)
	}
	return strings.Join(names, ",")
}

// Describe is the consent in brief, in words: who gave it, and what it shares and refuses.
func (c *Consent) Describe() string {
	head := fmt.Sprintf("version %d, given by the %s", c.Version, c.GivenBy)
	if c.Withdrawn {
		return head + ": withdrawn; nothing new is shared"
	}
	var grants, refusals []string
	for _, g := range c.Grants {
		grants = append(grants, scopeWords(g.To, g.Name)+" ("+wholeOr(g.Sections).titlesOrWhole()+")")
	}
	for _, r := range c.Refusals {
		what := "everything"
		if r.Section != "" {
			what = r.Section.Title()
		}
		refusals = append(refusals, scopeWords(r.Of, r.Name)+" ("+what+")")
	}
	out := head + ": shares with "
	if len(grants) == 0 {
		out += "no one"
	} else {
		out += joinWords(grants)
	}
	if len(refusals) > 0 {
		out += "; refuses " + joinWords(refusals)
	}
	return out
}

func scopeWords(kind ScopeKind, name string) string {
	if kind == ScopeTeam {
		return "the team"
	}
	return name
}

func (set sectionSet) titlesOrWhole() string {
	if set == everySection {
		return "the whole assessment"
	}
	return set.titles()
}
