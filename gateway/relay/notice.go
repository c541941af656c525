// Reports to the sender: a DSN about one queue entry, itself queued as an entry of kind dsn (null
// reverse-path, to the entry's envelope sender), carrying the entry's headers and never its body.

package relay

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"cafgate/gateway/dsn"
	"cafgate/mailbox"
)

// Notice builds the DSN about entry e for e's sender: rc says what happened (its Final defaults to
// e's recipient), content is e's stored copy (for the header block; nil leaves it empty), explanation
// an optional extra paragraph. It returns nil, nil for an entry that is itself a DSN: reports are never
// reported on. hostname is the gateway's, used as the reporting MTA and in the report's Message-ID.
func Notice(hostname string, e *mailbox.QueueEntry, content []byte, rc dsn.Recipient, explanation string, now time.Time) (*mailbox.Outbound, error) {
	if e.Kind == mailbox.KindDSN || e.From == "" {
		return nil, nil
	}
	if rc.Final == "" {
		rc.Final = e.Recipient
	}
	id, err := newMessageID(hostname)
	if err != nil {
		return nil, err
	}
	rep := &dsn.Report{
		ReportingMTA: hostname, To: e.From, Date: now, MessageID: id, ArrivalDate: e.FirstQueued,
		OriginalMessageID: e.HeaderMessageID, Explanation: explanation, Recipients: []dsn.Recipient{rc},
		Headers: content,
	}
	b, err := dsn.Build(rep)
	if err != nil {
		return nil, err
	}
	return &mailbox.Outbound{MessageID: e.MessageID, Kind: mailbox.KindDSN, About: e.ID + "/" + string(rc.Action),
		Recipient: e.From, Content: b}, nil
}

// DropNotice is the failure report for an entry an operator dropped with reason.
func DropNotice(hostname string, e *mailbox.QueueEntry, content []byte, reason string, now time.Time) (*mailbox.Outbound, error) {
	return Notice(hostname, e, content, dsn.Recipient{Action: dsn.Failed, Status: "5.0.0",
		Diagnostic: "dropped from the queue by the gateway's operator: " + reason, LastAttempt: now},
		"The gateway's operator removed your message from the delivery queue, so it was not delivered to this recipient.", now)
}

func newMessageID(hostname string) (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return fmt.Sprintf("<dsn.%s@%s>", hex.EncodeToString(b), hostname), nil
}
