// Sessions and CSRF tokens. A session lives in the handler's memory (a restart signs everyone out),
// keyed by the SHA-256 of a 256-bit random cookie value; the cookie is Secure, HttpOnly,
// SameSite=Strict, __Host- prefixed and has no lifetime of its own: the server ends a session after
// an idle time and a maximum age. Forms before a session carry a token equal to a second such cookie
// (double submit); forms in a session carry the session's own token.

package pickup

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/pquerna/otp"
)

// Cookie names. __Host- means: Secure, Path=/, no Domain, so no other host can set or read them.
const (
	sessionCookie = "__Host-cafgate-pickup"
	csrfCookie    = "__Host-cafgate-form"
)

// Session kinds.
const (
	kindPackage = "package" // signed in through a link, both factors given
	kindEnrol   = "enrol"   // password and enrolment code given, QR shown, first code awaited
)

// session is one signed-in practitioner (or one enrolment under way).
type session struct {
	kind    string
	mail    string
	csrf    string
	created time.Time
	seen    time.Time
	// kindPackage
	linkID    string
	messageID string
	reason    string // the reason for access given, if asked
	// kindEnrol
	key   *otp.Key // the secret being enrolled
	token string   // the link enrolment started from, to return to; "" when none
}

// sessions is the in-memory session table.
type sessions struct {
	mu    sync.Mutex
	m     map[[32]byte]*session
	idle  time.Duration
	max   time.Duration
	limit int
	now   func() time.Time
}

func newSessions(idle, max time.Duration, limit int, now func() time.Time) *sessions {
	return &sessions{m: map[[32]byte]*session{}, idle: idle, max: max, limit: limit, now: now}
}

// randomToken returns 256 random bits, base64url.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// create stores s and returns the cookie value that names it. When the table is full, expired
// sessions go first, then the oldest.
func (t *sessions) create(s *session) string {
	v := randomToken()
	now := t.now()
	s.created, s.seen, s.csrf = now, now, randomToken()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= t.limit {
		t.evict(now)
	}
	t.m[sha256.Sum256([]byte(v))] = s
	return v
}

// evict drops expired sessions and, if still full, the oldest one. t.mu is held.
func (t *sessions) evict(now time.Time) {
	var oldestKey [32]byte
	var oldest *session
	for k, s := range t.m {
		if t.expired(s, now) {
			delete(t.m, k)
			continue
		}
		if oldest == nil || s.created.Before(oldest.created) {
			oldestKey, oldest = k, s
		}
	}
	if len(t.m) >= t.limit && oldest != nil {
		delete(t.m, oldestKey)
	}
}

func (t *sessions) expired(s *session, now time.Time) bool {
	return !now.Before(s.seen.Add(t.idle)) || !now.Before(s.created.Add(t.max))
}

// get returns a copy of the live session of kind named by r's cookie and marks it used, or nil.
func (t *sessions) get(r *http.Request, kind string) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	k := sha256.Sum256([]byte(c.Value))
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[k]
	if s == nil {
		return nil
	}
	if t.expired(s, now) {
		delete(t.m, k)
		return nil
	}
	if s.kind != kind {
		return nil
	}
	s.seen = now
	cp := *s
	return &cp
}

// setReason records the reason for access given in r's session.
func (t *sessions) setReason(r *http.Request, reason string) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.m[sha256.Sum256([]byte(c.Value))]; s != nil {
		s.reason = reason
	}
}

// drop ends the session r's cookie names, if any.
func (t *sessions) drop(r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		t.mu.Lock()
		delete(t.m, sha256.Sum256([]byte(c.Value)))
		t.mu.Unlock()
	}
}

// len is the number of sessions held, for tests.
func (t *sessions) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
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
	return equal(s.csrf, r.PostFormValue("csrf"))
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
