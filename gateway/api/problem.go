// Problem details (RFC 9457): every refusal is application/problem+json with a type, a title, the
// status, a sentence, the field at fault and the opaque ID its log line carries.

package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"cafgate/gateway/fault"
)

// ProblemBase is the start of every problem type URI; the type's slug follows it.
const ProblemBase = "https://cafgate.invalid/problems/"

// Problem is one refusal as the client reads it. Cause and Kind are for the log only.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	ID     string `json:"id"`
	Field  string `json:"field,omitempty"`
	// Recipients lists each recipient's refusal when an upload is refused because no recipient may
	// receive it.
	Recipients []refusal `json:"recipients,omitempty"`
	retryAfter time.Duration
	allow      string
	cause      error
	logged     bool // the intake has already logged it under its ID
}

// The API's own problem slugs; the rest come from fault kinds (see titles).
const (
	slugNotFound         = "not-found"
	slugMethodNotAllowed = "method-not-allowed"
	slugUnsupportedMedia = "unsupported-media-type"
	slugKeyInUse         = "idempotency-key-in-use"
	slugKeyReused        = "idempotency-key-reused"
	slugConflict         = "conflict"
	slugInvalid          = "invalid-request"
	slugTimeout          = "request-timeout"
	slugNotImplemented   = "not-implemented"
)

// titles are the short, fixed titles of every problem type the API answers with: one per type, as
// RFC 9457 asks; the sentence in detail says what happened this time.
var titles = map[string]string{
	"internal":              "Internal error",
	"bad-credentials":       "Client not authenticated",
	"auth-required":         "Client credentials required",
	"tls-required":          "TLS required",
	"sender-mismatch":       "Not the practitioner acted for",
	"unknown-recipient":     "Unknown recipient",
	"not-permitted":         "Not permitted",
	"too-big":               "Request too large",
	"too-many-recipients":   "Too many recipients",
	"bad-message":           "Malformed package",
	"bad-request":           "Malformed request",
	"directory-unavailable": "Directory unavailable",
	"store-unavailable":     "Store unavailable",
	"store-full":            "Store full",
	"rate-limited":          "Too many requests",
	slugNotFound:            "Not found",
	slugMethodNotAllowed:    "Method not allowed",
	slugUnsupportedMedia:    "Unsupported media type",
	slugKeyInUse:            "Idempotency key in use",
	slugKeyReused:           "Idempotency key reused",
	slugConflict:            "Conflict",
	slugInvalid:             "Invalid request",
	slugTimeout:             "Request timeout",
	slugNotImplemented:      "Not implemented",
}

// statuses of the API's own slugs.
var statuses = map[string]int{
	slugNotFound: 404, slugMethodNotAllowed: 405, slugUnsupportedMedia: 415, slugKeyInUse: 409,
	slugKeyReused: 422, slugConflict: 409, slugInvalid: 422, slugTimeout: 408, slugNotImplemented: 501,
}

// unavailableRetry is the Retry-After of 503 and 507 answers.
const unavailableRetry = 30 * time.Second

// newProblem makes a problem of one of the API's own slugs with a fresh ID.
func newProblem(slug, detail, field string, cause error) *Problem {
	return &Problem{Type: ProblemBase + slug, Title: titles[slug], Status: statuses[slug], Detail: detail,
		ID: fault.NewID(), Field: field, cause: cause}
}

// fromFault turns any error into a problem: a *fault.Error keeps its kind, sentence, field and ID;
// anything else becomes an internal error whose text never reaches the client.
func fromFault(err error) *Problem {
	fe := fault.From(err)
	face := fe.Face()
	p := &Problem{Type: ProblemBase + face.Type, Title: titles[face.Type], Status: face.HTTP, Detail: fe.Sentence(),
		ID: fe.ID, Field: fe.Field, cause: fe.Cause}
	if p.Title == "" {
		p.Title = titles["internal"]
	}
	switch p.Status {
	case http.StatusServiceUnavailable, http.StatusInsufficientStorage:
		p.retryAfter = unavailableRetry
	}
	return p
}

// faultProblem makes a problem of a fault kind with a fresh ID.
func faultProblem(k fault.Kind, detail, field string, cause error) *Problem {
	fe := fault.New(k, detail, cause)
	fe.Field = field
	return fromFault(fe)
}

// slug returns the problem type's slug.
func (p *Problem) slug() string { return p.Type[len(ProblemBase):] }

// write sends the problem.
func (p *Problem) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((p.retryAfter+time.Second-1)/time.Second)))
	}
	if p.allow != "" {
		h.Set("Allow", p.allow)
	}
	if p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="cafgate"`)
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
