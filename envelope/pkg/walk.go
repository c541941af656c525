package pkg

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// entity is one MIME entity of a message, with its raw header and raw (still transfer-encoded) body as
// slices of the message's bytes.
type entity struct {
	name      string // "message", "part 2", "part 1.3" (IMAP section numbering)
	number    string // "", "2", "1.3"
	header    message.Header
	rawHeader []byte
	body      []byte
	mediaType string // lower case
	params    map[string]string
	children  []*entity // multipart only
}

// walker reads a message's MIME tree within the limits.
type walker struct {
	lim   Limits
	parts int
}

// walk reads the whole MIME tree of data. It refuses a header over MaxHeaderBytes, more than MaxParts
// entities, multipart nesting deeper than MaxDepth, malformed headers and Content-Types, bad or missing
// boundaries, and transfer encodings that are unknown or (on a multipart) not allowed. message/rfc822
// parts are not entered: they are documents like any other.
func walk(data []byte, lim Limits) (*entity, *Error) {
	w := &walker{lim: lim}
	return w.entity(data, "", 0)
}

func (w *walker) entity(data []byte, number string, depth int) (*entity, *Error) {
	name := partName(number)
	w.parts++
	if w.parts > w.lim.MaxParts {
		return nil, limitErr(name, "max_parts", "the message has more than %d MIME parts", w.lim.MaxParts)
	}
	rawHeader, body, ok := splitHeader(data, w.lim.MaxHeaderBytes)
	if !ok {
		return nil, limitErr(name, "max_header_bytes", "a header is longer than %d bytes", w.lim.MaxHeaderBytes)
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(rawHeader)))
	if err != nil {
		return nil, fieldErr(name, "the header is malformed")
	}
	e := &entity{name: name, number: number, header: message.Header{Header: h}, rawHeader: rawHeader, body: body}
	if err := e.readContentType(); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(e.mediaType, "multipart/") {
		return e, e.checkTransferEncoding(false)
	}
	if err := e.checkTransferEncoding(true); err != nil {
		return nil, err
	}
	if depth+1 > w.lim.MaxDepth {
		return nil, limitErr(name, "max_depth", "multipart parts are nested more than %d deep", w.lim.MaxDepth)
	}
	return e, w.children(e, depth)
}

func (w *walker) children(e *entity, depth int) *Error {
	boundary := e.params["boundary"]
	if !validBoundary(boundary) {
		return fieldErr(e.name, "the multipart boundary is missing or malformed")
	}
	bodies, res := splitMultipart(e.body, boundary, w.lim.MaxParts-w.parts)
	switch res {
	case splitNoEnd:
		return fieldErr(e.name, "the multipart body has no closing boundary (the message may be truncated)")
	case splitTooMany:
		return limitErr(e.name, "max_parts", "the message has more than %d MIME parts", w.lim.MaxParts)
	case splitNoParts:
		return fieldErr(e.name, "the multipart body holds no parts")
	}
	for i, b := range bodies {
		c, err := w.entity(b, childNumber(e.number, i+1), depth+1)
		if err != nil {
			return err
		}
		e.children = append(e.children, c)
	}
	return nil
}

func (e *entity) readContentType() *Error {
	if e.header.Get("Content-Type") == "" {
		e.mediaType = "text/plain"
		return nil
	}
	t, params, err := e.header.ContentType()
	if err != nil {
		return fieldErr(e.name, "the Content-Type header is malformed")
	}
	e.mediaType, e.params = strings.ToLower(t), params
	return nil
}

// checkTransferEncoding allows 7bit, 8bit and binary everywhere, and base64 and quoted-printable on
// single parts only (RFC 2045 6.4).
func (e *entity) checkTransferEncoding(multipart bool) *Error {
	switch strings.ToLower(strings.TrimSpace(e.header.Get("Content-Transfer-Encoding"))) {
	case "", "7bit", "8bit", "binary":
		return nil
	case "base64", "quoted-printable":
		if !multipart {
			return nil
		}
		return fieldErr(e.name, "a multipart part may not be base64 or quoted-printable encoded")
	}
	return fieldErr(e.name, "the Content-Transfer-Encoding is not one mail uses (7bit, 8bit, binary, base64, quoted-printable)")
}

// decoded returns a reader of the entity's body with its transfer encoding undone (not its charset).
func (e *entity) decoded() (io.Reader, *Error) {
	h := message.Header{Header: textproto.Header{}}
	if cte := e.header.Get("Content-Transfer-Encoding"); cte != "" {
		h.Set("Content-Transfer-Encoding", cte)
	}
	h.Set("Content-Type", "application/octet-stream") // no charset conversion
	m, err := message.New(h, bytes.NewReader(e.body))
	if err != nil {
		return nil, fieldErr(e.name, "the Content-Transfer-Encoding is not one mail uses")
	}
	return m.Body, nil
}

// checkDecodes refuses a body whose transfer encoding does not decode: bad base64 or quoted-printable.
// An identity encoding (7bit, 8bit, binary) always decodes. base64 is checked in one pass over the
// encoded bytes, without decoding (validBase64: what it accepts, go-message's decoder, which delivery
// uses, also decodes); quoted-printable is decoded.
func (e *entity) checkDecodes() *Error {
	cte := e.header.Get("Content-Transfer-Encoding")
	switch {
	case identityEncoding(cte):
		return nil
	case strings.EqualFold(strings.TrimSpace(cte), "base64"):
		if !validBase64(e.body) {
			return fieldErr(e.name, "the part's content is not correctly encoded (Content-Transfer-Encoding)")
		}
		return nil
	}
	r, err := e.decoded()
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fieldErr(e.name, "the part's content is not correctly encoded (Content-Transfer-Encoding)")
	}
	return nil
}

// identityEncoding reports a Content-Transfer-Encoding that leaves the body as it is: 7bit, 8bit,
// binary or none.
func identityEncoding(cte string) bool {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

// filename is the part's file name (Content-Disposition filename, else Content-Type name), decoded
// from RFC 2231 or RFC 2047 form.
func (e *entity) filename() (string, *Error) {
	if e.header.Get("Content-Disposition") != "" {
		_, params, err := e.header.ContentDisposition()
		if err != nil {
			return "", fieldErr(e.name, "the Content-Disposition header is malformed")
		}
		if n := params["filename"]; n != "" {
			return n, nil
		}
	}
	return e.params["name"], nil
}

// isAttachment reports a part the sender attached as a file: one with a file name or an attachment
// disposition.
func (e *entity) isAttachment() bool {
	disp, _, _ := e.header.ContentDisposition()
	name, _ := e.filename()
	return name != "" || strings.EqualFold(disp, "attachment")
}

// walkAll calls fn on e and every entity below it, depth first.
func (e *entity) walkAll(fn func(*entity)) {
	fn(e)
	for _, c := range e.children {
		c.walkAll(fn)
	}
}

func partName(number string) string {
	if number == "" {
		return "message"
	}
	return "part " + number
}

func childNumber(parent string, i int) string {
	if parent == "" {
		return strconv.Itoa(i)
	}
	return parent + "." + strconv.Itoa(i)
}
