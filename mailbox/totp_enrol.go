// Enrolling an authenticator: an agency administrator issues a one-time enrolment code (`cafgate totp
// enrol MAIL`; issuing one also resets any authenticator enrolled before), the practitioner gives it
// with their directory password on the pickup page, is shown a new secret (QR code), and confirms it
// with its first code. Only the code's SHA-256 is stored; it works once and expires.

package mailbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// DefaultEnrolmentLifetime is how long an enrolment code stays good when the caller gives no lifetime.
const DefaultEnrolmentLifetime = 72 * time.Hour

// ErrEnrolmentRefused: the enrolment code is wrong, used, expired, or none was issued.
var ErrEnrolmentRefused = errors.New("mailbox: enrolment code refused")

var enrolEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// newEnrolmentCode returns 80 random bits as four groups of four Crockford base32 characters.
func newEnrolmentCode() (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	s := enrolEncoding.EncodeToString(b)
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16], nil
}

// normalizeEnrolmentCode reads a code as a person may type it: case, spaces and hyphens ignored, and
// the letters Crockford base32 leaves out read as the digits they look like.
func normalizeEnrolmentCode(code string) string {
	r := strings.NewReplacer("-", "", " ", "", "O", "0", "I", "1", "L", "1")
	return r.Replace(strings.ToUpper(strings.TrimSpace(code)))
}

func enrolmentHash(code string) []byte {
	h := sha256.Sum256([]byte("cafgate/totp-enrolment/v1\x00" + normalizeEnrolmentCode(code)))
	return h[:]
}

// IssueEnrolment opens an enrolment for mail and returns its one-time code, good for lifetime
// (DefaultEnrolmentLifetime when 0). Any authenticator mail had is reset at once (a lost or stolen
// phone), any earlier code stops working, and the pickup lock-out of mail is lifted. by names the
// administrator, for the record.
func (s *Store) IssueEnrolment(ctx context.Context, mail, by string, lifetime time.Duration) (string, error) {
	mail = strings.ToLower(strings.TrimSpace(mail))
	if !ValidAddress(mail) {
		return "", fmt.Errorf("%w: %q is not a mail address", ErrInvalid, mail)
	}
	if lifetime <= 0 {
		lifetime = DefaultEnrolmentLifetime
	}
	code, err := newEnrolmentCode()
	if err != nil {
		return "", err
	}
	err = s.pickupTx(ctx, func(tx *sql.Tx) error {
		now := s.opt.Now()
		_, err := tx.ExecContext(ctx, `INSERT INTO totp_factors (mail, generation, enrol_hash, enrol_expires, enrol_by, updated_at)
			VALUES (?1, 1, ?2, ?3, ?4, ?5)
			ON CONFLICT (mail) DO UPDATE SET generation = generation + 1, secret_nonce = NULL, secret = NULL,
				enrolled_at = NULL, pending_nonce = NULL, pending = NULL, enrol_hash = ?2, enrol_expires = ?3,
				enrol_by = ?4, updated_at = ?5`,
			mail, enrolmentHash(code), formatTime(now.Add(lifetime)), queueLine(by), formatTime(now))
		if err != nil {
			return err
		}
		if _, err = tx.ExecContext(ctx, `DELETE FROM pickup_lockouts WHERE mail = ?`, mail); err != nil {
			return err
		}
		_, err = endSessionsOfTx(ctx, tx, mail) // a reset authenticator (a lost phone) ends every session
		return err
	})
	if err != nil {
		return "", err
	}
	return code, nil
}

// StartEnrolment checks mail's enrolment code at now (the caller has checked the directory password)
// and returns a new TOTP key to show as a QR code. The key waits, sealed, until ConfirmEnrolment; the
// code stays good until then, so a practitioner who abandons this step can start again. issuer names
// the gateway in the authenticator app.
func (s *Store) StartEnrolment(ctx context.Context, mail, code, issuer string, now time.Time) (*otp.Key, error) {
	var gen int64
	var hash []byte
	var expires string
	err := s.pickupTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT generation, enrol_hash, enrol_expires FROM totp_factors
			WHERE mail = ? AND enrol_hash IS NOT NULL`, mail).Scan(&gen, &hash, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			enrolmentHash(code) // the same work as a wrong code
			return ErrEnrolmentRefused
		}
		if err != nil {
			return err
		}
		exp, err := time.Parse(time.RFC3339Nano, expires)
		if subtle.ConstantTimeCompare(enrolmentHash(code), hash) != 1 || err != nil || !now.Before(exp) {
			return ErrEnrolmentRefused
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: mail, SecretSize: 20,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, err
	}
	nonce, sealed, err := s.seal.sealWith(totpAAD(mail, gen, true), []byte(key.Secret()))
	if err != nil {
		return nil, err
	}
	err = s.pickupTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE totp_factors SET pending_nonce = ?, pending = ?, updated_at = ?
			WHERE mail = ? AND generation = ? AND enrol_hash IS NOT NULL`, nonce, sealed, formatTime(s.opt.Now()), mail, gen)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrEnrolmentRefused // reset or completed meanwhile
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return key, nil
}

// ConfirmEnrolment checks the first code of the secret StartEnrolment gave and, when it is right,
// makes that secret mail's authenticator and uses up the enrolment code. Errors: ErrEnrolmentRefused
// (no enrolment under way), ErrTOTPWrong, ErrTOTPReplayed.
func (s *Store) ConfirmEnrolment(ctx context.Context, mail, code string, now time.Time) error {
	var gen int64
	var nonce, sealed []byte
	return s.pickupTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT generation, pending_nonce, pending FROM totp_factors
			WHERE mail = ? AND pending IS NOT NULL AND enrol_hash IS NOT NULL`, mail).Scan(&gen, &nonce, &sealed)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrEnrolmentRefused
		}
		if err != nil {
			return err
		}
		secret, err := s.seal.openWith(totpAAD(mail, gen, true), nonce, sealed)
		if err != nil {
			return err
		}
		step, ok := matchTOTP(string(secret), code, now)
		if !ok {
			return ErrTOTPWrong
		}
		return s.setSecret(ctx, tx, mail, gen+1, secret, step, now)
	})
}

// setSecret makes secret mail's enrolled authenticator under generation gen, with lastStep as the
// last accepted step, and closes any enrolment.
func (s *Store) setSecret(ctx context.Context, tx *sql.Tx, mail string, gen int64, secret []byte, lastStep int64, now time.Time) error {
	nonce, sealed, err := s.seal.sealWith(totpAAD(mail, gen, false), secret)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO totp_factors (mail, generation, secret_nonce, secret, enrolled_at, last_step, updated_at)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5)
		ON CONFLICT (mail) DO UPDATE SET generation = ?2, secret_nonce = ?3, secret = ?4, enrolled_at = ?5,
			last_step = ?6, pending_nonce = NULL, pending = NULL, enrol_hash = NULL, enrol_expires = NULL, updated_at = ?5`,
		mail, gen, nonce, sealed, formatTime(now), lastStep)
	return err
}

// ImportTOTPSecret enrols a known base32 secret for mail directly, with no enrolment code: for the
// development setup (`cafgate dev` hands each sample account a secret) and migrations from another
// system. It replaces any authenticator mail had.
func (s *Store) ImportTOTPSecret(ctx context.Context, mail, secret string) error {
	mail = strings.ToLower(strings.TrimSpace(mail))
	secret = strings.ToUpper(strings.ReplaceAll(secret, " ", ""))
	if !ValidAddress(mail) {
		return fmt.Errorf("%w: %q is not a mail address", ErrInvalid, mail)
	}
	if b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(secret, "=")); err != nil || len(b) < 10 {
		return fmt.Errorf("%w: the TOTP secret must be base32 of at least 80 bits", ErrInvalid)
	}
	return s.pickupTx(ctx, func(tx *sql.Tx) error {
		var gen int64
		var nonce, sealed []byte
		err := tx.QueryRowContext(ctx, `SELECT generation, secret_nonce, secret FROM totp_factors WHERE mail = ?`, mail).Scan(&gen, &nonce, &sealed)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if sealed != nil {
			// The same secret again (`cafgate dev` imports at every start): keep it and its last
			// accepted step, so a code used before a restart is not accepted again after it.
			if old, err := s.seal.openWith(totpAAD(mail, gen, false), nonce, sealed); err == nil &&
				subtle.ConstantTimeCompare(old, []byte(secret)) == 1 {
				return nil
			}
		}
		return s.setSecret(ctx, tx, mail, gen+1, []byte(secret), 0, s.opt.Now())
	})
}

// TOTPStatus is what the store knows of one practitioner's second factor.
type TOTPStatus struct {
	Enrolled      bool
	EnrolledAt    time.Time
	EnrolmentOpen bool      // an enrolment code is outstanding
	CodeExpires   time.Time // when it stops working
	CodeIssuedBy  string
	Locked        bool // refused sign-ins have locked the pickup page for this address
}

// TOTPStatusOf reports mail's second factor.
func (s *Store) TOTPStatusOf(ctx context.Context, mail string) (*TOTPStatus, error) {
	var st TOTPStatus
	var enrolled, expires sql.NullString
	var by string
	err := s.rdb.QueryRowContext(ctx, `SELECT enrolled_at, enrol_expires, enrol_by FROM totp_factors WHERE mail = ?`,
		mail).Scan(&enrolled, &expires, &by)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, classify(err)
	}
	if enrolled.Valid {
		st.Enrolled = true
		st.EnrolledAt, _ = time.Parse(time.RFC3339Nano, enrolled.String)
	}
	if expires.Valid {
		st.EnrolmentOpen, st.CodeIssuedBy = true, by
		st.CodeExpires, _ = time.Parse(time.RFC3339Nano, expires.String)
	}
	if st.Locked, err = s.AccountLocked(ctx, mail); err != nil {
		return nil, err
	}
	return &st, nil
}

// PendingEnrolment returns the authenticator key StartEnrolment made for mail and that still awaits
// its first code, to show again (the enrolment page after a reload, or on another node). issuer names
// the gateway in the app. ErrEnrolmentRefused when no enrolment is under way (reset or completed).
func (s *Store) PendingEnrolment(ctx context.Context, mail, issuer string) (*otp.Key, error) {
	var gen int64
	var nonce, sealed []byte
	err := s.rdb.QueryRowContext(ctx, `SELECT generation, pending_nonce, pending FROM totp_factors
		WHERE mail = ? AND pending IS NOT NULL AND enrol_hash IS NOT NULL`, mail).Scan(&gen, &nonce, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrEnrolmentRefused
	}
	if err != nil {
		return nil, classify(err)
	}
	secret, err := s.seal.openWith(totpAAD(mail, gen, true), nonce, sealed)
	if err != nil {
		return nil, err
	}
	return totpKey(issuer, mail, string(secret))
}

// totpKey builds the key totp.Generate makes for these values (SHA-1, 6 digits, 30 s).
func totpKey(issuer, mail, secret string) (*otp.Key, error) {
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(secret, "="))
	if err != nil {
		return nil, fmt.Errorf("%w: pending TOTP secret of %s", ErrCorrupt, mail)
	}
	return totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: mail, Secret: b,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}
