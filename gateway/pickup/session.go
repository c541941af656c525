// Sessions and CSRF tokens. Sessions live in the store of record (mailbox/session.go), so a restart
// signs nobody out and every node serving the page sees the same ones; the store keeps only a hash of
// the cookie's secret and compares it in constant time. The cookie is Secure, HttpOnly,
// SameSite=Strict, __Host- prefixed and has no lifetime of its own: the store ends a session after an
// idle time and a maximum age, at sign-out, and when its link is revoked or expires. Forms before a
// session carry a token equal to a second such cookie (double submit); forms in a session carry the
// session's own token, derived from its cookie.

package pickup

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"

	"cafgate/mailbox"
)

// Cookie names. __Host- means: Secure, Path=/, no Domain, so no other host can set or read them.
const (
	sessionCookie = "__Host-cafgate-pickup"
	csrfCookie    = "__Host-cafgate-form"
)

// Session kinds.
const (
	kindPackage = mailbox.SessionPackage // signed in through a link, both factors given
	kindEnrol   = mailbox.SessionEnrol   // password and enrolment code given, QR shown, first code awaited
	kindLinks   = mailbox.SessionLinks   // signed in with both factors to revoke links of packages sent or led
)

// session is one signed-in practitioner (or one enrolment under way), as the store has it.
type session = mailbox.Session

// randomToken returns 256 random bits, base64url.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// session returns the live session of kind named by r's cookie (marking it used), nil when there is
// none; err only when the store could not be asked.
func (h *Handler) session(r *http.Request, kind string) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	s, err := h.opt.Store.SessionByCookie(r.Context(), c.Value, h.opt.Now())
	if errors.Is(err, mailbox.ErrSessionNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if kind != "" && s.Kind != kind {
		return nil, nil
	}
	return s, nil
}

// sessionOrEnded returns the live session of kind; otherwise it shows "session ended" (or the error)
// and returns nil.
func (h *Handler) sessionOrEnded(w http.ResponseWriter, r *http.Request, kind string) *session {
	s, err := h.session(r, kind)
	if err != nil {
		h.internal(w, r, "reading a session", err)
		return nil
	}
	if s == nil {
		msg := "session.ended"
		if kind == kindLinks {
			msg = "session.ended.links"
		}
		h.message(w, r, http.StatusUnauthorized, "session.title", msg, "")
	}
	return s
}

// startSession ends the session r's cookie names, if any, opens n and sets its cookie.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, n mailbox.NewSession) error {
	h.dropSession(r)
	n.Idle, n.Max, n.Limit = h.opt.SessionIdle, h.opt.SessionMax, h.opt.MaxSessions
	v, _, err := h.opt.Store.CreateSession(r.Context(), n, h.opt.Now())
	if err != nil {
		return err
	}
	setCookie(w, sessionCookie, v, 0)
	return nil
}

// dropSession ends the session r's cookie names, if it names one (a cookie with a wrong secret ends
// nothing).
func (h *Handler) dropSession(r *http.Request) {
	s, err := h.session(r, "")
	if err != nil || s == nil {
		return
	}
	if err := h.opt.Store.EndSession(r.Context(), s.ID); err != nil {
		h.log.Warn("pickup: ending a session", "err", err)
	}
}

// setCookie sets a __Host- cookie with the attributes every cookie here has; maxAge 0 leaves it a
// browser-session cookie, negative deletes it.
func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, Secure: true,
		HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// formToken returns the CSRF token for a form shown outside a session: the value of the form cookie,
// set now if the browser has none.
func formToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	v := randomToken()
	setCookie(w, csrfCookie, v, 0)
	return v
}

// formTokenOK checks a post outside a session: the form's token equals the form cookie.
func formTokenOK(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	return err == nil && len(c.Value) == 43 && equal(c.Value, r.PostFormValue("csrf"))
}

// sessionTokenOK checks a post inside session s.
func sessionTokenOK(r *http.Request, s *session) bool {
	return s.CSRF != "" && equal(s.CSRF, r.PostFormValue("csrf"))
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
