// The S/MIME capabilities remembered per practitioner: the content-encryption algorithms their mail
// client announced (SMIMECapabilities signed attribute) in the last verified signed mail they sent, so
// that copies to them are sealed with an algorithm their client reads. Kept in the settings table
// (one row per practitioner, name "smime_capabilities:" + lower-case mail) rather than a table of its
// own; a row holds no package content.

package mailbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"cafgate/mailbox/ledger"
)

const capabilitiesPrefix = "smime_capabilities:"

// Capabilities is what a practitioner's client announced.
type Capabilities struct {
	Ciphers []string  `json:"ciphers"`        // algorithm names (cms.Cipher.String), client's order of preference
	OAEP    bool      `json:"oaep,omitempty"` // RSAES-OAEP key transport announced
	Signer  string    `json:"signer"`         // SHA-256 of the certificate that signed the mail, lower-case hex
	At      time.Time `json:"at"`             // when the mail was received
}

// RememberCapabilities records the capabilities of verified signed mail from mail, replacing what
// was known. Nothing is written when they are the same as those known (signer and time aside).
func (s *Store) RememberCapabilities(ctx context.Context, mail string, c Capabilities) error {
	if s.wdb == nil {
		return errors.New("mailbox: the store is read-only")
	}
	mail = strings.ToLower(strings.TrimSpace(mail))
	if c.Ciphers == nil {
		c.Ciphers = []string{}
	}
	if old, ok, err := s.KnownCapabilities(ctx, mail); err == nil && ok && slices.Equal(old.Ciphers, c.Ciphers) && old.OAEP == c.OAEP {
		return nil
	}
	c.At = c.At.UTC()
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = s.wdb.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES (?, ?)
		ON CONFLICT(name) DO UPDATE SET value = excluded.value`, capabilitiesPrefix+mail, string(b))
	return classify(err)
}

// KnownCapabilities returns the capabilities remembered for mail; ok is false when none are.
func (s *Store) KnownCapabilities(ctx context.Context, mail string) (c Capabilities, ok bool, err error) {
	var v string
	err = s.rdb.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`,
		capabilitiesPrefix+strings.ToLower(strings.TrimSpace(mail))).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return Capabilities{}, false, nil
	}
	if err != nil {
		return Capabilities{}, false, classify(err)
	}
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		return Capabilities{}, false, err
	}
	return c, true, nil
}

// SealedData is the data of "encrypted" for a sealed copy: ledger.EncryptedData and how the copy was
// encrypted.
type SealedData struct {
	ledger.EncryptedData
	Cipher string   `json:"cipher"`           // content encryption: AES-256-GCM or AES-256-CBC
	Choice string   `json:"choice"`           // why: default, signed-mail, certificate, configured
	Escrow []string `json:"escrow,omitempty"` // SHA-256 of each escrow certificate the copy was also encrypted to
}

// SealedEvent is EncryptedEvent's data with the cipher, why it was chosen, and the escrow
// certificates included.
func SealedEvent(d ledger.EncryptedData, cipher, choice string, escrow []string) SealedData {
	return SealedData{EncryptedData: d, Cipher: cipher, Choice: choice, Escrow: escrow}
}
