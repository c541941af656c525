// The ledger events of the outbound queue and their data: metadata only (addresses, hosts, SMTP
// answers), never content or a subject.

package mailbox

import (
	"time"

	"cafgate/mailbox/ledger"
)

// Ledger event types written by the queue (declared in package ledger, which lists every type).
const (
	EventQueued         = ledger.Queued         // an entry was queued for a recipient
	EventRelayed        = ledger.Relayed        // a receiving MTA accepted it (host, answer, TLS)
	EventDeferred       = ledger.Deferred       // a temporary failure; retried at next
	EventBounced        = ledger.Bounced        // given up: rejected (5xx), expired, unroutable or corrupt
	EventLeaseExpired   = ledger.LeaseExpired   // a claim lapsed (crash or hang): it may have reached the wire
	EventHeld           = ledger.Held           // an operator held it
	EventReleased       = ledger.Released       // an operator released it
	EventRetryRequested = ledger.RetryRequested // an operator asked for an attempt now
	EventDropped        = ledger.Dropped        // an operator gave it up, with a reason
)

// Causes of a bounce (bouncedData.Cause).
const (
	CauseRejected   = "rejected"   // a permanent (5xx) answer
	CauseExpired    = "expired"    // the queue lifetime passed without delivery
	CauseUnroutable = "unroutable" // no way to reach the domain (null MX, domain does not exist)
	CauseCorrupt    = "corrupt"    // the stored content failed its integrity check
)

type queuedData struct {
	QueueID         string `json:"queue_id"`
	Kind            string `json:"kind"`
	About           string `json:"about,omitempty"`
	Recipient       string `json:"recipient"`
	Size            int    `json:"size"`
	HeaderMessageID string `json:"header_message_id"`
}

// queueAttemptData is the data of relayed, deferred and bounced events.
type queueAttemptData struct {
	QueueID   string     `json:"queue_id"`
	Kind      string     `json:"kind"`
	Recipient string     `json:"recipient"`
	Attempt   int        `json:"attempt"`
	Host      string     `json:"host,omitempty"`
	Answer    string     `json:"answer,omitempty"`
	TLS       string     `json:"tls,omitempty"`
	Next      *time.Time `json:"next,omitempty"`
	Cause     string     `json:"cause,omitempty"`
	Notice    string     `json:"notice,omitempty"` // queue ID of the DSN queued with this outcome
}

// queueAdminData is the data of lease-expired and operator events.
type queueAdminData struct {
	QueueID   string `json:"queue_id"`
	Kind      string `json:"kind"`
	Recipient string `json:"recipient"`
	Reason    string `json:"reason,omitempty"`
	Notice    string `json:"notice,omitempty"`
}
