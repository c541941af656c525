package pkg

import "fmt"

// Error is why a package was refused. Field names the input at fault: a JSON pointer into the manifest
// ("/documents/1/sections/0"), a MIME part in IMAP section numbering ("part 2", "part 1.3"; "part 0" is
// the message itself), or a header ("header Subject"). Limit names the limit that refused it, when one
// did (see Limits). Reason is a plain sentence for the sender; it never quotes the message's content, so
// it may be logged and shown. Err is a cause for the log, when there is one.
type Error struct {
	Field  string
	Limit  string
	Reason string
	Err    error
}

// Error is the field and the reason, for logs.
func (e *Error) Error() string {
	s := e.Reason
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Err != nil {
		s += " (" + e.Err.Error() + ")"
	}
	return "package: " + s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Sentence is the refusal as a practitioner reads it: "The package was refused at FIELD: REASON (limit
// NAME)."
func (e *Error) Sentence() string {
	s := "The package was refused"
	if e.Field != "" {
		s += " at " + e.Field
	}
	s += ": " + e.Reason
	if e.Limit != "" {
		s += " (limit " + e.Limit + ")"
	}
	return s + "."
}

func fieldErr(field, format string, args ...any) *Error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func limitErr(field, limit, format string, args ...any) *Error {
	return &Error{Field: field, Limit: limit, Reason: fmt.Sprintf(format, args...)}
}
