// The child identifier is never stored. Episodes keep HMAC-SHA256 of it under a key held outside the
// database, so the store can answer "does this child have an open episode?" without holding the
// identifier, and a stolen database does not give it away (the identifiers are guessable, which is
// why the hash is keyed).

package mailbox

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode"

	"cafgate/policy"
)

// ChildKey is the 32-byte key child identifiers are hashed under. The zero value is refused.
type ChildKey struct {
	k   [32]byte
	set bool
}

// NewChildKey takes a 32-byte key (from its own key file, for example).
func NewChildKey(b []byte) (ChildKey, error) {
	var k ChildKey
	if len(b) != len(k.k) {
		return k, fmt.Errorf("mailbox: child key must be %d bytes, got %d", len(k.k), len(b))
	}
	copy(k.k[:], b)
	k.set = true
	return k, nil
}

// DeriveChildKey derives the child key from the content key (HMAC-SHA256 with a fixed label), so a
// gateway needs no second key file. Both keys then live and die together: back up the content key.
func DeriveChildKey(contentKey []byte) (ChildKey, error) {
	if len(contentKey) != keySize {
		return ChildKey{}, fmt.Errorf("mailbox: content key must be %d bytes, got %d", keySize, len(contentKey))
	}
	m := hmac.New(sha256.New, contentKey)
	m.Write([]byte("cafgate/mailbox/child-identifier-key/v1"))
	return NewChildKey(m.Sum(nil))
}

// maxChildID is the longest child identifier accepted, after normalising.
const maxChildID = 64

// NormaliseChildID removes spaces and hyphens and upper-cases letters, so "943 476 5919" and
// "9434765919" are the same child. It refuses an empty or over-long identifier or one with control
// characters. Errors never quote the identifier.
func NormaliseChildID(id string) (string, error) {
	var b strings.Builder
	for _, r := range id {
		switch {
		case r == ' ' || r == '-' || r == '\t':
		case unicode.IsControl(r):
			return "", fmt.Errorf("%w: the child identifier holds a control character", policy.ErrInvalid)
		default:
			b.WriteRune(unicode.ToUpper(r))
		}
	}
	if b.Len() == 0 || b.Len() > maxChildID {
		return "", fmt.Errorf("%w: the child identifier must have 1 to %d characters", policy.ErrInvalid, maxChildID)
	}
	return b.String(), nil
}

// hash returns the hex HMAC-SHA256 of the normalised identifier.
func (k ChildKey) hash(id string) (string, error) {
	if !k.set {
		return "", fmt.Errorf("mailbox: no child key given")
	}
	norm, err := NormaliseChildID(id)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, k.k[:])
	m.Write([]byte("cafgate/child/v1\x00" + norm))
	return hex.EncodeToString(m.Sum(nil)), nil
}
