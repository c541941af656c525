// The child identifier in the ledger: only ever a keyed hash, so the ledger can show that two events
// concern the same child without naming the child to anyone who lacks the ledger secret.

package ledger

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
)

// childLabel separates this use of the secret from any other.
const childLabel = "cafgate/ledger/child-id/v1\x00"

// ChildHash returns the keyed hash of a child identifier (an NHS number, a unique pupil number, a
// case-system ID) under the ledger secret: HMAC-SHA-256, lower-case hex. The identifier is normalized
// first (spaces and hyphens dropped, letters upper-cased) so "943 476 5919" and "9434765919" agree.
// It returns "" for an identifier that is empty after normalizing.
func ChildHash(secret []byte, childID string) string {
	id := NormalizeChildID(childID)
	if id == "" {
		return ""
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(childLabel))
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

// NormalizeChildID drops spaces and hyphens and upper-cases letters.
func NormalizeChildID(id string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || r == '-' {
			return -1
		}
		return unicode.ToUpper(r)
	}, id)
}
