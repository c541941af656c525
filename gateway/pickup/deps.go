// What the pickup pages depend on, as interfaces: the store (links, second factor, ledger), the
// directory sign-in (intake), and the source of the documents a recipient may see.

package pickup

import (
	"context"
	"errors"
	"time"

	"github.com/pquerna/otp"

	"cafgate/directory"
	"cafgate/gateway/intake"
	"cafgate/mailbox"
)

// Store is what the pages need of the store of record; *mailbox.Store implements it.
type Store interface {
	// OpenLink finds a link by token without changing it (mailbox.ErrLinkNotFound).
	OpenLink(ctx context.Context, token string) (*mailbox.Link, error)
	LinkByID(ctx context.Context, id string) (*mailbox.Link, error)
	// RecordPickupSignIn writes a sign-in event and updates the lock-out counters.
	RecordPickupSignIn(ctx context.Context, e mailbox.PickupSignIn) (mailbox.SignInOutcome, error)
	// RecordPickup writes a view or download event; a download counts against the link's limit.
	RecordPickup(ctx context.Context, id string, p mailbox.Pickup) error
	AccountLocked(ctx context.Context, mail string) (bool, error)
	// VerifyTOTP accepts each code once (mailbox.ErrTOTPRefused, mailbox.ErrTOTPNotEnrolled).
	VerifyTOTP(ctx context.Context, mail, code string, now time.Time) error
	StartEnrolment(ctx context.Context, mail, code, issuer string, now time.Time) (*otp.Key, error)
	ConfirmEnrolment(ctx context.Context, mail, code string, now time.Time) error
	// ExpireLinks marks links past their expiry (RunExpiry calls it).
	ExpireLinks(ctx context.Context) (int, error)
	// PendingEnrolment returns the key of an enrolment awaiting its first code (ErrEnrolmentRefused).
	PendingEnrolment(ctx context.Context, mail, issuer string) (*otp.Key, error)

	// Sessions (mailbox/session.go): only a hash of the cookie's secret is stored.
	CreateSession(ctx context.Context, n mailbox.NewSession, now time.Time) (string, *mailbox.Session, error)
	// SessionByCookie returns a live session and marks it used (mailbox.ErrSessionNotFound).
	SessionByCookie(ctx context.Context, cookie string, now time.Time) (*mailbox.Session, error)
	SetSessionReason(ctx context.Context, id, reason string) error
	EndSession(ctx context.Context, id string) error
	PurgeSessions(ctx context.Context, now time.Time) (int, error)

	// The links page: links a practitioner may revoke, and revoking one as them.
	LinksRevocableBy(ctx context.Context, mail string, now time.Time, limit int) ([]mailbox.Link, error)
	RevokeLinkAs(ctx context.Context, id, mail, by, reason string) error
}

var _ Store = (*mailbox.Store)(nil)

// Authenticator checks a directory password; *intake.Intake implements it. Every refusal is a
// *fault.Error: BadCredentials whatever the reason, AuthDirectoryUnavailable when the directory is down.
type Authenticator interface {
	Authenticate(ctx context.Context, user, password string, c intake.Client) (*directory.Practitioner, error)
}

var _ Authenticator = (*intake.Intake)(nil)

// Lookup finds a directory entry, to check at each view and download that the signed-in practitioner
// may still receive (a directory.Directory implements it). Optional.
type Lookup interface {
	Lookup(ctx context.Context, mail string) (*directory.Practitioner, error)
}

// Document is one document a recipient may take.
type Document struct {
	Name      string // file name, as the package names it
	MediaType string // e.g. application/pdf
	Content   []byte // the document's bytes (transfer encoding undone)
}

// Contents is what one recipient may see of one package.
type Contents struct {
	Documents []Document
	// MIME is the per-recipient package as one MIME entity (envelope/pkg ForRecipient), offered as a
	// download of its own when set.
	MIME []byte
}

// ErrNotAllowed is what a PackageSource returns when the recipient may no longer see anything of the
// package (consent withdrawn, entry disabled, content purged): the page says it is no longer available.
var ErrNotAllowed = errors.New("pickup: nothing of this package may be shown to this recipient")

// PackageSource returns the documents recipient may see of the accepted message messageID, deciding
// afresh (consent may have changed since the link was issued). It is called for every view and
// download, after both factors.
type PackageSource interface {
	Contents(ctx context.Context, messageID, recipient string) (*Contents, error)
}

// SourceFunc adapts a function to PackageSource.
type SourceFunc func(ctx context.Context, messageID, recipient string) (*Contents, error)

// Contents calls f.
func (f SourceFunc) Contents(ctx context.Context, messageID, recipient string) (*Contents, error) {
	return f(ctx, messageID, recipient)
}
