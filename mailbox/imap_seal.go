// Hosted mailbox content at rest: the same AES-256-GCM key as messages and the queue, bound to the
// stored copy's ID and to which part it is (header or whole message) under its own additional-data
// prefix, so no sealed value can be moved to another row, another part or another table.

package mailbox

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/mattn/go-sqlite3"
)

// hostedAADPrefix versions and separates the hosted mailboxes' additional data.
const hostedAADPrefix = "cafgate/mailbox/imap/v1\x00"

// The parts of a stored copy that are sealed apart.
const (
	partHeader  = "header"
	partContent = "content"
)

func hostedAAD(id, part string) []byte { return []byte(hostedAADPrefix + id + "\x00" + part) }

// sealHosted encrypts plain as part of stored copy id with a fresh random nonce.
func (s *sealer) sealHosted(id, part string, plain []byte) (nonce, sealed []byte, err error) {
	g, err := s.aead()
	defer s.release(g)
	if err != nil {
		return nil, nil, err
	}
	nonce = make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	return nonce, g.Seal(nil, nonce, plain, hostedAAD(id, part)), nil
}

// openHosted decrypts part of stored copy id; tampering gives ErrCorrupt, a purged copy ErrNotFound.
func (s *sealer) openHosted(id, part string, nonce, sealed []byte) ([]byte, error) {
	if nonce == nil && sealed == nil {
		return nil, fmt.Errorf("%w: stored copy %s was purged", ErrNotFound, id)
	}
	g, err := s.aead()
	defer s.release(g)
	if err != nil {
		return nil, err
	}
	if len(nonce) != g.NonceSize() {
		return nil, fmt.Errorf("%w: stored copy %s: nonce length %d", ErrCorrupt, id, len(nonce))
	}
	plain, err := g.Open(nil, nonce, sealed, hostedAAD(id, part))
	if err != nil {
		return nil, fmt.Errorf("%w: stored copy %s: %s does not authenticate", ErrCorrupt, id, part)
	}
	return plain, nil
}

// sealedCopy is one message ready to insert into imap_contents.
type sealedCopy struct {
	id                        string
	size                      int
	headerMessageID           string
	headerNonce, header       []byte
	contentNonce, contentData []byte
}

// sealCopy splits content into its header section and seals both under a fresh copy ID.
func (s *Store) sealCopy(content []byte) (*sealedCopy, error) {
	id, err := newCopyID()
	if err != nil {
		return nil, err
	}
	c := &sealedCopy{id: id, size: len(content)}
	head := HeaderSection(content)
	c.headerMessageID = hostedMessageID(head)
	if c.headerNonce, c.header, err = s.seal.sealHosted(id, partHeader, head); err != nil {
		return nil, err
	}
	if c.contentNonce, c.contentData, err = s.seal.sealHosted(id, partContent, content); err != nil {
		return nil, err
	}
	return c, nil
}

// HeaderSection returns the header section of an RFC 5322 message, up to and including the empty line
// that ends it; a message without one is all header, and gets the empty line added.
func HeaderSection(content []byte) []byte {
	if i := bytes.Index(content, []byte("\r\n\r\n")); i >= 0 {
		return content[:i+4]
	}
	if bytes.HasPrefix(content, []byte("\r\n")) {
		return content[:2]
	}
	if i := bytes.Index(content, []byte("\n\n")); i >= 0 {
		return content[:i+2]
	}
	out := append([]byte(nil), content...)
	if !bytes.HasSuffix(out, []byte("\r\n")) && len(out) > 0 {
		out = append(out, '\r', '\n')
	}
	return append(out, '\r', '\n')
}

// hostedMessageID returns the Message-ID of a header section in angle brackets, as the queue keeps it,
// or "" when there is no usable one.
func hostedMessageID(head []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(head))
	if err != nil {
		return ""
	}
	return bracketMessageID(m.Header.Get("Message-Id"))
}

// bracketMessageID returns a Message-ID value in angle brackets, without surrounding white space; it
// returns "" for an unusable one.
func bracketMessageID(v string) string {
	v = strings.TrimSpace(v)
	v = strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">")
	if v == "" || len(v) > 900 || strings.ContainsAny(v, " \t\r\n<>") {
		return ""
	}
	return "<" + v + ">"
}

// newCopyID returns a fresh stored-copy ID: "C" and a record ID (recordid.go).
func newCopyID() (string, error) {
	return "C" + NewRecordID(), nil
}

// isHostedUnique reports whether err is a UNIQUE or PRIMARY KEY constraint failure.
func isHostedUnique(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.ExtendedCode == sqlite3.ErrConstraintUnique ||
		se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey)
}
