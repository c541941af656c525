// Consent: record a new version (complete in itself; amending is recording again) and withdraw. The
// grants and refusals take the form of the manifest's consent (docs/package-format.md): each names an
// agency, a practitioner or (grants only) the team, and optionally sections. The lead professional
// records consent; any member of the team may record a withdrawal, which only ever shares less.

package api

import (
	"fmt"
	"net/http"
	"time"

	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
	"cafgate/policy"
)

// consentOut is one consent version.
type consentOut struct {
	Episode    string         `json:"episode"`
	Version    int            `json:"version"`
	GivenBy    string         `json:"given_by"`
	GivenAt    time.Time      `json:"given_at"`
	RecordedAt time.Time      `json:"recorded_at"`
	RecordedBy string         `json:"recorded_by"`
	Withdrawn  bool           `json:"withdrawn"`
	Grants     []consentEntry `json:"grants"`
	Refusals   []consentEntry `json:"refusals"`
}

// consentEntry names exactly one of an agency, a practitioner or the team, and the sections concerned
// (none: the whole assessment, or for a refusal everything).
type consentEntry struct {
	Agency       string   `json:"agency,omitempty"`
	Practitioner string   `json:"practitioner,omitempty"`
	Team         bool     `json:"team,omitempty"`
	Sections     []string `json:"sections,omitempty"`
}

func toConsentOut(c *policy.Consent) *consentOut {
	if c == nil {
		return nil
	}
	out := &consentOut{Episode: c.Episode, Version: c.Version, GivenBy: string(c.GivenBy), GivenAt: c.GivenAt.UTC(),
		RecordedAt: c.RecordedAt.UTC(), RecordedBy: c.RecordedBy, Withdrawn: c.Withdrawn,
		Grants: []consentEntry{}, Refusals: []consentEntry{}}
	for _, g := range c.Grants {
		e := scopeEntry(g.To, g.Name)
		e.Sections = sectionNames(g.Sections)
		if len(e.Sections) == 0 {
			e.Sections = nil
		}
		out.Grants = append(out.Grants, e)
	}
	for _, r := range c.Refusals {
		e := scopeEntry(r.Of, r.Name)
		if r.Section != "" {
			e.Sections = []string{string(r.Section)}
		}
		out.Refusals = append(out.Refusals, e)
	}
	return out
}

func scopeEntry(kind policy.ScopeKind, name string) consentEntry {
	switch kind {
	case policy.ScopeAgency:
		return consentEntry{Agency: name}
	case policy.ScopePerson:
		return consentEntry{Practitioner: name}
	}
	return consentEntry{Team: true}
}

func (h *Handler) recordConsent(rq *request) (*reply, *Problem) {
	ea, p := h.visibleEpisode(rq)
	if p != nil {
		return nil, p
	}
	if err := policy.MayManage(ea.Episode, rq.actor, h.opt.Now()); err != nil {
		return nil, faultProblem(fault.NotPermitted, "Only the episode's lead professional may record consent; any member of the team may record a withdrawal.", "", err)
	}
	body, p := h.readJSON(rq, false)
	if p != nil {
		return nil, p
	}
	c, p := h.consentBase(body)
	if p != nil {
		return nil, p
	}
	if c.Grants, p = readGrants(body); p != nil {
		return nil, p
	}
	if c.Refusals, p = readRefusals(body); p != nil {
		return nil, p
	}
	if p := body.done(); p != nil {
		return nil, p
	}
	return h.storeConsent(rq, ea.Episode.Ref, c)
}

func (h *Handler) withdrawConsent(rq *request) (*reply, *Problem) {
	ea, p := h.visibleEpisode(rq)
	if p != nil {
		return nil, p
	}
	body, p := h.readJSON(rq, false)
	if p != nil {
		return nil, p
	}
	c, p := h.consentBase(body)
	if p != nil {
		return nil, p
	}
	if p := body.done(); p != nil {
		return nil, p
	}
	c.Withdrawn = true
	return h.storeConsent(rq, ea.Episode.Ref, c)
}

// consentBase reads who gave the consent and when.
func (h *Handler) consentBase(body *jsonObject) (policy.Consent, *Problem) {
	var c policy.Consent
	giver, p := body.str("given_by", true)
	if p != nil {
		return c, p
	}
	if c.GivenBy, p = parseGiver(giver); p != nil {
		return c, p
	}
	at, p := body.str("given_at", false)
	if p != nil || at == "" {
		return c, p
	}
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return c, invalid("/given_at", "The time consent was given must be an RFC 3339 time, such as 2026-03-01T10:30:00Z.", err)
	}
	if t.After(h.opt.Now().Add(5 * time.Minute)) {
		return c, invalid("/given_at", "Consent cannot have been given in the future.", nil)
	}
	c.GivenAt = t
	return c, nil
}

func parseGiver(s string) (policy.Giver, *Problem) {
	g, err := policy.ParseGiver(s)
	if err != nil {
		return "", invalid("/given_by", "Consent is given by the child, a parent or a carer: child, parent or carer.", err)
	}
	return g, nil
}

// storeConsent records c and answers with the version as stored.
func (h *Handler) storeConsent(rq *request, ref string, c policy.Consent) (*reply, *Problem) {
	c.RecordedBy = rq.by()
	if err := c.Validate(); err != nil {
		return nil, invalid("", sentenceOf(err), err)
	}
	stored, err := h.opt.Store.RecordConsent(rq.ctx, ref, c)
	if err != nil {
		return nil, episodeProblem(err, "")
	}
	rq.note("episode", ref, "consent_version", stored.Version, "withdrawn", stored.Withdrawn)
	return &reply{status: http.StatusCreated, header: http.Header{}, body: toConsentOut(stored)}, nil
}

// readGrants reads /grants: each names exactly one of agency, practitioner or team.
func readGrants(body *jsonObject) ([]policy.Grant, *Problem) {
	entries, p := body.objects("grants")
	if p != nil {
		return nil, p
	}
	var out []policy.Grant
	for _, e := range entries {
		kind, name, sections, p := readEntry(e, true)
		if p != nil {
			return nil, p
		}
		out = append(out, policy.Grant{To: kind, Name: name, Sections: sections})
	}
	return out, nil
}

// readRefusals reads /refusals: each names an agency or a practitioner; a refusal of several sections
// is one refusal per section.
func readRefusals(body *jsonObject) ([]policy.Refusal, *Problem) {
	entries, p := body.objects("refusals")
	if p != nil {
		return nil, p
	}
	var out []policy.Refusal
	for _, e := range entries {
		kind, name, sections, p := readEntry(e, false)
		if p != nil {
			return nil, p
		}
		if len(sections) == 0 {
			out = append(out, policy.Refusal{Of: kind, Name: name})
		}
		for _, s := range sections {
			out = append(out, policy.Refusal{Of: kind, Name: name, Section: s})
		}
	}
	return out, nil
}

// readEntry reads one grant or refusal.
func readEntry(e *jsonObject, teamAllowed bool) (policy.ScopeKind, string, []policy.Section, *Problem) {
	agency, p := e.str("agency", false)
	if p != nil {
		return "", "", nil, p
	}
	person, p := e.str("practitioner", false)
	if p != nil {
		return "", "", nil, p
	}
	team, p := e.boolean("team")
	if p != nil {
		return "", "", nil, p
	}
	names, p := e.strs("sections")
	if p != nil {
		return "", "", nil, p
	}
	if p := e.done(); p != nil {
		return "", "", nil, p
	}
	var kind policy.ScopeKind
	var name string
	n := 0
	if agency != "" {
		kind, name, n = policy.ScopeAgency, agency, n+1
	}
	if person != "" {
		kind, name, n = policy.ScopePerson, person, n+1
	}
	if team {
		kind, n = policy.ScopeTeam, n+1
	}
	switch {
	case team && !teamAllowed:
		return "", "", nil, invalid(e.at("team"), "A refusal names an agency or a practitioner, not the team.", nil)
	case n != 1:
		return "", "", nil, invalid(e.ptr, "Name exactly one of agency, practitioner or team.", nil)
	}
	var sections []policy.Section
	for i, s := range names {
		sec, err := policy.ParseSection(s)
		if err != nil {
			return "", "", nil, invalid(fmt.Sprintf("%s/%d", e.at("sections"), i), "This is not one of the six CAF sections.", err)
		}
		sections = append(sections, sec)
	}
	if kind == policy.ScopePerson {
		if intake.NormalizeMail(name) == "" {
			return "", "", nil, invalid(e.at("practitioner"), "This is not a practitioner's mail address.", nil)
		}
	}
	return kind, name, sections, nil
}
