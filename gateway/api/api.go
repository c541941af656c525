// Package api is the HTTPS API for case systems (/v1/...): agency systems upload packages (the same
// MIME package as SMTP, or a multipart form with the manifest and the documents), follow each
// recipient's decision and delivery, and manage episodes and consent, acting on behalf of a named
// practitioner of their agency. It only speaks HTTP: requests become calls on the intake and the store
// of record, and their typed errors become RFC 9457 problem details. The contract is the OpenAPI 3.1
// document in api/openapi.json, served at /v1/openapi.json; docs/api.md describes it in words.
package api

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"cafgate/directory"
	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
	"cafgate/gateway/ratelimit"
	"cafgate/mailbox"
	"cafgate/policy"
)

// Intake is what the API needs of the intake (*intake.Intake).
type Intake interface {
	Recipient(ctx context.Context, p *directory.Practitioner, rcpt string, c intake.Client) error
	Accept(ctx context.Context, s *intake.Submission) (string, error)
}

// Store is what the API needs of the store of record (*mailbox.Store).
type Store interface {
	APIClientByKey(ctx context.Context, key string) (*mailbox.APIClient, error)
	APIClientByCert(ctx context.Context, fingerprint string) (*mailbox.APIClient, error)
	ReserveIdempotencyKey(ctx context.Context, r mailbox.IdemRequest) (*mailbox.IdemResult, error)
	CompleteIdempotencyKey(ctx context.Context, clientID, key, holder, messageID string) (bool, error)
	ReleaseIdempotencyKey(ctx context.Context, clientID, key, holder string) error
	PackageStatus(ctx context.Context, id string) (*mailbox.PackageStatus, error)
	ListLinks(ctx context.Context, f mailbox.LinkFilter) ([]mailbox.Link, error)
	LinkByID(ctx context.Context, id string) (*mailbox.Link, error)
	RevokeLink(ctx context.Context, id, by, reason string) error
	OpenEpisode(ctx context.Context, key mailbox.ChildKey, in mailbox.NewEpisode) (*policy.Episode, error)
	Episode(ctx context.Context, ref string) (*policy.Episode, error)
	EpisodeWithConsent(ctx context.Context, ref string, at time.Time) (*mailbox.EpisodeAt, error)
	HandOverEpisode(ctx context.Context, ref string, to *directory.Practitioner, by string) (*policy.Episode, error)
	TransitionEpisode(ctx context.Context, ref string, to policy.State, by string) (*policy.Episode, error)
	CloseEpisode(ctx context.Context, ref, by string) (*policy.Episode, error)
	RecordConsent(ctx context.Context, ref string, c policy.Consent) (*policy.Consent, error)
}

var _ Store = (*mailbox.Store)(nil)

// Options are the API's parts. Intake, Store and Dir are required.
type Options struct {
	Intake   Intake
	Store    Store
	Dir      directory.Directory
	ChildKey mailbox.ChildKey // the key child identifiers are hashed under (mailbox.DeriveChildKey)
	Limits   Limits           // zero: DefaultLimits
	Hostname string           // for the Message-ID of packages built from a form; default "localhost"
	// SpoolDir is where uploads are spooled while they arrive (encrypted, unlinked at once; spool.go):
	// the data directory. Empty: the system's temporary directory.
	SpoolDir string
	Log      *slog.Logger     // default: discard
	Now      func() time.Time // default time.Now
	// Holder identifies this process's pending idempotency keys; default random. A key pending under
	// another holder was left by a process that has ended (one gateway serves the API over a database).
	Holder string
}

// Prefix is where the handler is mounted on the HTTPS server.
const Prefix = "/v1/"

// Handler serves /v1/... . Mount it at Prefix on the HTTPS server.
type Handler struct {
	opt      Options
	mux      *http.ServeMux
	paths    *http.ServeMux      // the route patterns without methods, to tell 405 from 404
	allow    map[string][]string // path pattern -> methods
	rate     *buckets
	failures *ratelimit.Window
	mem      *ratelimit.Budget
}

// New returns the API handler.
func New(opt Options) (*Handler, error) {
	if opt.Intake == nil || opt.Store == nil || opt.Dir == nil {
		return nil, errors.New("api: Options needs Intake, Store and Dir")
	}
	if opt.Limits == (Limits{}) {
		opt.Limits = DefaultLimits()
	}
	if err := opt.Limits.check(); err != nil {
		return nil, err
	}
	if opt.Hostname == "" {
		opt.Hostname = "localhost"
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Holder == "" {
		b := make([]byte, 12)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		opt.Holder = hex.EncodeToString(b)
	}
	l := opt.Limits
	h := &Handler{opt: opt, mux: http.NewServeMux(), paths: http.NewServeMux(), allow: map[string][]string{},
		rate:     newBuckets(l.RatePerMinute, l.RateBurst, opt.Now),
		failures: ratelimit.NewWindow(l.AuthFailureWindow, l.AuthFailuresPerIP, 100000, opt.Now),
		mem:      ratelimit.NewBudget(l.MaxBufferedBytes)}
	for _, rt := range h.routes() {
		h.mux.Handle(rt.method+" "+rt.pattern, h.serve(rt))
		if h.allow[rt.pattern] == nil {
			h.paths.Handle(rt.pattern, http.NotFoundHandler())
		}
		h.allow[rt.pattern] = append(h.allow[rt.pattern], rt.method)
	}
	h.mux.Handle("/", h.serve(route{pattern: "(none)", run: h.unrouted}))
	return h, nil
}

func (l Limits) check() error {
	if l.MaxUploadBytes <= 0 || l.MaxJSONBytes <= 0 || l.MaxRecipients <= 0 || l.MaxBufferedBytes <= 0 ||
		l.RequestTimeout <= 0 || l.RatePerMinute <= 0 || l.RateBurst <= 0 || l.AuthFailuresPerIP <= 0 ||
		l.AuthFailureWindow <= 0 || l.IdempotencyKeyExpiry <= 0 {
		return fmt.Errorf("api: every limit must be positive: %+v", l)
	}
	return nil
}

// route is one endpoint. public routes need no client credentials.
type route struct {
	method, pattern string
	public          bool
	run             func(*request) (*reply, *Problem)
}

func (h *Handler) routes() []route {
	return []route{
		{method: "GET", pattern: "/v1/openapi.json", public: true, run: h.openAPI},
		{method: "POST", pattern: "/v1/packages", run: h.upload},
		{method: "GET", pattern: "/v1/packages/{id}", run: h.packageStatus},
		{method: "POST", pattern: "/v1/episodes", run: h.openEpisode},
		{method: "GET", pattern: "/v1/episodes/{ref}", run: h.showEpisode},
		{method: "POST", pattern: "/v1/episodes/{ref}/handover", run: h.handover},
		{method: "POST", pattern: "/v1/episodes/{ref}/transition", run: h.transition},
		{method: "POST", pattern: "/v1/episodes/{ref}/close", run: h.closeEpisode},
		{method: "POST", pattern: "/v1/episodes/{ref}/consent", run: h.recordConsent},
		{method: "POST", pattern: "/v1/episodes/{ref}/consent/withdraw", run: h.withdrawConsent},
		{method: "POST", pattern: "/v1/links/{id}/revoke", run: h.revokeLink},
	}
}

// ServeHTTP serves one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// request is one request under way: who is asking, for whom, and what the log line will say.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	ctx    context.Context
	client *mailbox.APIClient
	actor  *directory.Practitioner
	ic     intake.Client
	logs   []any // extra attributes for the request's log line (never content)
}

// reply is a successful answer.
type reply struct {
	status    int
	header    http.Header
	body      any
	messageID string // for an upload: the accepted message
}

func (rq *request) note(attrs ...any) { rq.logs = append(rq.logs, attrs...) }

// serve runs a route: limits, authentication, the endpoint, the answer and one log line.
func (h *Handler) serve(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := h.opt.Now()
		deadline := time.Now().Add(h.opt.Limits.RequestTimeout)
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(deadline)
		_ = rc.SetWriteDeadline(deadline.Add(10 * time.Second))
		ctx, cancel := context.WithDeadline(r.Context(), deadline)
		defer cancel()
		rq := &request{w: w, r: r, ctx: ctx, ic: intake.Client{RemoteAddr: r.RemoteAddr, Via: "https", TLS: r.TLS != nil}}
		rep, p := h.guarded(rt, rq)
		if p != nil {
			p.write(w)
		} else {
			writeJSON(w, rep)
		}
		h.logRequest(rt, rq, rep, p, start)
	})
}

// guarded runs the route behind its checks and turns a panic into an internal error.
func (h *Handler) guarded(rt route, rq *request) (rep *reply, p *Problem) {
	defer func() {
		if v := recover(); v != nil {
			rep, p = nil, faultProblem(fault.Internal, "", "", fmt.Errorf("panic: %v", v))
		}
	}()
	if p := checkTLS(rq.r); p != nil {
		return nil, p
	}
	if !rt.public {
		if p := h.admit(rq); p != nil {
			return nil, p
		}
	}
	return rt.run(rq)
}

// checkTLS fails closed: the API is never answered over plain HTTP or TLS older than 1.2.
func checkTLS(r *http.Request) *Problem {
	if r.TLS == nil || r.TLS.Version < tls.VersionTLS12 {
		return faultProblem(fault.TLSRequired, "The API is served over TLS 1.2 or later only.", "", nil)
	}
	return nil
}

// unrouted answers a path no route has (404) or a method its route does not take (405).
func (h *Handler) unrouted(rq *request) (*reply, *Problem) {
	if _, pattern := h.paths.Handler(rq.r); pattern != "" {
		p := newProblem(slugMethodNotAllowed, fmt.Sprintf("%s is not allowed here; this resource takes %s.",
			rq.r.Method, strings.Join(h.allow[pattern], ", ")), "", nil)
		p.allow = strings.Join(h.allow[pattern], ", ")
		return nil, p
	}
	return nil, newProblem(slugNotFound, "There is no such resource in the API; see /v1/openapi.json.", "", nil)
}

func writeJSON(w http.ResponseWriter, rep *reply) {
	for k, vs := range rep.header {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	if rep.body != nil {
		_ = json.NewEncoder(w).Encode(rep.body)
	}
}

// logRequest writes the request's one log line: who, what route, the outcome, the problem's ID and
// cause. Never a body, a child identifier or a credential.
func (h *Handler) logRequest(rt route, rq *request, rep *reply, p *Problem, start time.Time) {
	attrs := []any{"method", rq.r.Method, "route", rt.pattern, "remote", rq.r.RemoteAddr,
		"ms", h.opt.Now().Sub(start).Milliseconds()}
	if rq.client != nil {
		attrs = append(attrs, "client", rq.client.ID, "agency", rq.client.Agency)
	}
	if rq.actor != nil {
		attrs = append(attrs, "actor", rq.actor.Mail)
	}
	attrs = append(attrs, rq.logs...)
	lvl := slog.LevelInfo
	if p == nil {
		attrs = append(attrs, "status", rep.status)
	} else {
		attrs = append(attrs, "status", p.Status, "problem", p.slug(), "id", p.ID)
		if p.Field != "" {
			attrs = append(attrs, "field", p.Field)
		}
		if p.cause != nil && !p.logged {
			attrs = append(attrs, "cause", p.cause.Error())
		}
		if p.Status >= 500 {
			lvl = slog.LevelWarn
		}
	}
	h.opt.Log.Log(context.Background(), lvl, "api", attrs...)
}

// ipKey is the address limits count failed authentications against.
func ipKey(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return remote
	}
	return ratelimit.KeyIP(ap.Addr())
}
