// The package page, shown only in a session opened with both factors by the link's recipient: the
// sending agency, the date, and the documents the recipient may see (asked afresh of the
// PackageSource each time), after a reason for access where the configuration requires one. Every
// view is a "picked-up" ledger event.

package pickup

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"cafgate/directory"
	"cafgate/mailbox"
)

// maxReason bounds the reason for access, in characters.
const maxReason = 500

// packageView is the package page's content.
type packageView struct {
	Agency      string
	Received    string
	ReceivedISO string
	Expires     string
	ExpiresISO  string
	Left        int
	Docs        []docView
	HasMIME     bool
}

type docView struct {
	N    int // position, from 1
	Name string
	Type string
	Size string
}

// dateLayout is how dates are written on the pages.
const dateLayout = "2 January 2006 at 15:04 MST"

// packageSession returns the package session and its link when both may still be used; otherwise it
// shows why and returns false. usedUpOK lets a link with no downloads left through (for viewing).
func (h *Handler) packageSession(w http.ResponseWriter, r *http.Request, usedUpOK bool) (*session, *mailbox.Link, bool) {
	s := h.sessionOrEnded(w, r, kindPackage)
	if s == nil {
		return nil, nil, false
	}
	l, err := h.opt.Store.LinkByID(r.Context(), s.LinkID)
	if err != nil {
		h.internal(w, r, "reading a link", err)
		return nil, nil, false
	}
	if err := l.Usable(h.opt.Now()); err != nil && !(usedUpOK && errors.Is(err, mailbox.ErrLinkUsedUp)) {
		if !errors.Is(err, mailbox.ErrLinkUsedUp) {
			h.dropSession(r) // a used-up link may still show its page
		}
		h.gone(w, r, err)
		return nil, nil, false
	}
	if !h.stillPermitted(w, r, s) {
		return nil, nil, false
	}
	return s, l, true
}

// stillPermitted asks the directory, when one is configured, whether the practitioner may still
// receive; a disabled or lapsed entry ends the session.
func (h *Handler) stillPermitted(w http.ResponseWriter, r *http.Request, s *session) bool {
	if h.opt.Directory == nil {
		return true
	}
	p, err := h.opt.Directory.Lookup(r.Context(), s.Mail)
	if errors.Is(err, directory.ErrUnavailable) {
		h.message(w, r, http.StatusServiceUnavailable, "error.title", "error.directory", "")
		return false
	}
	if err == nil {
		err = p.Standing(h.opt.Now())
	}
	if err != nil {
		h.log.Info("pickup: practitioner no longer permitted", "link", s.LinkID, "err", err)
		h.dropSession(r)
		h.message(w, r, http.StatusForbidden, "gone.title", "gone.withdrawn", "")
		return false
	}
	return true
}

// packagePage shows the package (or first asks for the reason for access).
func (h *Handler) packagePage(w http.ResponseWriter, r *http.Request) {
	s, l, ok := h.packageSession(w, r, true)
	if !ok {
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
	err := h.opt.Store.RecordPickup(r.Context(), l.ID, mailbox.Pickup{Recipient: s.Mail, Remote: clientIP(r),
		Action: mailbox.PickupView, Reason: s.Reason})
	if !h.pickupRecorded(w, r, err) {
		return
	}
	d := h.page("package.title")
	d.CSRF, d.Action, d.SignOut = s.CSRF, Prefix+"package/download", Prefix+"signout"
	d.Pkg = h.view(l, c)
	h.render(w, http.StatusOK, pagePackage, d)
}

// contents asks the source for what the recipient may see now.
func (h *Handler) contents(w http.ResponseWriter, r *http.Request, s *session, l *mailbox.Link) (*Contents, bool) {
	c, err := h.opt.Source.Contents(r.Context(), l.MessageID, s.Mail)
	if err == nil && (c == nil || len(c.Documents) == 0) {
		err = ErrNotAllowed
	}
	if errors.Is(err, ErrNotAllowed) {
		h.log.Info("pickup: nothing of the package may be shown any more", "link", l.ID)
		h.dropSession(r)
		h.gone(w, r, err)
		return nil, false
	}
	if err != nil {
		h.internal(w, r, "reading the package", err)
		return nil, false
	}
	return c, true
}

// pickupRecorded turns RecordPickup's refusal into a page; it reports whether err was nil.
func (h *Handler) pickupRecorded(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, mailbox.ErrLinkExpired), errors.Is(err, mailbox.ErrLinkRevoked), errors.Is(err, mailbox.ErrLinkUsedUp):
		h.gone(w, r, err)
	case errors.Is(err, mailbox.ErrLinkNotFound):
		h.dropSession(r)
		h.message(w, r, http.StatusUnauthorized, "session.title", "session.ended", "")
	default:
		h.internal(w, r, "recording a pick-up", err)
	}
	return false
}

func (h *Handler) view(l *mailbox.Link, c *Contents) *packageView {
	v := &packageView{Agency: l.Agency, Received: l.Received.UTC().Format(dateLayout),
		ReceivedISO: l.Received.UTC().Format(time.RFC3339), Expires: l.Expires.UTC().Format(dateLayout),
		ExpiresISO: l.Expires.UTC().Format(time.RFC3339), Left: max(0, l.MaxDownloads-l.Downloads), HasMIME: len(c.MIME) > 0}
	for i, d := range c.Documents {
		v.Docs = append(v.Docs, docView{N: i + 1, Name: fileName(d.Name, i+1), Type: d.MediaType, Size: h.humanSize(len(d.Content))})
	}
	return v
}

func (h *Handler) reasonForm(w http.ResponseWriter, r *http.Request, status int, s *session, errKey string) {
	d := h.page("reason.title")
	d.Error, d.CSRF, d.Action = errKey, s.CSRF, Prefix+"package/reason"
	h.render(w, status, pageReason, d)
}

// reason records the reason for access in the session.
func (h *Handler) reason(w http.ResponseWriter, r *http.Request) {
	s, _, ok := h.packageSession(w, r, true)
	if !ok {
		return
	}
	if !sessionTokenOK(r, s) {
		h.reasonForm(w, r, http.StatusForbidden, s, "session.form")
		return
	}
	reason := cleanReason(r.PostFormValue("reason"))
	if reason == "" {
		h.reasonForm(w, r, http.StatusUnprocessableEntity, s, "reason.empty")
		return
	}
	if err := h.opt.Store.SetSessionReason(r.Context(), s.ID, reason); errors.Is(err, mailbox.ErrSessionNotFound) {
		h.message(w, r, http.StatusUnauthorized, "session.title", "session.ended", "")
		return
	} else if err != nil {
		h.internal(w, r, "recording the reason for access", err)
		return
	}
	http.Redirect(w, r, Prefix+"package", http.StatusSeeOther)
}

// cleanReason makes the reason one line of printable text of at most maxReason characters.
func cleanReason(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(c rune) bool { return unicode.IsSpace(c) || !unicode.IsPrint(c) }), " ")
	if rs := []rune(s); len(rs) > maxReason {
		s = string(rs[:maxReason])
	}
	return s
}

// signOut ends the session.
func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	s, err := h.session(r, "")
	if err != nil {
		h.internal(w, r, "reading a session", err)
		return
	}
	if s != nil && !sessionTokenOK(r, s) {
		h.message(w, r, http.StatusForbidden, "session.title", "session.form", "")
		return
	}
	h.dropSession(r)
	setCookie(w, sessionCookie, "", -1)
	h.message(w, r, http.StatusOK, "session.title", "session.signout", "")
}

// humanSize writes a size with the catalogue's units.
func (h *Handler) humanSize(n int) string {
	t := h.opt.Text
	switch {
	case n < 1024:
		return fmt.Sprintf(t["unit.bytes"], n)
	case n < 1024*1024:
		return fmt.Sprintf(t["unit.kb"], float64(n)/1024)
	}
	return fmt.Sprintf(t["unit.mb"], float64(n)/(1024*1024))
}
