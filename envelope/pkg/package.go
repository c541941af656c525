package pkg

import (
	"errors"
	"io"
	"strings"
)

// Package is a package that passed Parse: its manifest and its documents.
type Package struct {
	// Manifest is the package's manifest; for a plain e-mail, the one its conventions give (Child is
	// then empty unless a CAF-Child header gave it: set it from the episode before ForRecipient).
	Manifest Manifest
	// Documents are in the order of Manifest.Documents.
	Documents []*Document
	// Plain is true for a package read from a plain e-mail (no manifest part).
	Plain bool
	// EpisodeField is where Manifest.Episode came from: "/episode", "header Subject" or "header
	// CAF-Episode" (a package that opens its episode gets the latter from the gateway once stored).
	EpisodeField string
}

// Parse reads a package (at most lim.MaxBytes) and checks it: the MIME structure within lim, the
// manifest against the schema, and every document part named by the manifest and the other way round;
// or, for a message without a manifest part, the plain e-mail conventions. A zero Limits field takes
// its default. Refusals are *Error; an error reading r is returned as it is.
func Parse(r io.Reader, lim Limits) (*Package, error) {
	lim = lim.orDefault()
	data, err := io.ReadAll(io.LimitReader(r, lim.MaxBytes+1))
	if err != nil {
		return nil, err
	}
	return ParseBytes(data, lim)
}

// ParseBytes is Parse on a message already in memory. The package keeps slices of data: do not change
// data while the package is in use.
func ParseBytes(data []byte, lim Limits) (*Package, error) {
	lim = lim.orDefault()
	p, err := parse(data, lim)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func parse(data []byte, lim Limits) (*Package, *Error) {
	if int64(len(data)) > lim.MaxBytes {
		return nil, limitErr("message", "max_bytes", "the message is larger than %d bytes", lim.MaxBytes)
	}
	root, err := walk(data, lim)
	if err != nil {
		return nil, err
	}
	switch root.mediaType {
	case "multipart/signed", "application/pkcs7-mime", "application/x-pkcs7-mime":
		return nil, fieldErr("message", "the message is S/MIME signed or encrypted; its content must be verified and opened before it is read as a package")
	}
	mf, err := findManifest(root)
	if err != nil {
		return nil, err
	}
	if mf == nil {
		return fromPlainMail(root)
	}
	return fromManifest(root, mf, lim)
}

// findManifest returns the manifest part, nil when there is none, or an error when there are several or
// the one is not a part of the top-level multipart/mixed.
func findManifest(root *entity) (*entity, *Error) {
	var found []*entity
	root.walkAll(func(e *entity) {
		if e.mediaType == ManifestType {
			found = append(found, e)
		}
	})
	if len(found) == 0 {
		return nil, nil
	}
	if len(found) > 1 {
		return nil, fieldErr(found[1].name, "the message holds more than one manifest part")
	}
	mf := found[0]
	if root.mediaType != "multipart/mixed" || strings.Contains(mf.number, ".") {
		return nil, fieldErr(mf.name, "the manifest must be a part of the message's top-level multipart/mixed body")
	}
	return mf, nil
}

// fromManifest builds the package of a message with a manifest part.
func fromManifest(root, mf *entity, lim Limits) (*Package, *Error) {
	m, err := readManifestPart(mf, lim)
	if err != nil {
		return nil, err
	}
	episodeField := "/episode"
	if ref, field, err := episodeFromHeader(root.header); err != nil {
		return nil, err
	} else if ref != "" && m.Episode == "" {
		// Only a manifest that opens its episode names none; the reference in a header is the one
		// the gateway gave it (or, in a submission, one the intake refuses).
		m.Episode, episodeField = ref, field
	} else if ref != "" && ref != m.Episode {
		return nil, fieldErr(field, "names another episode than the manifest's /episode")
	}
	if m.Episode == "" {
		episodeField = ""
	}
	byName := map[string]*entity{}
	for _, c := range root.children {
		if c == mf {
			continue
		}
		name, err := c.filename()
		if err != nil {
			return nil, err
		}
		switch {
		case name == "":
			return nil, fieldErr(c.name, "this part has no file name; every document part needs one, listed in the manifest's documents")
		case byName[name] != nil:
			return nil, fieldErr(c.name, "this part has the same file name as an earlier part; each document part needs its own")
		case !m.listsPart(name):
			return nil, fieldErr(c.name, "this part's file name is not listed in the manifest's documents")
		}
		if err := c.checkDecodes(); err != nil {
			return nil, err
		}
		byName[name] = c
	}
	p := &Package{Manifest: *m, EpisodeField: episodeField}
	for i, d := range m.Documents {
		c := byName[d.Part]
		if c == nil {
			return nil, fieldErr(documentPointer(i, "part"), "names no part of the message")
		}
		p.Documents = append(p.Documents, newDocument(c, d.Part, d.Sections, false))
	}
	return p, nil
}

// readManifestPart decodes the manifest part (at most MaxManifestBytes) and parses it.
func readManifestPart(mf *entity, lim Limits) (*Manifest, *Error) {
	if cs, ok := mf.params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		return nil, fieldErr(mf.name, "the manifest must be UTF-8 (charset utf-8 or none)")
	}
	r, err := mf.decoded()
	if err != nil {
		return nil, err
	}
	data, rerr := io.ReadAll(io.LimitReader(r, int64(lim.MaxManifestBytes)+1))
	if rerr != nil {
		return nil, fieldErr(mf.name, "the manifest part is not correctly encoded (Content-Transfer-Encoding)")
	}
	if len(data) > lim.MaxManifestBytes {
		return nil, limitErr(mf.name, "max_manifest_bytes", "the manifest is larger than %d bytes", lim.MaxManifestBytes)
	}
	m, perr := ParseManifest(data)
	if perr != nil {
		var e *Error
		if errors.As(perr, &e) {
			return nil, e
		}
		return nil, &Error{Field: mf.name, Reason: "the manifest could not be read", Err: perr}
	}
	return m, nil
}

func (m *Manifest) listsPart(name string) bool {
	for _, d := range m.Documents {
		if d.Part == name {
			return true
		}
	}
	return false
}

func documentPointer(i int, field string) string {
	return "/documents/" + itoa(i) + "/" + field
}
