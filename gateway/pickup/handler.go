// Package pickup is the HTTPS pickup page for recipients without a valid S/MIME certificate: the
// one-time link from their notification opens a sign-in page (opening it consumes nothing, since mail
// scanners prefetch links); signing in takes the directory password and a TOTP code (each code
// accepted once); only then is the package shown: the sending agency, the date and the documents the
// recipient may see, each downloadable, and all of them as one zip. First-time enrolment of the
// authenticator shows a QR code and needs the password and a one-time enrolment code from an
// administrator. Every sign-in, view and download is a ledger event.
//
// The handler serves everything under Prefix; mount it on the HTTPS server (gateway/httpd), which
// provides TLS 1.2 or later. Pages carry no script; templates, text and style are embedded.
package pickup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"cafgate/gateway/fault"
	"cafgate/gateway/ratelimit"
	"cafgate/mailbox"
)

// Prefix is the path under which the handler serves; links are Prefix + "l/" + token.
const Prefix = "/pickup/"

// LinkURL returns the link for token given the pickup base URL (such as "https://gw.example/pickup/").
func LinkURL(base, token string) string {
	return strings.TrimSuffix(base, "/") + "/l/" + token
}

// Options configures the handler. Store, Auth and Source are required; zero values of the rest take
// the defaults noted beside them.
type Options struct {
	Store  Store
	Auth   Authenticator
	Source PackageSource
	// Directory, when set, is asked at every view and download whether the practitioner may still
	// receive (a disabled entry loses access at once).
	Directory Lookup
	Log       *slog.Logger     // default: discard
	Now       func() time.Time // the clock for TOTP steps, sessions and expiry; default time.Now
	Text      Text             // default English()
	// Issuer names the gateway in authenticator apps. Default "CAF secure gateway".
	Issuer string
	// Contact is shown on every page for reporting a mistake or asking for help (a mail address).
	Contact string
	// ReasonRequired asks for a reason for access before the package is shown; it is recorded with
	// every view and download.
	ReasonRequired bool
	SessionIdle    time.Duration // default 10m
	SessionMax     time.Duration // default 1h
	// MaxSessions bounds the open sessions of one practitioner; a new one ends the oldest. Default 10.
	MaxSessions int
	// IPFailures refused attempts from one address (IPv4, or IPv6 /64) within IPWindow block it
	// until the window passes. Defaults 20 and 15m.
	IPFailures int
	IPWindow   time.Duration
	// AccountFailures refused sign-ins in a row lock a mail address out until an administrator lifts
	// it (cafgate totp unlock). Default 10.
	AccountFailures int
	// LinkFailures refused sign-ins through one link lock the link until an administrator lifts it
	// (cafgate link unlock). Default 10.
	LinkFailures int
}

// Handler serves the pickup pages.
type Handler struct {
	opt   Options
	mux   *http.ServeMux
	pages *renderer
	ips   *ratelimit.Window
	log   *slog.Logger
}

// New checks opt, fills its defaults and returns the handler.
func New(opt Options) (*Handler, error) {
	if opt.Store == nil || opt.Auth == nil || opt.Source == nil {
		return nil, errors.New("pickup: Store, Auth and Source are required")
	}
	opt = withDefaults(opt)
	for k := range English() {
		if _, ok := opt.Text[k]; !ok {
			return nil, fmt.Errorf("pickup: Options.Text has no sentence for %q", k)
		}
	}
	pages, err := newRenderer(opt.Text)
	if err != nil {
		return nil, err
	}
	h := &Handler{opt: opt, mux: http.NewServeMux(), pages: pages, log: opt.Log,
		ips: ratelimit.NewWindow(opt.IPWindow, opt.IPFailures, 100_000, opt.Now)}
	h.routes()
	return h, nil
}

func withDefaults(o Options) Options {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Text == nil {
		o.Text = English()
	}
	if o.Issuer == "" {
		o.Issuer = "CAF secure gateway"
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&o.SessionIdle, 10 * time.Minute}, {&o.SessionMax, time.Hour}, {&o.IPWindow, 15 * time.Minute}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	for _, d := range []struct {
		v   *int
		def int
	}{{&o.MaxSessions, mailbox.DefaultSessionsPerPractitioner}, {&o.IPFailures, 20},
		{&o.AccountFailures, 10}, {&o.LinkFailures, 10}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	return o
}

func (h *Handler) routes() {
	m := h.mux
	m.HandleFunc("GET "+Prefix+"l/{token}", h.linkPage)
	m.HandleFunc("POST "+Prefix+"l/{token}", h.signIn)
	m.HandleFunc("GET "+Prefix+"enrol", h.enrolPage)
	m.HandleFunc("GET "+Prefix+"l/{token}/enrol", h.enrolPage)
	m.HandleFunc("POST "+Prefix+"enrol", h.enrolStart)
	m.HandleFunc("POST "+Prefix+"l/{token}/enrol", h.enrolStart)
	m.HandleFunc("GET "+Prefix+"enrol/confirm", h.enrolQR)
	m.HandleFunc("POST "+Prefix+"enrol/confirm", h.enrolConfirm)
	m.HandleFunc("GET "+Prefix+"package", h.packagePage)
	m.HandleFunc("POST "+Prefix+"package/reason", h.reason)
	m.HandleFunc("POST "+Prefix+"package/download", h.download)
	m.HandleFunc("POST "+Prefix+"signout", h.signOut)
	m.HandleFunc("GET "+Prefix+"links", h.linksPage)
	m.HandleFunc("POST "+Prefix+"links/signin", h.linksSignIn)
	m.HandleFunc("POST "+Prefix+"links/{id}/revoke", h.revokeLink)
	m.HandleFunc("GET "+Prefix+"static/pickup.css", h.style)
	m.HandleFunc(Prefix, h.notFound)
}

// ServeHTTP sets the security headers, refuses anything but HTTPS and cross-site posts, and routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if r.TLS == nil {
		http.Error(w, "HTTPS only", http.StatusForbidden)
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if !sameOrigin(r) {
			h.message(w, r, http.StatusForbidden, "session.title", "session.form", "")
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

// RunExpiry marks expired links (with their ledger events, ending their sessions) and deletes
// sessions ended by idleness or age, every interval until ctx ends.
func (h *Handler) RunExpiry(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := h.opt.Store.ExpireLinks(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("pickup: expiring links", "err", err)
		} else if n > 0 {
			h.log.Info("pickup: links expired", "count", n)
		}
		if _, err := h.opt.Store.PurgeSessions(ctx, h.opt.Now()); err != nil && ctx.Err() == nil {
			h.log.Warn("pickup: purging ended sessions", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *Handler) style(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Write(styleSheet)
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.message(w, r, http.StatusNotFound, "error.title", "error.notfound", "")
}

// page returns the data every page starts from.
func (h *Handler) page(title string) *pageData {
	return &pageData{Lang: "en", Static: Prefix + "static/", LinksURL: Prefix + "links", Contact: h.opt.Contact, Title: title}
}

// message shows a page with one sentence (and a reference to quote, if any).
func (h *Handler) message(w http.ResponseWriter, r *http.Request, status int, title, msg, ref string) {
	d := h.page(title)
	d.Message, d.Ref = msg, ref
	h.render(w, status, pageMessage, d)
}

func (h *Handler) render(w http.ResponseWriter, status int, page string, d *pageData) {
	if err := h.pages.render(w, status, page, d); err != nil {
		h.log.Error("pickup: rendering a page", "page", page, "err", err)
	}
}

// internal logs err under a fresh fault ID and shows the ID.
func (h *Handler) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	fe := fault.From(err)
	h.log.Error("pickup: "+what, "id", fe.ID, "err", err)
	h.message(w, r, http.StatusInternalServerError, "error.title", "error.internal", fe.ID)
}

// clientIP is the key the per-address limit counts under.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil {
		return ratelimit.Key(&net.TCPAddr{IP: ip})
	}
	return host
}
