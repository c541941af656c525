// Downloads: one document, all of them as a zip, or the per-recipient MIME entity. A download is a
// form post (it uses up one of the link's downloads, so it is a change, protected like every form);
// it is recorded and counted in the ledger before a byte is sent, with the SHA-256 of what is sent.

package pickup

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"

	"cafgate/mailbox"
)

// download sends what the form's "doc" names: a position from 1, "all" or "mime".
func (h *Handler) download(w http.ResponseWriter, r *http.Request) {
	s, l, ok := h.packageSession(w, r, false)
	if !ok {
		return
	}
	if !sessionTokenOK(r, s) {
		h.message(w, r, http.StatusForbidden, "session.title", "session.form", "")
		return
	}
	if h.opt.ReasonRequired && s.Reason == "" {
		h.reasonForm(w, r, http.StatusOK, s, "")
		return
	}
	c, ok := h.contents(w, r, s, l)
	if !ok {
		return
	}
	f, err := pick(c, r.PostFormValue("doc"), l.Received)
	if err != nil {
		h.message(w, r, http.StatusBadRequest, "error.title", "error.notfound", "")
		return
	}
	sum := sha256.Sum256(f.body)
	err = h.opt.Store.RecordPickup(r.Context(), l.ID, mailbox.Pickup{Recipient: s.Mail, Remote: clientIP(r),
		Action: f.action, Document: f.n, Digest: hex.EncodeToString(sum[:]), Reason: s.Reason})
	if !h.pickupRecorded(w, r, err) {
		return
	}
	h.log.Info("pickup: download", "link", l.ID, "action", f.action, "document", f.n, "size", len(f.body))
	send(w, f)
}

// file is one download.
type file struct {
	name   string
	ctype  string
	body   []byte
	action string
	n      int
}

// pick chooses the download doc names.
func pick(c *Contents, doc string, when time.Time) (*file, error) {
	switch doc {
	case "all":
		b, err := zipAll(c.Documents, when)
		if err != nil {
			return nil, err
		}
		return &file{name: "documents.zip", ctype: "application/zip", body: b, action: mailbox.PickupDownloadAll}, nil
	case "mime":
		if len(c.MIME) == 0 {
			return nil, fmt.Errorf("no MIME entity")
		}
		return &file{name: "package.eml", ctype: "message/rfc822", body: c.MIME, action: mailbox.PickupDownloadAll}, nil
	}
	n, err := strconv.Atoi(doc)
	if err != nil || n < 1 || n > len(c.Documents) {
		return nil, fmt.Errorf("no document %q", doc)
	}
	d := c.Documents[n-1]
	return &file{name: fileName(d.Name, n), ctype: safeType(d.MediaType), body: d.Content,
		action: mailbox.PickupDownload, n: n}, nil
}

// send writes f as an attachment: never rendered in the gateway's origin.
func send(w http.ResponseWriter, f *file) {
	hd := w.Header()
	hd.Set("Content-Type", f.ctype)
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": f.name})
	if disp == "" {
		disp = "attachment" // a name mime cannot encode: the browser picks one, still as a download
	}
	hd.Set("Content-Disposition", disp)
	hd.Set("Content-Security-Policy", downloadCSP)
	hd.Set("Content-Length", strconv.Itoa(len(f.body)))
	w.WriteHeader(http.StatusOK)
	w.Write(f.body)
}

// zipAll puts the documents in one zip archive, each under its file name.
func zipAll(docs []Document, when time.Time) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	seen := map[string]bool{}
	for i, d := range docs {
		name := fileName(d.Name, i+1)
		if seen[strings.ToLower(name)] {
			name = fmt.Sprintf("%d-%s", i+1, name)
		}
		seen[strings.ToLower(name)] = true
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: when.UTC()})
		if err != nil {
			return nil, err
		}
		if _, err := fw.Write(d.Content); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// fileName makes a document's name safe as a download and zip entry name: its last path element,
// printable, without leading dots; "document-N" when nothing is left.
func fileName(name string, n int) string {
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	name = strings.Map(func(c rune) rune {
		if !unicode.IsPrint(c) || strings.ContainsRune(`/\:*?"<>|`, c) {
			return '_'
		}
		return c
	}, name)
	name = strings.TrimLeft(strings.TrimSpace(name), ".")
	if name == "" || name == "/" {
		return "document-" + strconv.Itoa(n)
	}
	if r := []rune(name); len(r) > 120 {
		name = string(r[:120])
	}
	return name
}

// safeType keeps a document's media type unless a browser could run it as active content.
func safeType(t string) string {
	mt, _, err := mime.ParseMediaType(t)
	if err != nil {
		return "application/octet-stream"
	}
	switch {
	case strings.Contains(mt, "html"), strings.Contains(mt, "xml"), strings.Contains(mt, "javascript"),
		strings.Contains(mt, "ecmascript"), strings.HasPrefix(mt, "multipart/"):
		return "application/octet-stream"
	}
	return mt
}
