package pkg

import (
	"bufio"
	"bytes"
	"io"
	"path"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// The headers of the plain e-mail conventions (docs/package-format.md).
const (
	HeaderEpisode        = "CAF-Episode"         // the episode reference, when the Subject does not carry it
	HeaderSections       = "CAF-Sections"        // the sections of the whole mail (default: all six)
	HeaderChild          = "CAF-Child"           // the child's identifier (optional)
	HeaderOverrideReason = "CAF-Override-Reason" // a child-protection override's reason
)

var (
	subjectRef  = regexp.MustCompile(`\[(CAF-[0-9]{4}-[0-9]{6})\]`)
	fileLabels  = regexp.MustCompile(`(?i)^\[CAF:([^\]]*)\]`)
	labelSplit  = func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }
	bodyNameFor = map[string]string{"text/plain": "message.txt", "text/html": "message.html"}
)

// episodeFromHeader returns the episode reference the Subject ("[CAF-2026-000123]" anywhere in it) or
// the CAF-Episode header carries, and which of them gave it. Two different references are refused.
func episodeFromHeader(h message.Header) (ref, field string, err *Error) {
	if v := strings.TrimSpace(h.Get(HeaderEpisode)); v != "" {
		v = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
		if !isEpisodeRef(v) {
			return "", "", fieldErr("header "+HeaderEpisode, "must be an episode reference like CAF-2026-000123")
		}
		ref, field = v, "header "+HeaderEpisode
	}
	mh := mail.Header{Header: h}
	subject, serr := mh.Subject()
	if serr != nil {
		subject = h.Get("Subject") // an unknown charset: the reference is ASCII either way
	}
	for _, m := range subjectRef.FindAllStringSubmatch(subject, -1) {
		switch {
		case ref == "":
			ref, field = m[1], "header Subject"
		case ref != m[1]:
			return "", "", fieldErr("header Subject", "names more than one episode; a package is for one episode")
		}
	}
	return ref, field, nil
}

// fromPlainMail builds the package of a plain e-mail: the episode from the Subject or CAF-Episode, the
// sender from From, and one document per part of the top-level body (the text the practitioner wrote,
// and each attachment).
func fromPlainMail(root *entity) (*Package, *Error) {
	ref, refField, err := episodeFromHeader(root.header)
	if err != nil {
		return nil, err
	}
	if ref == "" {
		return nil, fieldErr("header Subject", "the message has no manifest, and neither its Subject nor a CAF-Episode header carries an episode reference like [CAF-2026-000123]")
	}
	m := Manifest{Version: FormatVersion, Episode: ref}
	if m.Sender, err = plainSender(root.header); err != nil {
		return nil, err
	}
	if m.Child, err = plainChild(root.header); err != nil {
		return nil, err
	}
	if m.OverrideReason, err = plainOverride(root.header); err != nil {
		return nil, err
	}
	defaults := AllSections()
	if v := root.header.Get(HeaderSections); v != "" {
		if defaults, err = parseLabels(v, "header "+HeaderSections); err != nil {
			return nil, err
		}
	}
	docs, err := plainDocuments(root, defaults)
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, fieldErr("message", "the message holds neither text nor attachments")
	}
	p := &Package{Manifest: m, Documents: docs, Plain: true, EpisodeField: refField}
	for _, d := range docs {
		p.Manifest.Documents = append(p.Manifest.Documents, DocumentEntry{Part: d.Part, Sections: d.Sections})
	}
	return p, nil
}

func plainSender(h message.Header) (string, *Error) {
	addrs, err := (&mail.Header{Header: h}).AddressList("From")
	if err != nil || len(addrs) != 1 || !isMail(addrs[0].Address) || len(addrs[0].Address) > maxMail {
		return "", fieldErr("header From", "must hold exactly one mail address")
	}
	return strings.ToLower(addrs[0].Address), nil
}

func plainChild(h message.Header) (string, *Error) {
	v := strings.TrimSpace(h.Get(HeaderChild))
	if v != "" && !isChildID(v) {
		return "", fieldErr("header "+HeaderChild, "must be a child identifier: 1 to 64 letters, digits and . _ : / - starting with a letter or digit")
	}
	return v, nil
}

func plainOverride(h message.Header) (string, *Error) {
	if h.Get(HeaderOverrideReason) == "" {
		return "", nil
	}
	v, err := h.Text(HeaderOverrideReason)
	if err != nil || !hasVisible(v) || utf8.RuneCountInString(v) > maxReason || !isPlainText(v) {
		return "", fieldErr("header "+HeaderOverrideReason, "must give the reason for the override in words (at most 1000 characters)")
	}
	return strings.TrimSpace(v), nil
}

// parseLabels reads section labels separated by commas or spaces; field names where they came from.
func parseLabels(v, field string) ([]Section, *Error) {
	set := sectionSet{}
	for _, tok := range strings.FieldsFunc(v, labelSplit) {
		s, ok := ParseSectionLabel(tok)
		if !ok {
			return nil, fieldErr(field, "names something that is not %s", sectionList)
		}
		set[s] = true
	}
	if len(set) == 0 {
		return nil, fieldErr(field, "names no section; give %s", sectionList)
	}
	return set.list(), nil
}

// plainDocuments makes a document of each part of a multipart/mixed body, or of the whole body
// otherwise. An attachment whose file name starts with "[CAF: labels]" holds those sections; every other
// document holds defaults. A text part without a file name that holds only white space (what a mail
// client sends with bare attachments) is left out.
func plainDocuments(root *entity, defaults []Section) ([]*Document, *Error) {
	parts := []*entity{root}
	if root.mediaType == "multipart/mixed" {
		parts = root.children
	}
	names := map[string]bool{}
	var docs []*Document
	for _, e := range parts {
		name, err := e.filename()
		if err != nil {
			return nil, err
		}
		if name == "" && e.isBlankText() {
			continue
		}
		sections := defaults
		if m := fileLabels.FindStringSubmatch(name); m != nil {
			if sections, err = parseLabels(m[1], e.name); err != nil {
				return nil, err
			}
		}
		if err := e.checkDecodes(); err != nil {
			return nil, err
		}
		part := uniqueName(safeName(name, e.mediaType), names)
		docs = append(docs, newDocument(e, part, sections, part != name))
	}
	return docs, nil
}

// isBlankText reports a text/plain part whose decoded content is only white space.
func (e *entity) isBlankText() bool {
	if e.mediaType != "text/plain" || e.isAttachment() {
		return false
	}
	if identityEncoding(e.header.Get("Content-Transfer-Encoding")) {
		return len(bytes.TrimSpace(e.body)) == 0 // no copy: a 1 MiB text is judged by its first letter
	}
	r, err := e.decoded()
	if err != nil {
		return false
	}
	// Decoded a rune at a time, stopping at the first that is not white space (bytes.TrimSpace's test).
	br := bufio.NewReader(r)
	for {
		c, _, err := br.ReadRune()
		switch {
		case err == io.EOF:
			return true
		case err != nil, !unicode.IsSpace(c):
			return false
		}
	}
}

// safeName makes a part name the manifest accepts from a file name a mail client gave (or none).
func safeName(name, mediaType string) string {
	if name == "" {
		if n, ok := bodyNameFor[mediaType]; ok {
			return n
		}
		return "message"
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return '_'
		}
		return r
	}, name)
	if name == "." || name == ".." {
		name = "_"
	}
	if utf8.RuneCountInString(name) > maxPartName {
		name = string([]rune(name)[:maxPartName])
	}
	return name
}

// uniqueName returns name, or name with " (2)", " (3)"... before its extension when taken, and marks
// the result taken.
func uniqueName(name string, taken map[string]bool) string {
	out := name
	ext := path.Ext(name)
	base := strings.TrimSuffix(name, ext)
	for i := 2; taken[out]; i++ {
		suffix := " (" + itoa(i) + ")"
		if n := utf8.RuneCountInString(suffix + ext); utf8.RuneCountInString(base)+n > maxPartName {
			base = string([]rune(base)[:maxPartName-n])
		}
		out = base + suffix + ext
	}
	taken[out] = true
	return out
}
