// Reading an upload: the body is either the package itself (message/rfc822, exactly what SMTP would
// carry; its To and Cc are the recipients) or a multipart form with a manifest part, document parts and
// recipient fields, from which the same MIME package is built. Either way the body is received into an
// encrypted spool within the size limit, and loaded into memory only under the memory budget all
// uploads share (spool.go).

package api

import (
	"bufio"
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

	"cafgate/configs"
	"cafgate/envelope/pkg"
	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
)

// upload is a package read from a request: received into a spool, then loaded for the intake.
type upload struct {
	content     []byte   // the package, once loaded (Handler.load)
	size        int64    // the package's size (raw); the documents' size (form), before loading
	recipients  []string // normalised, without repeats, in the order given
	rcptField   func(i int) string
	form        bool      // built from a multipart form
	docs        []string  // the form's document file names, in order (form only)
	requestHash string    // what the request asked for, for idempotency
	allowed     []string  // the recipients that passed the directory check (checkRecipients)
	refused     []refusal // the recipients that did not, in the order given
	spool       *spool    // the body as received (raw) or the documents' bytes, in order (form)
	toCRLF      bool      // raw: the body has no CR at all; its LF line ends are made CRLF on loading
	parts       *formParts
	taken       int64 // bytes taken from the memory budget, given back by release
}

// errBusy: the memory budget for uploads is used up.
var errBusy = errors.New("upload memory budget exhausted")

// Memory an upload holds while it is checked and committed, per byte of its size: the package itself,
// the package reader's decoded parts and the store's sealed copy (raw, measured at about 2.1 per byte);
// the documents, the package built from them (base64 adds a third), its decoded parts and sealed copy
// (form, about 6.5 per byte of the documents). TestUploadMemoryBound measures what an upload allocates
// and checks it stays within what it takes. configs.MinAPIBufferedBytes asks the budget to hold the
// largest upload.
const (
	rawMemFactor  = configs.APIRawMemFactor
	formMemFactor = configs.APIFormMemFactor
	memOverhead   = configs.APIMemOverhead // headers, the manifest, the decisions: a fixed allowance per upload
)

// load takes the upload's memory from the budget and reads the package into memory (building it from
// the form's parts). Memory is taken only here: receiving holds none.
func (h *Handler) load(rq *request, up *upload) *Problem {
	need := memOverhead + rawMemFactor*up.size
	if up.form {
		need = memOverhead + formMemFactor*up.size + int64(len(up.parts.manifest))*4
	}
	if !h.mem.Take(need) {
		return uploadReadProblem(errBusy, 0)
	}
	up.taken = need
	r, err := up.spool.reader()
	if err != nil {
		return faultProblem(fault.Internal, "", "", err)
	}
	if !up.form {
		content := make([]byte, 0, up.size)
		if up.toCRLF {
			content, err = readCRLF(content, r)
		} else {
			content = content[:up.size]
			_, err = io.ReadFull(r, content)
		}
		if err != nil {
			return faultProblem(fault.Internal, "", "", err)
		}
		up.content = content
		return nil
	}
	docs, err := loadDocs(r, up.parts.docs)
	if err != nil {
		return faultProblem(fault.Internal, "", "", err)
	}
	msgID, boundary := randomHex(16)+"@"+h.opt.Hostname, "cafgate-"+randomHex(16)
	up.content = buildPackage(rq.actor.Mail, up.recipients, up.parts.manifest, docs, h.opt.Now(), msgID, boundary)
	return nil
}

// loadDocs reads the documents' bytes from the spool, in the order they were written.
func loadDocs(r io.Reader, in []formDoc) ([]formDoc, error) {
	docs := make([]formDoc, len(in))
	for i, d := range in {
		docs[i] = d
		docs[i].data = make([]byte, d.size)
		if _, err := io.ReadFull(r, docs[i].data); err != nil {
			return nil, err
		}
	}
	return docs, nil
}

// release gives the upload's memory back and closes its spool.
func (h *Handler) release(up *upload) {
	h.mem.Give(up.taken)
	up.taken, up.content = 0, nil
	if up.spool != nil {
		up.spool.Close()
	}
}

// readCRLF appends what r holds to dst with every LF made CRLF (r holds no CR).
func readCRLF(dst []byte, r io.Reader) ([]byte, error) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			if c == '\n' {
				dst = append(dst, '\r')
			}
			dst = append(dst, c)
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// readUpload reads the request body, in the form its Content-Type names, into a spool.
func (h *Handler) readUpload(rq *request, body io.Reader) (*upload, *Problem) {
	mt, params, err := mime.ParseMediaType(rq.r.Header.Get("Content-Type"))
	if err != nil {
		mt = ""
	}
	switch mt {
	case "message/rfc822", "multipart/form-data":
	default:
		return nil, newProblem(slugUnsupportedMedia, "Upload the package as message/rfc822 (the MIME package itself) or as multipart/form-data (a manifest part, document parts and recipient fields).",
			"header Content-Type", nil)
	}
	if mt == "multipart/form-data" && params["boundary"] == "" {
		return nil, faultProblem(fault.BadCommand, "The multipart form has no boundary parameter.", "header Content-Type", nil)
	}
	sp, err := newSpool(h.opt.SpoolDir)
	if err != nil {
		return nil, faultProblem(fault.StoreUnavailable, "The gateway cannot take uploads just now; nothing was accepted. Please try again later.", "", err)
	}
	var up *upload
	var p *Problem
	if mt == "message/rfc822" {
		up, p = h.readRaw(rq, body, sp)
	} else {
		up, p = h.readForm(rq, multipart.NewReader(body, params["boundary"]), sp)
	}
	if p != nil {
		sp.Close()
		return nil, p
	}
	up.spool = sp
	return up, nil
}

// maxHeaderBytes bounds the header of a message/rfc822 upload, read for its recipients.
const maxHeaderBytes = 1 << 20

// readRaw spools a message/rfc822 body. A message with no CR at all (a file with Unix line ends) has
// its line ends made CRLF (as it is loaded; its size and digest are counted that way here); a message
// that mixes them is left as it is, for the intake to refuse.
func (h *Handler) readRaw(rq *request, body io.Reader, sp *spool) (*upload, *Problem) {
	sumRaw, sumCRLF := sha256.New(), sha256.New()
	var lfs int64
	hasCR := false
	buf := make([]byte, 32<<10)
	crlf := make([]byte, 0, 2*len(buf))
	for {
		n, err := body.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if _, werr := sp.Write(chunk); werr != nil {
				return nil, faultProblem(fault.StoreUnavailable, "The gateway cannot take uploads just now; nothing was accepted. Please try again later.", "", werr)
			}
			sumRaw.Write(chunk)
			hasCR = hasCR || bytes.IndexByte(chunk, '\r') >= 0
			if !hasCR {
				crlf = crlf[:0]
				for _, c := range chunk {
					if c == '\n' {
						crlf = append(crlf, '\r')
						lfs++
					}
					crlf = append(crlf, c)
				}
				sumCRLF.Write(crlf)
			}
		}
		if err == io.EOF {
			break
		}
		if p := uploadReadProblem(err, h.opt.Limits.MaxUploadBytes); p != nil {
			return nil, p
		}
	}
	if err := sp.finish(); err != nil {
		return nil, faultProblem(fault.StoreUnavailable, "The gateway cannot take uploads just now; nothing was accepted. Please try again later.", "", err)
	}
	up := &upload{size: sp.size, rcptField: func(int) string { return "header To" }, toCRLF: !hasCR}
	sum := sumRaw.Sum(nil)
	if up.toCRLF {
		up.size += lfs
		sum = sumCRLF.Sum(nil)
	}
	r, err := sp.reader()
	if err != nil {
		return nil, faultProblem(fault.Internal, "", "", err)
	}
	rcpts, p := headerRecipients(io.LimitReader(r, maxHeaderBytes))
	if p != nil {
		return nil, p
	}
	up.recipients, up.requestHash = rcpts, requestHash("raw", rq.actor.Mail, sum)
	return up, nil
}

// headerRecipients returns the addresses of the message's To and Cc headers. A Bcc header is refused:
// the message is stored and delivered as it is, so a blind copy would not stay blind.
func headerRecipients(r io.Reader) ([]string, *Problem) {
	m, err := mail.ReadMessage(bufio.NewReaderSize(r, 4096))
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

// formDoc is one document part of a form. Its bytes are in the upload's spool until it is loaded.
type formDoc struct {
	name, contentType string
	size              int64
	sum               [sha256.Size]byte
	data              []byte // once loaded
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

// readForm reads a multipart/form-data body: the documents go to the spool; the package is built from
// the parts when it is loaded.
func (h *Handler) readForm(rq *request, mr *multipart.Reader, sp *spool) (*upload, *Problem) {
	fp, p := readFormParts(mr, h.opt.Limits.MaxUploadBytes, sp)
	if p != nil {
		return nil, p
	}
	if err := sp.finish(); err != nil {
		return nil, faultProblem(fault.StoreUnavailable, "The gateway cannot take uploads just now; nothing was accepted. Please try again later.", "", err)
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
	up := &upload{size: sp.size, recipients: rcpts, form: true, requestHash: formHash(rq.actor.Mail, rcpts, fp), parts: fp,
		rcptField: func(i int) string { return fields[rcpts[i]] }}
	for _, d := range fp.docs {
		up.docs = append(up.docs, d.name)
	}
	return up, nil
}

// readFormParts reads every part of a form: one manifest, documents with file names, recipients.
func readFormParts(mr *multipart.Reader, limit int64, sp *spool) (*formParts, *Problem) {
	var fp formParts
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, formReadProblem(err, limit)
		}
		if p := fp.take(part, limit, sp); p != nil {
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
func (fp *formParts) take(part *multipart.Part, limit int64, sp *spool) *Problem {
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
		d, p := readDocument(part, field, limit, sp)
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
func readDocument(part *multipart.Part, field string, limit int64, sp *spool) (*formDoc, *Problem) {
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
	sum, start := sha256.New(), sp.size
	if _, err := io.Copy(io.MultiWriter(sp, sum), part); err != nil {
		var we spoolWriteError
		if errors.As(err, &we) {
			return nil, faultProblem(fault.StoreUnavailable, "The gateway cannot take uploads just now; nothing was accepted. Please try again later.", "", err)
		}
		return nil, formReadProblem(err, limit)
	}
	d := &formDoc{name: name, contentType: ct, size: sp.size - start}
	sum.Sum(d.sum[:0])
	return d, nil
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
		parts = append(parts, []byte(d.name), []byte(d.contentType), d.sum[:])
	}
	return requestHash("form", actor, parts...)
}

// maxBody wraps the request body in the upload size limit.
func (h *Handler) maxBody(rq *request) io.Reader {
	return http.MaxBytesReader(rq.w, rq.r.Body, h.opt.Limits.MaxUploadBytes)
}
