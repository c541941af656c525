package pkg

import (
	"bytes"
	"io"
	"strconv"
	"strings"
)

// Document is one document of a package: a MIME part kept as it arrived (its Content-* header fields
// and its still-encoded body), the name the manifest gives it, and the sections it holds.
type Document struct {
	Part      string    // the file name the manifest names it by
	Sections  []Section // the CAF sections it holds
	MediaType string    // its Content-Type without parameters, lower case (text/plain when it had none)

	ent     *entity
	setName bool // write a Content-Disposition that gives Part as the file name
}

func newDocument(e *entity, part string, sections []Section, setName bool) *Document {
	return &Document{Part: part, Sections: sections, MediaType: e.mediaType, ent: e, setName: setName}
}

// Content returns the document's bytes with the transfer encoding undone (base64, quoted-printable);
// the charset of a text part is left as it is. A multipart document (a plain e-mail's text and HTML
// body) is returned as its raw MIME body.
func (d *Document) Content() ([]byte, error) {
	r, err := d.ent.decoded()
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// EncodedSize is the size of the document's body as it travels (transfer-encoded).
func (d *Document) EncodedSize() int { return len(d.ent.body) }

// contentFields returns the document's own header fields (Content-*), raw, in their order, leaving out
// Content-Disposition when the writer sets its own.
func (d *Document) contentFields() [][]byte {
	var out [][]byte
	fs := d.ent.header.Fields()
	for fs.Next() {
		k := strings.ToLower(fs.Key())
		if !strings.HasPrefix(k, "content-") || (d.setName && k == "content-disposition") {
			continue
		}
		raw, err := fs.Raw()
		if err != nil {
			continue // a field read from the message always has its raw form
		}
		out = append(out, raw)
	}
	return out
}

// disposition is "attachment" or "inline", as the part had it (inline when it had none).
func (d *Document) disposition() string {
	if disp, _, err := d.ent.header.ContentDisposition(); err == nil && strings.EqualFold(disp, "attachment") {
		return "attachment"
	}
	return "inline"
}

// binary reports a body whose line ends must be kept as they are.
func (d *Document) binary() bool {
	return strings.EqualFold(strings.TrimSpace(d.ent.header.Get("Content-Transfer-Encoding")), "binary")
}

// toCRLF writes b with every bare LF made CRLF.
func toCRLF(w *bytes.Buffer, b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.Write(b)
			return
		}
		if i > 0 && b[i-1] == '\r' {
			w.Write(b[:i+1])
		} else {
			w.Write(b[:i])
			w.WriteString("\r\n")
		}
		b = b[i+1:]
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
