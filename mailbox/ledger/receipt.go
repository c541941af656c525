// Delivery receipts for the sender: a per-package report mail (multipart/report, RFC 6522) with a
// human-readable part and a message/delivery-status part (RFC 3464) carrying each recipient's outcome,
// built from what the store recorded, and, when given, the ledger's inclusion proofs of the package's
// events as attachments (the report then sits inside a multipart/mixed), each checkable with
// `cafgate ledger check-proof`. It holds no package content and no subject line; sections are named
// only by their titles. mailbox/report.go decides when to send it and routes it.

package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"strings"
	"time"
)

// Receipt outcomes, one per recipient.
const (
	OutcomeDelivered = "delivered" // stored in the recipient's mailbox or accepted by their final host
	OutcomeRelayed   = "relayed"   // handed to the recipient's mail server
	OutcomeEncrypted = "encrypted" // encrypted to the recipient's certificate and queued
	OutcomeNotified  = "notified"  // sent a notification with a one-time link
	OutcomeRefused   = "refused"   // not sent: policy, consent or directory said no
	OutcomeRetrying  = "retrying"  // a temporary failure; still being tried
	OutcomeBounced   = "bounced"   // delivery failed for good
	OutcomePending   = "pending"   // no outcome yet
)

// RecipientOutcome is what happened for one recipient.
type RecipientOutcome struct {
	Recipient string
	Outcome   string    // one of the Outcome constants
	Cert      string    // for encrypted: the certificate's SHA-256 fingerprint, hex
	Reason    string    // for refused, retrying, bounced: a sentence for the sender (no package content)
	Status    string    // enhanced status code (RFC 3463); empty takes the outcome's default
	Remote    string    // the other side's answer, when there is one (an SMTP reply line)
	At        time.Time // when the outcome was recorded
	// Decision is the consent decision's reason code (e.g. "refused-agency", "sections-withheld").
	Decision string
	// Withheld are the titles of the sections not sent to this recipient, and WithheldWhy the words
	// that say why (no section content).
	Withheld    []string
	WithheldWhy string
}

// ReceiptProof is one ledger event's inclusion proof attached to a receipt.
type ReceiptProof struct {
	Index uint64 // the event's number
	Type  string // the event's type, for the list in the text
	Text  []byte // the proof as cafgate ledger prove prints it; nil: no checkpoint covers it yet
}

// ReceiptInput is everything a receipt says.
type ReceiptInput struct {
	Hostname    string // the gateway's host name (Reporting-MTA, From and Message-ID domain)
	Sender      string // the practitioner who submitted the package
	Package     string // the package (message) ID
	Digest      string // SHA-256 of the package as received, hex
	SubmittedAt time.Time
	Date        time.Time // the report's date
	Outcomes    []RecipientOutcome
	// Proofs of the package's ledger events; LedgerKey names the key that signed their checkpoint.
	Proofs    []ReceiptProof
	LedgerKey string
	// First marks the early report sent when some recipients were refused and the others have no
	// final outcome yet; the full report follows.
	First bool
}

// dsnAction maps an outcome to its RFC 3464 Action and default status.
func dsnAction(outcome string) (action, status string, ok bool) {
	switch outcome {
	case OutcomeDelivered, OutcomeNotified:
		return "delivered", "2.0.0", true
	case OutcomeRelayed, OutcomeEncrypted:
		return "relayed", "2.0.0", true
	case OutcomeRefused:
		return "failed", "5.7.1", true
	case OutcomeBounced:
		return "failed", "5.0.0", true
	case OutcomeRetrying, OutcomePending:
		return "delayed", "4.0.0", true
	}
	return "", "", false
}

// BuildReceipt renders the receipt mail, CRLF line ends, ready to be queued to in.Sender.
func BuildReceipt(in ReceiptInput) ([]byte, error) {
	if err := checkReceipt(in); err != nil {
		return nil, err
	}
	boundary, err := randomToken(12)
	if err != nil {
		return nil, err
	}
	id, err := randomToken(10)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	h := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }
	h("From: cafgate <postmaster@%s>", in.Hostname)
	h("To: <%s>", in.Sender)
	if in.First {
		h("Subject: First delivery report for package %s: not every recipient receives it", in.Package)
	} else {
		h("Subject: Delivery report for package %s", in.Package)
	}
	h("Date: %s", in.Date.Format(time.RFC1123Z))
	h("Message-ID: <receipt.%s@%s>", id, in.Hostname)
	h("Auto-Submitted: auto-generated")
	h("X-Auto-Response-Suppress: All")
	h("MIME-Version: 1.0")
	outer := ""
	if len(in.Proofs) > 0 {
		outer = "m" + boundary
		h("Content-Type: multipart/mixed; boundary=\"%s\"", outer)
		h("")
		h("--%s", outer)
	}
	h("Content-Type: multipart/report; report-type=delivery-status; boundary=\"%s\"", boundary)
	h("")
	h("--%s", boundary)
	h("Content-Type: text/plain; charset=utf-8")
	h("Content-Transfer-Encoding: quoted-printable")
	h("")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(strings.ReplaceAll(receiptText(in), "\n", "\r\n")))
	qp.Close()
	h("")
	h("--%s", boundary)
	h("Content-Type: message/delivery-status")
	h("")
	b.WriteString(deliveryStatus(in))
	h("--%s--", boundary)
	if outer == "" {
		return b.Bytes(), nil
	}
	for _, p := range in.Proofs {
		if p.Text == nil {
			continue
		}
		name := fmt.Sprintf("ledger-proof-%d.txt", p.Index)
		h("--%s", outer)
		h("Content-Type: text/plain; charset=utf-8; name=\"%s\"", name)
		h("Content-Disposition: attachment; filename=\"%s\"", name)
		h("Content-Transfer-Encoding: base64")
		h("")
		enc := base64.StdEncoding.EncodeToString(p.Text)
		for len(enc) > 76 {
			h("%s", enc[:76])
			enc = enc[76:]
		}
		h("%s", enc)
	}
	h("--%s--", outer)
	return b.Bytes(), nil
}

// checkReceipt refuses input that would break the mail's structure (line breaks in fields).
func checkReceipt(in ReceiptInput) error {
	fields := []string{in.Hostname, in.Sender, in.Package, in.Digest}
	for _, o := range in.Outcomes {
		if _, _, ok := dsnAction(o.Outcome); !ok {
			return fmt.Errorf("ledger: receipt: unknown outcome %q", o.Outcome)
		}
		fields = append(fields, o.Recipient, o.Cert, o.Reason, o.Status, o.Remote, o.Decision, o.WithheldWhy)
		fields = append(fields, o.Withheld...)
	}
	fields = append(fields, in.LedgerKey)
	for _, p := range in.Proofs {
		fields = append(fields, p.Type)
	}
	for _, f := range fields {
		if strings.ContainsAny(f, "\r\n") {
			return errors.New("ledger: receipt: a field holds a line break")
		}
	}
	if in.Hostname == "" || in.Sender == "" || in.Package == "" || len(in.Outcomes) == 0 {
		return errors.New("ledger: receipt needs a host name, a sender, a package and at least one recipient")
	}
	return nil
}

// receiptText is the part for people.
func receiptText(in ReceiptInput) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Delivery report for package %s, submitted %s.\n", in.Package, in.SubmittedAt.UTC().Format("2 Jan 2006 15:04 MST"))
	if in.First {
		b.WriteString("This is a first report: some recipients were refused or will not receive every section, and\n" +
			"the others are still being delivered. A full report follows once every recipient has an outcome.\n")
	}
	if in.Digest != "" {
		fmt.Fprintf(&b, "SHA-256 of the package as received: %s\n", in.Digest)
	}
	b.WriteString("\n")
	for _, o := range in.Outcomes {
		fmt.Fprintf(&b, "  %s: %s\n", o.Recipient, outcomeSentence(o))
		if len(o.Withheld) > 0 {
			fmt.Fprintf(&b, "    Sections withheld from %s: %s.", o.Recipient, strings.Join(o.Withheld, ", "))
			if o.WithheldWhy != "" {
				b.WriteString(" " + o.WithheldWhy)
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\nThis report holds no part of the package. Every step above is recorded in the gateway's\n" +
		"tamper-evident ledger; quote the package ID to your agency administrator for details.\n")
	proofText(&b, in)
	return b.String()
}

// proofText lists the attached proofs and how to check them.
func proofText(b *strings.Builder, in ReceiptInput) {
	if len(in.Proofs) == 0 {
		return
	}
	b.WriteString("\nLedger proofs: each attached ledger-proof-N.txt shows that event N is in the ledger as signed\n")
	b.WriteString("at a checkpoint")
	if in.LedgerKey != "" {
		fmt.Fprintf(b, " by the ledger key %s", in.LedgerKey)
	}
	b.WriteString(". Check one with\n  cafgate ledger check-proof --pub LEDGER-PUBLIC-KEY ledger-proof-N.txt\n")
	b.WriteString("or with the openssl recipe in docs/ledger.md.\n")
	for _, p := range in.Proofs {
		if p.Text != nil {
			fmt.Fprintf(b, "  event %d (%s): attached\n", p.Index, p.Type)
		} else {
			fmt.Fprintf(b, "  event %d (%s): not yet covered by a checkpoint; ask for it later with cafgate ledger prove %d\n", p.Index, p.Type, p.Index)
		}
	}
}

func outcomeSentence(o RecipientOutcome) string {
	var s string
	switch o.Outcome {
	case OutcomeDelivered:
		s = "delivered"
	case OutcomeRelayed:
		s = "handed to the recipient's mail server"
	case OutcomeEncrypted:
		s = "encrypted to the recipient's certificate"
		if o.Cert != "" {
			s += " (SHA-256 " + o.Cert + ")"
		}
		s += " and sent"
	case OutcomeNotified:
		s = "sent a notification with a one-time link to collect the package"
	case OutcomeRefused:
		s = "NOT sent"
	case OutcomeRetrying:
		s = "not delivered yet; the gateway is still trying"
	case OutcomeBounced:
		s = "NOT delivered: the gateway has given up"
	case OutcomePending:
		s = "no outcome yet"
	}
	if o.Reason != "" {
		s += ": " + o.Reason
	}
	if o.Remote != "" {
		s += " (the server answered: " + o.Remote + ")"
	}
	return s
}

// deliveryStatus is the machine-readable part (RFC 3464), with cafgate's outcome and the certificate
// as extension fields.
func deliveryStatus(in ReceiptInput) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Reporting-MTA: dns; %s\r\n", in.Hostname)
	fmt.Fprintf(&b, "X-Cafgate-Package: %s\r\n", in.Package)
	if !in.SubmittedAt.IsZero() {
		fmt.Fprintf(&b, "Arrival-Date: %s\r\n", in.SubmittedAt.Format(time.RFC1123Z))
	}
	for _, o := range in.Outcomes {
		action, status, _ := dsnAction(o.Outcome)
		if o.Status != "" {
			status = o.Status
		}
		fmt.Fprintf(&b, "\r\nFinal-Recipient: rfc822; %s\r\nAction: %s\r\nStatus: %s\r\nX-Cafgate-Outcome: %s\r\n", o.Recipient, action, status, o.Outcome)
		if o.Decision != "" {
			fmt.Fprintf(&b, "X-Cafgate-Decision: %s\r\n", o.Decision)
		}
		if o.Cert != "" {
			fmt.Fprintf(&b, "X-Cafgate-Certificate: sha256:%s\r\n", o.Cert)
		}
		if o.Remote != "" {
			fmt.Fprintf(&b, "Diagnostic-Code: smtp; %s\r\n", o.Remote)
		}
		if !o.At.IsZero() {
			fmt.Fprintf(&b, "Last-Attempt-Date: %s\r\n", o.At.Format(time.RFC1123Z))
		}
	}
	return b.String()
}

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// ProveLatest builds the inclusion proofs of events against the newest stored checkpoint, inside q
// (one read or write transaction). An event the checkpoint does not cover gets a proof with no Text.
// The checkpoint's signature is not checked here: the reader checks it with the ledger's public key.
func ProveLatest(ctx context.Context, q Querier, events []ReceiptProof) ([]ReceiptProof, error) {
	stored, err := StoredCheckpoints(ctx, q, true)
	if err != nil {
		return nil, err
	}
	var cp *Checkpoint
	if len(stored) == 1 {
		if cp, err = parseUnverified(stored[0].Note); err != nil {
			return nil, err
		}
	}
	out := make([]ReceiptProof, len(events))
	for i, e := range events {
		out[i] = ReceiptProof{Index: e.Index, Type: e.Type}
		if cp == nil || e.Index >= cp.Size {
			continue
		}
		data, leaf, err := ReadEvent(ctx, q, e.Index)
		if err != nil {
			return nil, err
		}
		if LeafHash(data) != leaf {
			return nil, fmt.Errorf("ledger: event %d no longer matches its recorded hash; run cafgate ledger verify", e.Index)
		}
		path, err := InclusionPath(ctx, Nodes{Q: q}, e.Index, cp.Size)
		if err != nil {
			return nil, err
		}
		p := &Proof{Index: e.Index, Size: cp.Size, Event: data, Path: path, Checkpoint: cp.Note}
		if out[i].Text, err = p.MarshalText(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
