// Reading an upload: the body is either the package itself (message/rfc822, exactly what SMTP would
// carry; its To and Cc are the recipients) or a multipart form with a manifest part, document parts and
// recipient fields, from which the same MIME package is built. Either way the body is held in memory
// within the size limit and the memory budget all uploads share.

package api

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"strings"
	"unicode"

	"cafgate/envelope/pkg"
	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
	"cafgate/gateway/ratelimit"
)

// upload is a package read from a request, ready for the intake.
type upload struct {
	content     []byte
	recipients  []string // normalised, without repeats, in the order given
	rcptField   func(i int) string
	form        bool      // built from a multipart form
	docs        []string  // the form's document file names, in order (form only)
	requestHash string    // what the request asked for, for idempotency
	allowed     []string  // the recipients that passed the directory check (checkRecipients)
	refused     []refusal // the recipients that did not, in the order given
}

// errBusy: the memory budget for uploads is used up.
var errBusy = errors.New("upload memory budget exhausted")

// budgetReader takes memory from the budget as bytes arrive and gives it all back on release.
type budgetReader struct {
	r    io.Reader
	b    *ratelimit.Budget
	held int64
}

func (br *budgetReader) Read(p []byte) (int, error) {
	n, err := br.r.Read(p)
	if n > 0 {
		// A slice that grows by doubling holds up to twice what it read: count that.
		if !br.b.Take(2 * int64(n)) {
			return 0, errBusy
		}
		br.held += 2 * int64(n)
	}
	return n, err
}

func (br *budgetReader) release() { br.b.Give(br.held); br.held = 0 }

// readUpload reads the request body in the form its Content-Type names.
func (h *Handler) readUpload(rq *request, body *budgetReader) (*upload, *Problem) {
	mt, params, err := mime.ParseMediaType(rq.r.Header.Get("Content-Type"))
	if err != nil {
		mt = ""
	}
	switch mt {
	case "message/rfc822":
		return h.readRaw(rq, body)
	case "multipart/form-data":
		if params["boundary"] == "" {
			return nil, faultProblem(fault.BadCommand, "The multipart form has no boundary parameter.", "header Content-Type", nil)
		}
		return h.readForm(rq, multipart.NewReader(body, params["boundary"]), body)
	}
	return nil, newProblem(slugUnsupportedMedia, "Upload the package as message/rfc822 (the MIME package itself) or as multipart/form-data (a manifest part, document parts and recipient fields).",
		"header Content-Type", nil)
}

// readRaw reads a message/rfc822 body. A message with no CR at all (a file with Unix line ends) has
// its line ends made CRLF; a message that mixes them is left as it is, for the intake to refuse.
func (h *Handler) readRaw(rq *request, body io.Reader) (*upload, *Problem) {
	data, err := io.ReadAll(body)
	if p := uploadReadProblem(err, h.opt.Limits.MaxUploadBytes); p != nil {
		return nil, p
	}
	if bytes.IndexByte(data, '\r') < 0 {
		data = bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
	}
	rcpts, p := headerRecipients(data)
	if p != nil {
		return nil, p
	}
	sum := sha256.Sum256(data)
	hash := requestHash("raw", rq.actor.Mail, sum[:])
	return &upload{content: data, recipients: rcpts, rcptField: func(int) string { return "header To" }, requestHash: hash}, nil
}

// headerRecipients returns the addresses of the message's To and Cc headers. A Bcc header is refused:
// the message is stored and delivered as it is, so a blind copy would not stay blind.
func headerRecipients(data []byte) ([]string, *Problem) {
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return nil, faultProblem(fault.BadMessage, "The message's header could not be read.", "message", err)
	}
	if len(m.Header["Bcc"]) > 0 {
		return nil, faultProblem(fault.BadMessage, "The message has a Bcc header; the package is delivered as it is, so name every recipient in To or Cc.",
			"header Bcc", nil)
	}
	var out []string
	for _, name := range []string{"To", "Cc"} {
		for _, v := range m.Header[name] {
			list, err := mail.ParseAddressList(v)
			if err != nil {
				return nil, faultProblem(fault.BadMessage, "The "+name+" header is not a list of mail addresses.", "header "+name, err)
			}
			for _, a := range list {
				out = append(out, a.Address)
			}
		}
	}
	if len(out) == 0 {
		return nil, faultProblem(fault.BadCommand, "The message names no recipient; put them in its To or Cc header.", "header To", nil)
	}
	return dedupeMails(out), nil
}

// formDoc is one document part of a form.
type formDoc struct {
	name, contentType string
	data              []byte
}

// maxDocuments is the most document parts of a form: the package built from it must stay within the
// package format's part limit, which counts the package itself and its manifest.
var maxDocuments = pkg.DefaultLimits().MaxParts - 2

// maxFormRecipients bounds recipient fields before the configured limit is applied.
const maxFormRecipients = 10000

// formParts is what a form held.
type formParts struct {
	manifest   []byte
	docs       []formDoc
	recipients []string
	rcptFields []string
}

// readForm reads a multipart/form-data body and builds the MIME package from it.
func (h *Handler) readForm(rq *request, mr *multipart.Reader, body *budgetReader) (*upload, *Problem) {
	fp, p := readFormParts(mr, h.opt.Limits.MaxUploadBytes)
	if p != nil {
		return nil, p
	}
	rcpts := make([]string, 0, len(fp.recipients))
	fields := map[string]string{}
	for i, r := range fp.recipients {
		n := intake.NormalizeMail(r)
		if n == "" {
			return nil, faultProblem(fault.BadCommand, "This recipient is not a mail address.", fp.rcptFields[i], nil)
		}
		if _, dup := fields[n]; !dup {
			fields[n] = fp.rcptFields[i]
			rcpts = append(rcpts, n)
		}
	}
	msgID, boundary := randomHex(16)+"@"+h.opt.Hostname, "cafgate-"+randomHex(16)
	content := buildPackage(rq.actor.Mail, rcpts, fp.manifest, fp.docs, h.opt.Now(), msgID, boundary)
	if !body.b.Take(int64(len(content))) {
		return nil, uploadReadProblem(errBusy, 0)
	}
	body.held += int64(len(content))
	up := &upload{content: content, recipients: rcpts, form: true, requestHash: formHash(rq.actor.Mail, rcpts, fp),
		rcptField: func(i int) string { return fields[rcpts[i]] }}
	for _, d := range fp.docs {
		up.docs = append(up.docs, d.name)
	}
	return up, nil
}

// readFormParts reads every part of a form: one manifest, documents with file names, recipients.
func readFormParts(mr *multipart.Reader, limit int64) (*formParts, *Problem) {
	var fp formParts
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, formReadProblem(err, limit)
		}
		if p := fp.take(part, limit); p != nil {
			return nil, p
		}
	}
	switch {
	case fp.manifest == nil:
		return nil, faultProblem(fault.BadMessage, "The form has no manifest part; name it \"manifest\".", "manifest", nil)
	case len(fp.recipients) == 0:
		return nil, faultProblem(fault.BadCommand, "The form names no recipient; add a \"recipient\" field for each.", "recipient", nil)
	}
	return &fp, nil
}

// take reads one form part into fp.
func (fp *formParts) take(part *multipart.Part, limit int64) *Problem {
	name := part.FormName()
	switch name {
	case "manifest":
		if fp.manifest != nil {
			return faultProblem(fault.BadMessage, "The form has more than one manifest part.", "manifest", nil)
		}
		lim := int64(pkg.DefaultLimits().MaxManifestBytes)
		data, err := io.ReadAll(io.LimitReader(part, lim+1))
		if p := formReadProblem(err, limit); p != nil {
			return p
		}
		if int64(len(data)) > lim {
			return faultProblem(fault.TooBig, fmt.Sprintf("The manifest is larger than %d bytes.", lim), "manifest", nil)
		}
		fp.manifest = data
	case "document":
		field := fmt.Sprintf("document[%d]", len(fp.docs))
		if len(fp.docs) >= maxDocuments {
			return faultProblem(fault.BadMessage, fmt.Sprintf("The form has too many documents (at most %d).", maxDocuments), field, nil)
		}
		d, p := readDocument(part, field, limit)
		if p != nil {
			return p
		}
		fp.docs = append(fp.docs, *d)
	case "recipient":
		field := fmt.Sprintf("recipient[%d]", len(fp.recipients))
		if len(fp.recipients) >= maxFormRecipients {
			return faultProblem(fault.TooManyRecipients, "", field, nil)
		}
		data, err := io.ReadAll(io.LimitReader(part, 321))
		if p := formReadProblem(err, limit); p != nil {
			return p
		}
		fp.recipients, fp.rcptFields = append(fp.recipients, string(data)), append(fp.rcptFields, field)
	default:
		return faultProblem(fault.BadCommand, "The form has a part this API does not take (it takes manifest, document and recipient).",
			clip(safeText(name)), nil)
	}
	return nil
}

// readDocument reads a document part: it needs a file name; its type defaults to
// application/octet-stream and may not be multipart or message (upload those as message/rfc822).
func readDocument(part *multipart.Part, field string, limit int64) (*formDoc, *Problem) {
	name := part.FileName()
	if name == "" || name == "." || name == "/" {
		return nil, faultProblem(fault.BadMessage, "This document part has no file name; the manifest names documents by it.", field, nil)
	}
	if safeText(name) != name {
		return nil, faultProblem(fault.BadMessage, "This document's file name holds a control character.", field, nil)
	}
	ct := "application/octet-stream"
	if v := part.Header.Get("Content-Type"); v != "" {
		mt, params, err := mime.ParseMediaType(v)
		if err != nil {
			return nil, faultProblem(fault.BadMessage, "This document's Content-Type is malformed.", field, err)
		}
		if strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/") {
			return nil, faultProblem(fault.BadMessage, "A document part may not be multipart or a message; upload such a package as message/rfc822.", field, nil)
		}
		ct = mime.FormatMediaType(mt, params)
		if ct == "" {
			ct = "application/octet-stream"
		}
	}
	data, err := io.ReadAll(part)
	if p := formReadProblem(err, limit); p != nil {
		return nil, p
	}
	return &formDoc{name: name, contentType: ct, data: data}, nil
}

// formReadProblem maps an error reading a form: the size limit, the memory budget, a deadline, or a
// malformed or truncated form.
func formReadProblem(err error, limit int64) *Problem {
	if err == nil {
		return nil
	}
	if p := uploadReadProblem(err, limit); p.Status != 400 {
		return p
	}
	return faultProblem(fault.BadMessage, "The multipart form is malformed or was not received completely; nothing was accepted.", "", err)
}

// uploadReadProblem is bodyReadProblem plus the memory budget.
func uploadReadProblem(err error, limit int64) *Problem {
	if errors.Is(err, errBusy) {
		return faultProblem(fault.StoreUnavailable, "The gateway is too busy to take this upload just now; nothing was accepted. Please try again later.", "", err)
	}
	return bodyReadProblem(err, limit)
}

// dedupeMails normalises addresses and drops repeats (a repeated recipient gets one copy, as SMTP
// does); an address that does not normalise is kept as it is, for the intake to refuse.
func dedupeMails(in []string) []string {
	seen := map[string]bool{}
	out := make([]string, 0, len(in))
	for _, a := range in {
		n := intake.NormalizeMail(a)
		if n == "" {
			n = a
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// safeText replaces control characters, so a name from a request can be quoted in an answer.
func safeText(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '_'
		}
		return r
	}, s)
}

// requestHash hashes what a request asked for: its form, the practitioner acted for, and digests.
func requestHash(kind, actor string, parts ...[]byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", kind, actor)
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// formHash hashes a form by its meaning, not its bytes: a retry may come with another boundary.
func formHash(actor string, rcpts []string, fp *formParts) string {
	parts := [][]byte{[]byte(strings.Join(rcpts, ","))}
	sum := sha256.Sum256(fp.manifest)
	parts = append(parts, sum[:])
	for _, d := range fp.docs {
		sum := sha256.Sum256(d.data)
		parts = append(parts, []byte(d.name), []byte(d.contentType), sum[:])
	}
	return requestHash("form", actor, parts...)
}

// maxBody wraps the request body in the upload size limit and the memory budget.
func (h *Handler) maxBody(rq *request) *budgetReader {
	return &budgetReader{r: http.MaxBytesReader(rq.w, rq.r.Body, h.opt.Limits.MaxUploadBytes), b: h.mem}
}
