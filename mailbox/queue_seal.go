// Queue content at rest and the checks an Outbound passes before it is written: the same AES-256-GCM
// key as messages, bound to the queue ID under its own additional-data prefix, so neither a queue row's
// content nor a message's can be moved into the other table or another row.

package mailbox

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// queueAADPrefix versions and separates the queue's additional data from the messages table's.
const queueAADPrefix = "cafgate/mailbox/queue/v1\x00"

// maxQueueAnswer bounds the stored SMTP answer or reason, in bytes.
const maxQueueAnswer = 500

// Forms of a queue entry's stored content (queue_contents.form).
const (
	formCopy   = "copy"   // the whole message, sent as it is
	formRecipe = "recipe" // what the relay builds and seals the message from when it sends it
)

// queueAAD is the additional data of entry id's content of form: a copy keeps the data of the first
// version of the queue (the ID alone), so that no stored content needs re-encrypting; a recipe adds
// its form, so that neither can stand in for the other.
func queueAAD(id, form string) []byte {
	if form == formRecipe {
		return []byte(queueAADPrefix + id + "\x00" + formRecipe)
	}
	return []byte(queueAADPrefix + id)
}

// sealQueue encrypts plain, of form, for queue entry id with a fresh random nonce.
func (s *sealer) sealQueue(id, form string, plain []byte) (nonce, sealed []byte, err error) {
	g, err := s.aead()
	defer s.release(g)
	if err != nil {
		return nil, nil, err
	}
	nonce = make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	return nonce, g.Seal(nil, nonce, plain, queueAAD(id, form)), nil
}

// openQueue decrypts queue entry id's content of form; tampering gives ErrCorrupt.
func (s *sealer) openQueue(id, form string, nonce, sealed []byte) ([]byte, error) {
	g, err := s.aead()
	defer s.release(g)
	if err != nil {
		return nil, err
	}
	if len(nonce) != g.NonceSize() {
		return nil, fmt.Errorf("%w: queue entry %s: nonce length %d", ErrCorrupt, id, len(nonce))
	}
	plain, err := g.Open(nil, nonce, sealed, queueAAD(id, form))
	if err != nil {
		return nil, fmt.Errorf("%w: queue entry %s: content does not authenticate", ErrCorrupt, id)
	}
	return plain, nil
}

// outboundRow is an Outbound checked and sealed, ready to insert.
type outboundRow struct {
	id, kind, domain, headerID, form string
	size                             int
	next                             time.Time
	nonce, sealed                    []byte
}

func (s *Store) prepareOutbound(o *Outbound, at time.Time) (*outboundRow, error) {
	r, err := checkOutbound(o)
	if err != nil {
		return nil, err
	}
	if r.id, err = newQueueID(); err != nil {
		return nil, err
	}
	r.next = at
	if o.NotBefore.After(at) {
		r.next = o.NotBefore
	}
	plain := o.Content
	if r.form == formRecipe {
		plain = o.Recipe
	}
	if r.nonce, r.sealed, err = s.seal.sealQueue(r.id, r.form, plain); err != nil {
		return nil, fmt.Errorf("mailbox: sealing queue content: %w", err)
	}
	return r, nil
}

// checkOutbound refuses an entry the relay could not send or report on.
func checkOutbound(o *Outbound) (*outboundRow, error) {
	if o == nil {
		return nil, fmt.Errorf("%w: nil queue entry", ErrInvalid)
	}
	r := &outboundRow{kind: o.Kind, form: formCopy, size: len(o.Content)}
	if r.kind == "" {
		r.kind = KindMessage
	}
	if o.Recipe != nil {
		return checkRecipeOutbound(o, r)
	}
	switch {
	case o.MessageID == "":
		return nil, fmt.Errorf("%w: queue entry has no message ID", ErrInvalid)
	case r.kind != KindMessage && r.kind != KindDSN:
		return nil, fmt.Errorf("%w: queue entry kind %q", ErrInvalid, o.Kind)
	case r.kind == KindDSN && (o.From != "" || o.About == ""):
		return nil, fmt.Errorf("%w: a DSN is sent from the null reverse-path and says what it is about", ErrInvalid)
	case r.kind == KindMessage && !ValidAddress(o.From):
		return nil, fmt.Errorf("%w: queue entry for message %s has no valid envelope sender", ErrInvalid, o.MessageID)
	case !ValidAddress(o.Recipient):
		return nil, fmt.Errorf("%w: queue entry for message %s has no valid recipient", ErrInvalid, o.MessageID)
	case len(o.Content) == 0:
		return nil, fmt.Errorf("%w: queue entry for message %s has no content", ErrInvalid, o.MessageID)
	case o.Certificates != nil:
		return nil, fmt.Errorf("%w: queue entry for message %s: certificates go with a recipe", ErrInvalid, o.MessageID)
	}
	r.domain = AddressDomain(o.Recipient)
	var err error
	if r.headerID, err = headerMessageID(o.Content); err != nil {
		return nil, fmt.Errorf("%w: queue entry for message %s: %v", ErrInvalid, o.MessageID, err)
	}
	return r, nil
}

// checkRecipeOutbound refuses a recipe entry the relay could not build, send or report on.
func checkRecipeOutbound(o *Outbound, r *outboundRow) (*outboundRow, error) {
	id := strings.TrimSpace(o.HeaderMessageID)
	switch {
	case o.MessageID == "":
		return nil, fmt.Errorf("%w: queue entry has no message ID", ErrInvalid)
	case r.kind != KindMessage || o.About != "":
		return nil, fmt.Errorf("%w: only a package copy is queued by recipe", ErrInvalid)
	case !ValidAddress(o.From) || !ValidAddress(o.Recipient):
		return nil, fmt.Errorf("%w: queue entry for message %s has no valid envelope sender or recipient", ErrInvalid, o.MessageID)
	case o.Content != nil:
		return nil, fmt.Errorf("%w: queue entry for message %s has both content and a recipe", ErrInvalid, o.MessageID)
	case len(o.Recipe) == 0 || o.Size <= 0:
		return nil, fmt.Errorf("%w: queue entry for message %s has an empty recipe or no size", ErrInvalid, o.MessageID)
	case slices.ContainsFunc(o.Certificates, func(der []byte) bool { return len(der) == 0 }):
		return nil, fmt.Errorf("%w: queue entry for message %s names an empty certificate", ErrInvalid, o.MessageID)
	case len(id) < 3 || id[0] != '<' || id[len(id)-1] != '>' || len(id) > 998 || strings.ContainsAny(id, "\r\n"):
		return nil, fmt.Errorf("%w: queue entry for message %s: the recipe's Message-ID %q is not one", ErrInvalid, o.MessageID, id)
	}
	r.domain, r.headerID, r.form, r.size = AddressDomain(o.Recipient), id, formRecipe, o.Size
	return r, nil
}

// ValidAddress reports whether a is a mailbox fit for an SMTP envelope: local@domain, printable
// ASCII or UTF-8 without spaces, angle brackets or control characters, at most 320 bytes.
func ValidAddress(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 || len(a) > 320 || !utf8.ValidString(a) {
		return false
	}
	for _, c := range a {
		if c <= ' ' || c == 0x7f || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

// AddressDomain returns the lower-case domain of a valid address.
func AddressDomain(a string) string {
	return strings.ToLower(a[strings.LastIndexByte(a, '@')+1:])
}

// headerMessageID returns the Message-ID header of content, which must be there: it is how a
// duplicate sent after a crash is recognised.
func headerMessageID(content []byte) (string, error) {
	m, err := mail.ReadMessage(bytes.NewReader(content))
	if err != nil {
		return "", fmt.Errorf("content header: %v", err)
	}
	id := strings.TrimSpace(m.Header.Get("Message-ID"))
	if len(id) < 3 || id[0] != '<' || id[len(id)-1] != '>' || len(id) > 998 {
		return "", fmt.Errorf("content has no Message-ID header")
	}
	return id, nil
}

// newQueueID returns a fresh queue ID: "Q" and a record ID (recordid.go).
func newQueueID() (string, error) {
	return "Q" + NewRecordID(), nil
}

// queueLine makes an SMTP answer or reason safe to store and show: one line of printable text, bounded.
func queueLine(s string) string {
	var b strings.Builder
	space := false
	for _, c := range s {
		if c < ' ' || c == 0x7f || c == utf8.RuneError {
			c = ' '
		}
		if c == ' ' && (space || b.Len() == 0) {
			continue
		}
		space = c == ' '
		if b.Len()+utf8.RuneLen(c) > maxQueueAnswer {
			break
		}
		b.WriteRune(c)
	}
	return strings.TrimRight(b.String(), " ")
}
