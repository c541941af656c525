// The pages: embedded templates (a layout and one content template per page) rendered with the text
// catalogue, and the embedded style sheet.

package pickup

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static/pickup.css
var styleSheet []byte

// Page names (one template file each besides the layout).
const (
	pageSignIn    = "signin"
	pageEnrol     = "enrol"
	pageEnrolQR   = "enrol_qr"
	pageEnrolDone = "enrol_done"
	pageReason    = "reason"
	pagePackage   = "package"
	pageMessage   = "message"
	pageLinks     = "links"
)

// pageData is what every template gets. Title, Error, Info and Message are text keys.
type pageData struct {
	Lang   string
	Static string // URL prefix of the style sheet
	// LinksURL is the links page, where senders and lead professionals withdraw links.
	LinksURL string
	Contact  string // how to report a mistake or ask for help (a mail address)
	Title    string
	Error    string
	Info     string
	Message  string
	Ref      string // an opaque reference the practitioner can quote (a fault ID)
	CSRF     string
	Action   string // the form's target
	Mail     string // the mail address typed before, kept on a failed sign-in
	// sign-in and enrolment
	Intro    string // the sign-in page's opening sentence (a text key): a package's link or the links page
	EnrolURL string
	QR       template.URL // data: URL of the QR code PNG
	Secret   string       // the same secret, grouped, for typing by hand
	Continue string       // where to go after enrolment
	// the package page
	Pkg     *packageView
	SignOut string
	// the links page
	Links []linkView
}

// renderer holds one parsed template set per page.
type renderer struct {
	pages map[string]*template.Template
	text  Text
}

func newRenderer(text Text) (*renderer, error) {
	r := &renderer{pages: map[string]*template.Template{}, text: text}
	funcs := template.FuncMap{"t": r.lookup}
	layout, err := fs.ReadFile(templateFiles, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	for _, name := range []string{pageSignIn, pageEnrol, pageEnrolQR, pageEnrolDone, pageReason, pagePackage, pageMessage, pageLinks} {
		body, err := fs.ReadFile(templateFiles, "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		t, err := template.New(name).Option("missingkey=error").Funcs(funcs).Parse(string(layout) + string(body))
		if err != nil {
			return nil, fmt.Errorf("pickup: template %s: %w", name, err)
		}
		r.pages[name] = t
	}
	return r, nil
}

// lookup returns the catalogue's sentence for key; an unknown key fails the render (a test covers
// every key the templates use), so a page never shows a key instead of a sentence.
func (r *renderer) lookup(key string) (string, error) {
	s, ok := r.text[key]
	if !ok {
		return "", fmt.Errorf("pickup: no text for %q", key)
	}
	return s, nil
}

// render writes page with status; a template failure becomes a bare 500 (nothing half-written).
func (r *renderer) render(w http.ResponseWriter, status int, page string, d *pageData) error {
	var buf bytes.Buffer
	if err := r.pages[page].ExecuteTemplate(&buf, "layout", d); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// groupSecret writes a base32 secret in groups of four for typing by hand.
func groupSecret(s string) string {
	var b strings.Builder
	for i, c := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}
