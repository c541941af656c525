package ldif

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestHashSSHA(t *testing.T) {
	h := HashSSHA("s3cret pässword")
	if !strings.HasPrefix(h, "{SSHA}") {
		t.Fatalf("hash %q lacks {SSHA}", h)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "{SSHA}"))
	if err != nil || len(raw) != 20+8 {
		t.Fatalf("hash %q: %d bytes, err %v; want SHA-1 + 8-byte salt", h, len(raw), err)
	}
	if h2 := HashSSHA("s3cret pässword"); h2 == h {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	if !VerifySSHA(h, "s3cret pässword") {
		t.Error("hash does not verify its own password")
	}
	for _, wrong := range []string{"", "s3cret password", "s3cret pässword ", "S3cret pässword"} {
		if VerifySSHA(h, wrong) {
			t.Errorf("hash verified %q", wrong)
		}
	}
}

// TestVerifySSHAAgainstSlappasswd checks values made by OpenLDAP's `slappasswd -h {SSHA}` (4-byte salts).
func TestVerifySSHAAgainstSlappasswd(t *testing.T) {
	cases := []struct{ hash, password string }{
		{"{SSHA}k5hVinS2PYFECcJiol2vgD4FOEsOWLQR", "correct horse battery staple"},
		{"{SSHA}zFim/VBs0oGWn0FKDMYkTNlgP04sA2lT", "pässwörd"},
		{"{ssha}zFim/VBs0oGWn0FKDMYkTNlgP04sA2lT", "pässwörd"}, // slapd matches the scheme case-insensitively
	}
	for _, c := range cases {
		if !VerifySSHA(c.hash, c.password) {
			t.Errorf("%s does not verify %q", c.hash, c.password)
		}
		if VerifySSHA(c.hash, c.password+"x") {
			t.Errorf("%s verifies a wrong password", c.hash)
		}
	}
}

func TestVerifySSHARefusesOtherSchemes(t *testing.T) {
	cases := map[string]error{
		"plain":                                  errUnsupportedScheme,
		"{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=":      errUnsupportedScheme, // unsalted SHA-1 of "password"
		"{CLEARTEXT}plain":                       errUnsupportedScheme,
		"{CRYPT}$6$salt$hash":                    errUnsupportedScheme,
		"":                                       errUnsupportedScheme,
		"{SSHA}":                                 errMalformedHash,
		"{SSHA}not base64!":                      errMalformedHash,
		"{SSHA}" + b64(make([]byte, 20)):         errMalformedHash, // no salt
		"{SSHA}" + b64([]byte("short")):          errMalformedHash,
		"{SSHA}k5hVinS2PYFECcJiol2vgD4FOEsOWLQR": errWrongPassword,
	}
	for stored, want := range cases {
		if got := checkSSHA(stored, "plain"); got != want {
			t.Errorf("checkSSHA(%q) = %v, want %v", stored, got, want)
		}
	}
	if got := checkSSHA(hashSSHA("", []byte("salt")), ""); got != errEmptyPassword {
		t.Errorf("empty password against its own hash: %v, want refusal", got)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
