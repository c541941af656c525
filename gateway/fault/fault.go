// Package fault is the one error type that crosses from the gateway's core to its front doors: a client
// face (SMTP code, enhanced code, HTTP status, a sentence a practitioner understands, an opaque ID) and a
// log face (the cause, never shown to the client).
package fault

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
)

// Kind is what went wrong, as the client is told it.
type Kind int

// The kinds. Each has one fixed client face in faces; only the sentence may be made more specific.
const (
	Internal                 Kind = iota // anything unannotated: "internal error (ID)"
	BadCredentials                       // sign-in refused, whatever the reason
	TLSRequired                          // AUTH or content before TLS
	AuthRequired                         // MAIL before AUTH
	SenderMismatch                       // MAIL FROM is not the signed-in practitioner
	UnknownRecipient                     // no such practitioner in any directory
	NotPermitted                         // lapsed vetting, disabled entry, policy refusal
	TooBig                               // message over the size limit
	TooManyRecipients                    // over the per-message recipient limit
	BadMessage                           // malformed content (bare CR/LF, NUL, bad MIME)
	BadCommand                           // malformed command argument
	DirectoryUnavailable                 // a directory is down, slow or answered an error
	AuthDirectoryUnavailable             // the same, at sign-in
	StoreUnavailable                     // database locked, I/O error
	StoreFull                            // disk full
	RateLimited                          // too many sessions or failed sign-ins
)

// Face is how a kind is presented to clients.
type Face struct {
	SMTP     int
	Enhanced [3]int
	HTTP     int
	Type     string // problem type slug, used in https://cafgate.invalid/problems/<Type>
	Title    string // default sentence
}

var faces = map[Kind]Face{
	Internal:                 {451, [3]int{4, 3, 0}, 500, "internal", "Internal error; nothing was accepted. Please try again later and quote this ID if it persists."},
	BadCredentials:           {535, [3]int{5, 7, 8}, 401, "bad-credentials", "Sign-in failed: the mail address or password was not accepted."},
	TLSRequired:              {530, [3]int{5, 7, 0}, 403, "tls-required", "Must issue a STARTTLS command first: sign-in and content need an encrypted connection."},
	AuthRequired:             {530, [3]int{5, 7, 0}, 401, "auth-required", "Please sign in with your directory mail address and password first."},
	SenderMismatch:           {550, [3]int{5, 7, 1}, 403, "sender-mismatch", "You may only send as yourself: the sender address must be the mail address you signed in with."},
	UnknownRecipient:         {550, [3]int{5, 1, 1}, 422, "unknown-recipient", "No practitioner with this mail address is known to any agency directory."},
	NotPermitted:             {550, [3]int{5, 7, 1}, 403, "not-permitted", "This practitioner may not send or receive through the gateway."},
	TooBig:                   {552, [3]int{5, 3, 4}, 413, "too-big", "The message is larger than the gateway accepts."},
	TooManyRecipients:        {452, [3]int{4, 5, 3}, 422, "too-many-recipients", "Too many recipients for one message; send the rest in another message."},
	BadMessage:               {550, [3]int{5, 6, 0}, 400, "bad-message", "The message is malformed and was not accepted."},
	BadCommand:               {501, [3]int{5, 5, 4}, 400, "bad-request", "The command or its argument is malformed."},
	DirectoryUnavailable:     {451, [3]int{4, 4, 3}, 503, "directory-unavailable", "The agency directory cannot be reached just now; nothing was accepted. Please try again later."},
	AuthDirectoryUnavailable: {454, [3]int{4, 7, 0}, 503, "directory-unavailable", "The agency directory cannot be reached just now, so sign-in is not possible. Please try again later."},
	StoreUnavailable:         {451, [3]int{4, 3, 0}, 503, "store-unavailable", "The gateway cannot store messages just now; nothing was accepted. Please try again later."},
	StoreFull:                {452, [3]int{4, 3, 1}, 507, "store-full", "The gateway is out of storage space; nothing was accepted. Please try again later."},
	RateLimited:              {421, [3]int{4, 7, 0}, 429, "rate-limited", "Too many attempts from your address; please wait and try again later."},
}

// FaceOf returns the client face of a kind.
func FaceOf(k Kind) Face { return faces[k] }

// Error is the gateway's error. Message is what the client reads; Cause is only for the log.
type Error struct {
	Kind    Kind
	Message string // the practitioner's sentence; the kind's Title when empty
	Field   string // the input at fault, when there is one (JSON pointer, part name, SMTP parameter)
	ID      string // opaque, in the client reply and in the log line
	Cause   error  // log only
}

// New makes an error of a kind with a fresh ID. msg may be empty for the kind's default sentence.
func New(k Kind, msg string, cause error) *Error {
	return &Error{Kind: k, Message: msg, ID: NewID(), Cause: cause}
}

// Error is the log face: kind, ID, message and cause.
func (e *Error) Error() string {
	s := fmt.Sprintf("%s [%s]: %s", faces[e.Kind].Type, e.ID, e.Sentence())
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap gives the cause, for errors.Is on the log side.
func (e *Error) Unwrap() error { return e.Cause }

// Sentence is the client face's text without the ID.
func (e *Error) Sentence() string {
	if e.Message != "" {
		return e.Message
	}
	return faces[e.Kind].Title
}

// Face returns the error's client face.
func (e *Error) Face() Face { return faces[e.Kind] }

// Temporary reports whether the client should retry (a 4xx SMTP answer).
func (e *Error) Temporary() bool { return faces[e.Kind].SMTP < 500 }

// From turns any error into an *Error: an *Error is returned as it is, anything else becomes Internal
// with the original as its cause, so its text never reaches a client.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	return New(Internal, "", err)
}

var idEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// NewID returns a fresh opaque identifier (80 random bits, 16 characters of Crockford base32).
func NewID() string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return idEncoding.EncodeToString(b[:])
}
