// The event types of schema version 1, and the data of the types this package defines. The data of
// the queue's and the episodes' events is defined beside the code that writes them (package mailbox);
// docs/ledger.md lists every type with its fields.

package ledger

// Event types. A new type is added here (and to docs/ledger.md); a type is never renamed or removed.
const (
	Accepted          = "accepted"           // a package was committed to the store of record
	Decisions         = "decisions"          // the per-recipient decisions for a package, with reason codes
	Override          = "override"           // a named safeguarding person overrode consent
	ConsentRecorded   = "consent-recorded"   // consent was recorded for an episode
	ConsentWithdrawn  = "consent-withdrawn"  // consent was withdrawn
	EpisodeOpened     = "episode-opened"     // an episode was opened
	EpisodeHandover   = "episode-handover"   // the lead professional changed
	EpisodeTransition = "episode-transition" // the episode moved to another stage
	EpisodeClosed     = "episode-closed"     // the episode was closed
	Encrypted         = "encrypted"          // a copy was encrypted to a recipient's certificate
	Queued            = "queued"             // a copy was queued for delivery to a recipient
	Relayed           = "relayed"            // the next host accepted a copy (host, its answer)
	Deferred          = "deferred"           // a temporary failure; retried later
	Bounced           = "bounced"            // delivery failed for good
	LeaseExpired      = "lease-expired"      // a delivery attempt's claim lapsed (crash or hang)
	Held              = "held"               // an operator held a queued copy
	Released          = "released"           // an operator released it
	RetryRequested    = "retry-requested"    // an operator asked for an attempt now
	Dropped           = "dropped"            // an operator gave a queued copy up, with a reason
	Delivered         = "delivered"          // a copy was stored in a hosted mailbox
	NotDelivered      = "not-delivered"      // a recipient allowed at acceptance gets nothing after all
	Notified          = "notified"           // a notification with a one-time link was sent
	PickedUp          = "picked-up"          // the recipient opened the one-time link and took the package
	Read              = "read"               // a read receipt (MDN) came back
	Expired           = "expired"            // a one-time link expired unused
	Revoked           = "revoked"            // a one-time link or a delivery was revoked
	Receipt           = "receipt"            // a delivery report was queued for the sender
	SignIn            = "signin"             // a practitioner signed in
	SignInFailed      = "signin-failed"      // a sign-in was refused
	Access            = "access"             // an administrator or auditor looked at records
	// KeyRotated (rotate.go): the checkpoint signing key was changed.
	ClientAdded   = "client-added"   // an operator registered an HTTPS API client
	ClientRevoked = "client-revoked" // an operator revoked an HTTPS API client, with a reason
)

// typeDocs describes every type; it is never modified.
var typeDocs = map[string]string{
	Accepted:          "a package was committed to the store of record",
	Decisions:         "the per-recipient decisions for a package, with reason codes",
	Override:          "a named safeguarding person overrode consent",
	ConsentRecorded:   "consent was recorded for an episode",
	ConsentWithdrawn:  "consent was withdrawn",
	EpisodeOpened:     "an episode was opened",
	EpisodeHandover:   "the lead professional changed",
	EpisodeTransition: "the episode moved to another stage",
	EpisodeClosed:     "the episode was closed",
	Encrypted:         "a copy was encrypted to a recipient's certificate",
	Queued:            "a copy was queued for delivery to a recipient",
	Relayed:           "the next host accepted a copy",
	Deferred:          "a temporary delivery failure; retried later",
	Bounced:           "delivery failed for good",
	LeaseExpired:      "a delivery attempt's claim lapsed",
	Held:              "an operator held a queued copy",
	Released:          "an operator released a held copy",
	RetryRequested:    "an operator asked for a delivery attempt now",
	Dropped:           "an operator gave a queued copy up",
	Delivered:         "a copy was stored in a hosted mailbox",
	Notified:          "a notification with a one-time link was sent",
	PickedUp:          "the recipient took the package through the one-time link",
	Read:              "a read receipt (MDN) came back",
	Expired:           "a one-time link expired unused",
	Revoked:           "a one-time link or a delivery was revoked",
	NotDelivered:      "a recipient allowed at acceptance gets nothing: gone from the directory, no longer in good standing, or no document of the package allowed",
	Receipt:           "a delivery report was queued for the sender",
	SignIn:            "a practitioner signed in",
	SignInFailed:      "a sign-in was refused",
	Access:            "an administrator or auditor looked at records",
	KeyRotated:        "the checkpoint signing key was changed (the statement signed by the old and the new key)",
	ClientAdded:       "an operator registered an HTTPS API client",
	ClientRevoked:     "an operator revoked an HTTPS API client",
}

// SignInData is the data of "signin" and "signin-failed". User is recorded only when it is a
// well-formed mail address (someone may type a password into the user field); never a password.
type SignInData struct {
	User   string `json:"user,omitempty"`
	Via    string `json:"via"`              // submission, submissions, https, imap, pickup
	Remote string `json:"remote,omitempty"` // client address
	Reason string `json:"reason,omitempty"` // for a failure: bad-credentials, disabled, vetting-lapsed, directory-unavailable…
}

// AccessData is the data of "access": who looked, in what role, why (their words), and at what.
type AccessData struct {
	Operator string `json:"operator"`
	Role     string `json:"role,omitempty"` // admin, auditor
	Reason   string `json:"reason"`
	Query    string `json:"query"`          // e.g. "package=ID", "practitioner=MAIL since=T"
	Tool     string `json:"tool,omitempty"` // cli, web
	Host     string `json:"host,omitempty"` // machine the access came from
}

// EncryptedData is the data of "encrypted".
type EncryptedData struct {
	Recipient string   `json:"recipient"`
	Cert      string   `json:"cert"`               // SHA-256 fingerprint of the certificate, lower-case hex
	Sections  []string `json:"sections,omitempty"` // the sections the copy holds
}

// NotDeliveredData is the data of "not-delivered". Reason is a code: "directory-gone", "standing"
// (lapsed vetting or disabled since acceptance) or "nothing-allowed".
type NotDeliveredData struct {
	Recipient string `json:"recipient"`
	Reason    string `json:"reason"`
}

// DeliveredData is the data of "delivered".
type DeliveredData struct {
	Recipient string `json:"recipient"`
	Mailbox   string `json:"mailbox,omitempty"`
	// Notice is set when what was stored is mail the gateway wrote about the package (a delivery
	// report, a DSN, an override notice): what it is (its queue "about" key, e.g. "receipt"). It is
	// empty for the package's own copy, so a copy's delivery is never confused with a notice's.
	Notice string `json:"notice,omitempty"`
}

// LinkData is the data of "notified", "picked-up", "expired" and "revoked" (for a link).
type LinkData struct {
	Recipient string `json:"recipient"`
	Link      string `json:"link"`             // the link's ID, never its secret
	Remote    string `json:"remote,omitempty"` // for picked-up: the client address
	By        string `json:"by,omitempty"`     // for revoked: who revoked it
	Reason    string `json:"reason,omitempty"` // for revoked: why
}

// ReadData is the data of "read".
type ReadData struct {
	Recipient   string `json:"recipient"`
	Disposition string `json:"disposition"` // from the MDN, e.g. "manual-action/MDN-sent-manually; displayed"
}

// ReceiptData is the data of "receipt".
type ReceiptData struct {
	Sender   string `json:"sender"`
	QueueID  string `json:"queue_id,omitempty"`
	Outcomes int    `json:"outcomes"` // recipients with an outcome in the report
	Pending  int    `json:"pending"`  // recipients still without one
}
