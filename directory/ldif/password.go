package ldif

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strings"
)

// sshaPrefix is the userPassword scheme OpenLDAP's slapd verifies without modules.
const sshaPrefix = "{SSHA}"

// sshaSaltLen is the salt HashSSHA draws (slapd's own default).
const sshaSaltLen = 8

// Reasons a stored password does not accept a password; for the log only.
var (
	errNoPassword        = errors.New("the entry has no userPassword")
	errUnsupportedScheme = errors.New("userPassword is not in the {SSHA} scheme")
	errMalformedHash     = errors.New("userPassword {SSHA} value is malformed")
	errWrongPassword     = errors.New("wrong password")
	errEmptyPassword     = errors.New("empty password")
)

// HashSSHA returns password as a userPassword value in the {SSHA} scheme:
// "{SSHA}" + base64(SHA-1(password + salt) + salt), with an 8-byte random salt.
func HashSSHA(password string) string {
	salt := make([]byte, sshaSaltLen)
	rand.Read(salt) // never fails (crypto/rand since Go 1.24)
	return hashSSHA(password, salt)
}

func hashSSHA(password string, salt []byte) string {
	return sshaPrefix + base64.StdEncoding.EncodeToString(append(sshaDigest(password, salt), salt...))
}

func sshaDigest(password string, salt []byte) []byte {
	h := sha1.New()
	h.Write([]byte(password))
	h.Write(salt)
	return h.Sum(nil)
}

// VerifySSHA reports whether password matches stored, a userPassword value in the {SSHA} scheme. Any
// other scheme, a plain-text value and an empty password are refused.
func VerifySSHA(stored, password string) bool {
	return checkSSHA(stored, password) == nil
}

// checkSSHA is VerifySSHA with the reason for a refusal. The digest comparison is constant-time.
func checkSSHA(stored, password string) error {
	if len(stored) < len(sshaPrefix) || !strings.EqualFold(stored[:len(sshaPrefix)], sshaPrefix) {
		return errUnsupportedScheme
	}
	raw, err := base64.StdEncoding.DecodeString(stored[len(sshaPrefix):])
	if err != nil || len(raw) <= sha1.Size {
		return errMalformedHash
	}
	digest, salt := raw[:sha1.Size], raw[sha1.Size:]
	match := subtle.ConstantTimeCompare(sshaDigest(password, salt), digest) == 1
	if password == "" {
		return errEmptyPassword
	}
	if !match {
		return errWrongPassword
	}
	return nil
}

// randomPassword returns a password nobody knows, for the dummy hash that keeps the time of a refusal
// for an unknown user like that of a wrong password.
func randomPassword() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
