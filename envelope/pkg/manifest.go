package pkg

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// ManifestType is the media type of the manifest part.
const ManifestType = "application/vnd.cafgate.manifest+json"

// FormatVersion is the one manifest format version this package reads and writes.
const FormatVersion = 1

// Manifest describes a package: which episode and child it is about, who sent it, and which CAF
// sections each document holds. It is the JSON object that docs/manifest.schema.json describes.
type Manifest struct {
	Version        int                `json:"version"`
	Episode        string             `json:"episode,omitempty"`         // episode reference, CAF-YYYY-NNNNNN; none when opening it
	Child          string             `json:"child"`                     // the child's identifier (opaque to the gateway)
	Sender         string             `json:"sender"`                    // the sending practitioner's mail address
	OverrideReason string             `json:"override_reason,omitempty"` // child-protection override: why
	Operations     []EpisodeOperation `json:"operations,omitempty"`      // changes to the episode
	Consent        *ConsentRecord     `json:"consent,omitempty"`         // consent recorded with this package
	Documents      []DocumentEntry    `json:"documents"`
	Withheld       []Section          `json:"withheld"` // per-recipient packages: what was left out
}

// DocumentEntry names one document part (by its file name) and the sections it holds.
type DocumentEntry struct {
	Part     string    `json:"part"`
	Sections []Section `json:"sections"`
}

// The episode operations a manifest may ask for.
const (
	OpOpen          = "open"           // Lead and Members (the team) required
	OpHandover      = "handover"       // Lead required: the new lead professional
	OpAddMembers    = "add-members"    // Members required
	OpRemoveMembers = "remove-members" // Members required
	OpTransition    = "transition"     // State required
	OpClose         = "close"          // nothing else
)

// The states an OpTransition may name (closing is OpClose).
const (
	StatePreparation = "preparation"
	StateAssessment  = "assessment"
	StateActionPlan  = "action-plan-and-delivery"
	StateReview      = "review"
)

// EpisodeOperation is one change to the episode that the package asks for, applied by the episode and
// consent code in the order given. Which fields are allowed depends on Op.
type EpisodeOperation struct {
	Op      string   `json:"op"`
	Lead    string   `json:"lead,omitempty"`    // mail address
	Members []string `json:"members,omitempty"` // mail addresses
	State   string   `json:"state,omitempty"`
}

// The people who may give consent.
const (
	GivenByChild  = "child"
	GivenByParent = "parent"
	GivenByCarer  = "carer"
)

// ConsentRecord is consent given by the child, a parent or a carer at GivenAt (RFC 3339). It holds no
// free text about the family. Withdrawn means nothing new is shared from GivenAt on.
type ConsentRecord struct {
	GivenBy   string         `json:"given_by"`
	GivenAt   string         `json:"given_at"`
	Grants    []ConsentEntry `json:"grants,omitempty"`
	Refusals  []ConsentEntry `json:"refusals,omitempty"`
	Withdrawn bool           `json:"withdrawn,omitempty"`
}

// ConsentEntry names exactly one of an agency, a practitioner (mail address) or the episode team (grants
// only), and the sections concerned; no sections means the whole assessment.
type ConsentEntry struct {
	Agency       string    `json:"agency,omitempty"`
	Practitioner string    `json:"practitioner,omitempty"`
	Team         bool      `json:"team,omitempty"`
	Sections     []Section `json:"sections,omitempty"`
}

// ParseManifest reads and checks a manifest: JSON, UTF-8, one object, no duplicate field, and every rule
// of docs/manifest.schema.json. An unknown version is refused before anything else is looked at, so a
// newer format is reported as a version problem. Errors are *Error with a JSON pointer in Field.
func ParseManifest(data []byte) (*Manifest, error) {
	if !utf8.Valid(data) {
		return nil, fieldErr("", "the manifest is not UTF-8 text")
	}
	root, err := readJSON(data)
	if err != nil {
		return nil, err
	}
	if err := checkManifest(root); err != nil {
		return nil, err
	}
	var m Manifest
	aux := struct {
		Version json.Number `json:"version"` // 1 may be written 1.0: still version 1
		*Manifest
	}{Manifest: &m}
	if e := json.Unmarshal(data, &aux); e != nil {
		// The checks above admit only what decodes; reaching here is a bug, and still a refusal.
		return nil, &Error{Reason: "the manifest could not be read", Err: e}
	}
	m.Version = FormatVersion
	return &m, nil
}

// Marshal returns the manifest as indented JSON with a final newline, the form this package writes.
// It does not check the manifest; ParseManifest on the result does.
func (m *Manifest) Marshal() ([]byte, error) {
	out := *m
	if out.Withheld == nil {
		out.Withheld = []Section{} // always written: a delivered package says what was withheld, even nothing
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Opens reports whether the manifest's first operation opens the episode (the manifest then names no
// episode reference: the gateway gives it).
func (m *Manifest) Opens() bool { return len(m.Operations) > 0 && m.Operations[0].Op == OpOpen }

// AllSections returns the sections the manifest's documents hold, in the form's order.
func (m *Manifest) AllSections() []Section {
	set := sectionSet{}
	for _, d := range m.Documents {
		for _, s := range d.Sections {
			set[s] = true
		}
	}
	return set.list()
}
