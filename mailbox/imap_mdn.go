// Read receipts: recognising an RFC 8098 message disposition notification (MDN), bare or inside an
// S/MIME signature (multipart/signed), and reading the fields the ledger needs from it.

package mailbox

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
)

// MDN is what the ledger needs of a message disposition notification.
type MDN struct {
	OriginalMessageID string // the Original-Message-ID field, in angle brackets
	FinalRecipient    string // the address of the Final-Recipient field (lower case), or ""
	Disposition       string // the Disposition field as sent, e.g. "manual-action/MDN-sent-manually; displayed"
	Type              string // the disposition type, lower case: displayed, deleted, dispatched or processed
}

// maxMDNPart bounds what is read of the report's parts.
const maxMDNPart = 64 << 10

// ParseMDN reports whether content is an MDN and returns its fields. Anything it cannot read is not an
// MDN.
func ParseMDN(content []byte) (*MDN, bool) {
	m, err := mail.ReadMessage(bytes.NewReader(content))
	if err != nil {
		return nil, false
	}
	return mdnEntity(textproto.MIMEHeader(m.Header), m.Body, 0)
}

// mdnEntity looks for the report in an entity: the entity itself, or the first part of a signature.
func mdnEntity(h textproto.MIMEHeader, body io.Reader, depth int) (*MDN, bool) {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || depth > 2 || params["boundary"] == "" {
		return nil, false
	}
	mr := multipart.NewReader(io.LimitReader(body, 4*maxMDNPart), params["boundary"])
	switch {
	case mt == "multipart/signed":
		p, err := mr.NextPart()
		if err != nil {
			return nil, false
		}
		return mdnEntity(p.Header, p, depth+1)
	case mt == "multipart/report" && strings.EqualFold(params["report-type"], "disposition-notification"):
		return mdnReport(mr)
	}
	return nil, false
}

// mdnReport reads the message/disposition-notification part of a report.
func mdnReport(mr *multipart.Reader) (*MDN, bool) {
	for {
		p, err := mr.NextPart()
		if err != nil {
			return nil, false
		}
		mt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if mt != "message/disposition-notification" {
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(p, maxMDNPart))
		if err != nil {
			return nil, false
		}
		return mdnFields(raw)
	}
}

// mdnFields parses the notification's fields.
func mdnFields(raw []byte) (*MDN, bool) {
	raw = append(bytes.TrimRight(raw, "\r\n"), "\r\n\r\n"...)
	f, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
	if err != nil && len(f) == 0 {
		return nil, false
	}
	disp := strings.TrimSpace(f.Get("Disposition"))
	_, typ, ok := strings.Cut(disp, ";")
	if !ok {
		return nil, false
	}
	typ, _, _ = strings.Cut(strings.ToLower(strings.TrimSpace(typ)), "/")
	m := &MDN{OriginalMessageID: bracketMessageID(f.Get("Original-Message-Id")), Disposition: disp, Type: strings.TrimSpace(typ)}
	if _, addr, ok := strings.Cut(f.Get("Final-Recipient"), ";"); ok {
		m.FinalRecipient = strings.ToLower(strings.Trim(strings.TrimSpace(addr), "<>"))
	}
	return m, true
}

// MDNOriginal is the package a read receipt answers.
type MDNOriginal struct {
	MessageID string // the accepted message (messages.id)
	Sender    string // its sender's mail address (lower case)
}

// MDNOriginalTx returns the package whose copy with Message-ID mdn.OriginalMessageID went to from,
// through the outbound queue or into from's hosted mailbox, read inside tx; nil when there is none (the
// receipt is about nothing from received from the gateway).
func (s *Store) MDNOriginalTx(ctx context.Context, tx *sql.Tx, from string, mdn *MDN) (*MDNOriginal, error) {
	if mdn.OriginalMessageID == "" {
		return nil, nil
	}
	pkg, err := packageSentTo(ctx, tx, mdn.OriginalMessageID, strings.ToLower(strings.TrimSpace(from)))
	if err != nil || pkg == "" {
		return nil, err
	}
	o := &MDNOriginal{MessageID: pkg}
	err = tx.QueryRowContext(ctx, `SELECT lower(sender) FROM messages WHERE id = ?`, pkg).Scan(&o.Sender)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return o, nil
}
