// Read receipts (RFC 8098 message disposition notifications) submitted by practitioners: a recipient's
// mail client reports that it displayed (or deleted, dispatched, processed) a package copy it received.
// The gateway checks that the practitioner received that copy, records "read" in the ledger for a
// "displayed" receipt, and passes a notification of its own making (fields of the receipt, no package
// content, nothing the client wrote) on to the package's sender: into their hosted mailbox, else onto
// the relay queue with the null reverse-path (RFC 8098 section 2.1 / 3). Receipt, ledger event and
// passing on commit in one transaction before the 250.

package intake

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"time"

	"cafgate/gateway/fault"
	"cafgate/mailbox"
)

// MDNStore is what passing read receipts on needs of the store of record (*mailbox.Store).
type MDNStore interface {
	Tx(ctx context.Context, fn func(tx *sql.Tx) error) error
	MDNOriginalTx(ctx context.Context, tx *sql.Tx, from string, mdn *mailbox.MDN) (*mailbox.MDNOriginal, error)
	RecordReadTx(ctx context.Context, tx *sql.Tx, at time.Time, from string, mdn *mailbox.MDN) (bool, error)
	DeliverToMailboxTx(ctx context.Context, tx *sql.Tx, at time.Time, d *mailbox.Delivery) (*mailbox.Delivered, error)
	EnqueueTx(ctx context.Context, tx *sql.Tx, at time.Time, items ...*mailbox.Outbound) ([]string, error)
}

// MDNOptions wire read receipts. Without them (Intake.MDN nil) a read receipt is refused.
type MDNOptions struct {
	Store    MDNStore
	Hostname string // for the Message-ID of the notification passed on
	// Hosted reports whether a mailbox is hosted here; Delivered is told after a notification is stored
	// in one (the IMAP notifier); Queued after one is queued for the relay (its Wake). Each may be nil.
	Hosted    func(mail string) bool
	Delivered func(mail string)
	Queued    func()
}

// maxMDNSize bounds a read receipt: it carries a few fields, never a package.
const maxMDNSize = 64 << 10

// IsMDN reports whether content (the message inside any S/MIME layers) presents itself as a read
// receipt: its top-level type is multipart/report with report-type=disposition-notification. Whether
// it is a well-formed one is acceptMDN's to say.
func IsMDN(content []byte) bool {
	m, err := mail.ReadMessage(bytes.NewReader(content))
	if err != nil {
		return false
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	return err == nil && mt == "multipart/report" && strings.EqualFold(params["report-type"], "disposition-notification")
}

// errPassedOnBefore marks a receipt that was already passed on (a client sending it again after a
// lost 250): nothing is written again and the client gets its 250.
var errPassedOnBefore = mailbox.ErrDuplicate

// acceptMDN handles a submission IsMDN recognised; it returns an ID for the 250 or a refusal.
func (in *Intake) acceptMDN(ctx context.Context, s *Submission) (string, error) {
	refuse := func(e *fault.Error) (string, error) { return "", in.logged(e, s.Client, "mdn") }
	if in.MDN == nil || in.MDN.Store == nil {
		return refuse(fault.New(fault.NotPermitted, "This gateway does not pass read receipts on.", nil))
	}
	if len(s.Content) > maxMDNSize {
		return refuse(fault.New(fault.TooBig, "A read receipt may be at most 64 KB; this one is larger, so it was not accepted.", nil))
	}
	if fe := checkMDNParts(s.Content); fe != nil {
		return refuse(fe)
	}
	m, ok := mailbox.ParseMDN(s.Content)
	if !ok {
		return refuse(fault.New(fault.BadMessage, "The read receipt is malformed: its message/disposition-notification part must carry a Disposition field (RFC 8098). It was not accepted.", nil))
	}
	if m.OriginalMessageID == "" {
		return refuse(fault.New(fault.BadMessage, "The read receipt has no usable Original-Message-ID field, so the gateway cannot tell which package it is about. It was not accepted.", nil))
	}
	switch m.Type {
	case "displayed", "deleted", "dispatched", "processed":
	default:
		return refuse(fault.New(fault.BadMessage, "The read receipt's Disposition is not one of displayed, deleted, dispatched or processed (RFC 8098). It was not accepted.", nil))
	}
	from := s.Sender.Mail
	if m.FinalRecipient != "" && m.FinalRecipient != from {
		return refuse(fault.New(fault.NotPermitted, "You may only send a read receipt for a package you received yourself: its Final-Recipient must be your own address. It was not passed on.", nil))
	}
	o := in.MDN
	at := in.Now().UTC()
	id := mailbox.NewRecordID()
	var orig *mailbox.MDNOriginal
	var read, hosted bool
	err := o.Store.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		if orig, err = o.Store.MDNOriginalTx(ctx, tx, from, m); err != nil || orig == nil {
			return err
		}
		for _, r := range s.Recipients {
			if NormalizeMail(r) != orig.Sender {
				return nil // refused below; nothing written
			}
		}
		if m.Type == "displayed" {
			if read, err = o.Store.RecordReadTx(ctx, tx, at, from, m); err != nil {
				return err
			}
		}
		note, err := mdnNotice(o.Hostname, at, from, orig, m)
		if err != nil {
			return err
		}
		// One notification per package, recipient and disposition type: sent again, it is not passed on twice.
		key := "mdn/" + orig.MessageID + "/" + from + "/" + m.Type
		if o.Hosted != nil && o.Hosted(orig.Sender) {
			hosted = true
			_, err = o.Store.DeliverToMailboxTx(ctx, tx, at, &mailbox.Delivery{Recipient: orig.Sender, Content: note, Key: key})
			return err
		}
		_, err = o.Store.EnqueueTx(ctx, tx, at, &mailbox.Outbound{MessageID: orig.MessageID, Kind: mailbox.KindDSN,
			About: key, Recipient: orig.Sender, Content: note})
		return err
	})
	switch {
	case errors.Is(err, errPassedOnBefore):
		in.Log.Info("read receipt already passed on", "id", id, "package", orig.MessageID, "via", s.Client.Via,
			"remote", s.Client.RemoteAddr, "sender_dn", s.Sender.DN, "disposition", m.Type)
		return id, nil
	case err != nil:
		return refuse(storeFault(err))
	case orig == nil:
		return refuse(fault.New(fault.NotPermitted, "This read receipt is about no package the gateway delivered to you (its Original-Message-ID names none), so it was not passed on.", nil))
	}
	for _, r := range s.Recipients {
		if NormalizeMail(r) != orig.Sender {
			return refuse(fault.New(fault.NotPermitted, "A read receipt goes only to the practitioner who sent the package ("+orig.Sender+"); address it to them alone.", nil))
		}
	}
	switch {
	case hosted && o.Delivered != nil:
		o.Delivered(orig.Sender)
	case !hosted && o.Queued != nil:
		o.Queued()
	}
	in.Log.Info("read receipt passed on", "id", id, "package", orig.MessageID, "via", s.Client.Via, "remote", s.Client.RemoteAddr,
		"sender_dn", s.Sender.DN, "disposition", m.Type, "read_recorded", read, "hosted", hosted)
	return id, nil
}

// checkMDNParts refuses a receipt that carries more than a receipt: RFC 8098 allows the original
// message as a third part, but here that would be package content leaving by a side door. The parts
// allowed are the human-readable text, the notification fields and the original's header section.
func checkMDNParts(content []byte) *fault.Error {
	m, err := mail.ReadMessage(bytes.NewReader(content))
	if err != nil {
		return fault.New(fault.BadMessage, "The read receipt is malformed and was not accepted.", err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		return fault.New(fault.BadMessage, "The read receipt's multipart/report has no boundary, so it cannot be read. It was not accepted.", err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fault.New(fault.BadMessage, "The read receipt's MIME structure is malformed and cannot be read. It was not accepted.", err)
		}
		mt, _, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if p.Header.Get("Content-Type") == "" {
			mt, err = "text/plain", nil
		}
		if err != nil {
			return fault.New(fault.BadMessage, "A part of the read receipt has a malformed Content-Type. It was not accepted.", err)
		}
		switch mt {
		case "text/plain", "message/disposition-notification", "text/rfc822-headers":
		case "message/rfc822", "message/global":
			return fault.New(fault.NotPermitted, "A read receipt must not carry the package: leave the original message out (its headers alone may be included). It was not passed on.", nil)
		default:
			return fault.New(fault.NotPermitted, "A read receipt may hold only a text part, the notification fields and the original's headers; this one holds "+mt+". It was not passed on.", nil)
		}
	}
}

// mdnNotice is the notification passed on to the package's sender: a multipart/report of the gateway's
// own making that names the package and who reported what, and nothing else.
func mdnNotice(hostname string, at time.Time, from string, orig *mailbox.MDNOriginal, m *mailbox.MDN) ([]byte, error) {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	boundary := "mdn-" + hex.EncodeToString(rnd[:6])
	what := map[string]string{
		"displayed":  "was displayed to",
		"deleted":    "was deleted, unread or after reading, by",
		"dispatched": "was sent on by the mail system of",
		"processed":  "was processed by the mail system of",
	}[m.Type]
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: Read receipt: CAF package %s (%s)\r\nDate: %s\r\n"+
		"Message-ID: <mdn.%s@%s>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/report; report-type=disposition-notification; boundary=\"%s\"\r\n\r\n",
		from, orig.Sender, orig.MessageID, m.Type, at.Format(time.RFC1123Z), hex.EncodeToString(rnd[6:]), hostname, boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"The CAF package you sent (accepted by the gateway as %s) %s %s.\r\n"+
		"Their mail client reported it at %s; the gateway checked that they received the package.\r\n",
		boundary, orig.MessageID, what, from, at.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "--%s\r\nContent-Type: message/disposition-notification\r\n\r\n"+
		"Reporting-UA: %s; cafgate\r\nFinal-Recipient: rfc822;%s\r\nOriginal-Message-ID: %s\r\nDisposition: %s\r\n"+
		"--%s--\r\n", boundary, hostname, from, m.OriginalMessageID, printableField(m.Disposition), boundary)
	return b.Bytes(), nil
}

// printableField keeps a field value to printable ASCII on one line (at most 200 characters).
func printableField(v string) string {
	var b strings.Builder
	for _, r := range v {
		if b.Len() >= 200 {
			break
		}
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		}
	}
	return b.String()
}
