package pkg

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"mime"
	"strconv"
)

// ErrNothingAllowed is returned by ForRecipient when no document of the package holds only sections the
// recipient may see: there is nothing to send them.
var ErrNothingAllowed = errors.New("pkg: no document of the package may go to this recipient")

// ForRecipient builds the package one recipient receives: a MIME entity (MIME-Version and a
// multipart/mixed Content-Type, CRLF line ends) holding a new manifest and each document whose sections
// are all in allowed, byte for byte as it arrived. A document that also holds a section the recipient
// may not see is left out whole. The manifest lists the documents sent and, in withheld, every section
// of which something was left out, and nothing of why; it carries no consent, operations or override
// reason. Mail headers (From, To, Subject) are the caller's, outside this entity, which is what gets
// signed and encrypted. It returns ErrNothingAllowed when no document may be sent, and an error when
// Manifest.Child is empty (a plain e-mail's: set it from the episode) or allowed names an unknown section.
func (p *Package) ForRecipient(allowed []Section) ([]byte, error) {
	return p.AppendForRecipient(nil, allowed)
}

// AppendForRecipient is ForRecipient appending the entity to dst (say, after the caller's mail
// header, in a buffer the caller reuses).
func (p *Package) AppendForRecipient(dst []byte, allowed []Section) ([]byte, error) {
	out, docs, err := p.choose(allowed)
	if err != nil {
		return nil, err
	}
	js, err := out.Marshal()
	if err != nil {
		return nil, err
	}
	return writePackage(dst, js, docs), nil
}

// CopySize is ForRecipient without writing the entity: it returns the error ForRecipient would,
// or about the size of the entity it would write (within a few hundred bytes, more where documents
// have bare LF line ends to make CRLF).
func (p *Package) CopySize(allowed []Section) (int, error) {
	out, docs, err := p.choose(allowed)
	if err != nil {
		return 0, err
	}
	js, err := out.Marshal()
	if err != nil {
		return 0, err
	}
	size := 256 + len(js)
	for _, d := range docs {
		size += 128 + len(d.ent.rawHeader) + len(d.ent.body)
	}
	return size, nil
}

// choose is the manifest and documents of allowed's copy (see ForRecipient).
func (p *Package) choose(allowed []Section) (Manifest, []*Document, error) {
	if !isChildID(p.Manifest.Child) {
		return Manifest{}, nil, errors.New("pkg: the package has no valid child identifier; set Manifest.Child from the episode first")
	}
	for _, s := range allowed {
		if !s.Valid() {
			return Manifest{}, nil, errors.New("pkg: allowed names an unknown section " + strconv.Quote(string(s)))
		}
	}
	may := newSectionSet(allowed)
	out := Manifest{Version: FormatVersion, Episode: p.Manifest.Episode, Child: p.Manifest.Child,
		Sender: p.Manifest.Sender, Documents: []DocumentEntry{}}
	withheld := sectionSet{}
	var docs []*Document
	for _, d := range p.Documents {
		if !may.covers(d.Sections) {
			for _, s := range d.Sections {
				withheld[s] = true
			}
			continue
		}
		docs = append(docs, d)
		out.Documents = append(out.Documents, DocumentEntry{Part: d.Part, Sections: append([]Section(nil), d.Sections...)})
	}
	if len(docs) == 0 {
		return Manifest{}, nil, ErrNothingAllowed
	}
	out.Withheld = append([]Section{}, withheld.list()...)
	return out, docs, nil
}

// writePackage appends the multipart/mixed entity to dst: manifest first, then the documents.
func writePackage(dst, manifest []byte, docs []*Document) []byte {
	boundary := chooseBoundary(manifest, docs)
	size := 2*len(manifest) + 512
	for _, d := range docs {
		size += len(d.ent.rawHeader) + len(d.ent.body) + len(d.ent.body)/64 + 256 // room for LF made CRLF
	}
	b := bytes.NewBuffer(dst)
	b.Grow(size)
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: " + mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": boundary}) + "\r\n")
	b.WriteString("\r\n")
	b.WriteString("--" + boundary + "\r\n")
	writeManifestPart(b, manifest)
	for _, d := range docs {
		b.WriteString("\r\n--" + boundary + "\r\n")
		writeDocument(b, d)
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes()
}

func writeManifestPart(b *bytes.Buffer, manifest []byte) {
	b.WriteString("Content-Type: " + ManifestType + "\r\n")
	b.WriteString("Content-Disposition: attachment; filename=manifest.json\r\n")
	if isSevenBit(manifest) {
		b.WriteString("Content-Transfer-Encoding: 7bit\r\n\r\n")
		toCRLF(b, bytes.TrimRight(manifest, "\n"))
		return
	}
	b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(manifest)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
}

func writeDocument(b *bytes.Buffer, d *Document) {
	for _, f := range d.contentFields() {
		toCRLF(b, f)
	}
	if d.setName {
		b.WriteString("Content-Disposition: " + mime.FormatMediaType(d.disposition(), map[string]string{"filename": d.Part}) + "\r\n")
	}
	b.WriteString("\r\n")
	if d.binary() {
		b.Write(d.ent.body)
		return
	}
	toCRLF(b, d.ent.body)
}

// chooseBoundary derives the boundary from a hash of the manifest and the documents' headers and sizes,
// so the same package is always written the same way, and makes sure no content holds it. (Hashing the
// bodies too bought nothing the check below does not, and cost a pass over every byte of every copy.)
func chooseBoundary(manifest []byte, docs []*Document) string {
	h := sha256.New()
	h.Write(manifest)
	for _, d := range docs {
		h.Write(d.ent.rawHeader)
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(d.ent.body))))
	}
	sum := h.Sum(nil)
	for i := 0; ; i++ {
		boundary := "cafgate-" + hex.EncodeToString(sum[:16])
		if !usedIn(boundary, manifest, docs) {
			return boundary
		}
		next := sha256.Sum256(append(sum, byte(i)))
		sum = next[:]
	}
}

func usedIn(boundary string, manifest []byte, docs []*Document) bool {
	if bytes.Contains(manifest, []byte(boundary)) {
		return true
	}
	for _, d := range docs {
		if bytes.Contains(d.ent.body, []byte(boundary)) || bytes.Contains(d.ent.rawHeader, []byte(boundary)) {
			return true
		}
	}
	return false
}

// isSevenBit reports ASCII text whose lines fit in SMTP's 998 characters.
func isSevenBit(b []byte) bool {
	line := 0
	for _, c := range b {
		if c >= 0x80 || c == 0 || c == '\r' {
			return false
		}
		if c == '\n' {
			line = 0
			continue
		}
		if line++; line > 998 {
			return false
		}
	}
	return true
}
