// The pickup page's second factor: TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of
// clock drift either way) with the secret encrypted at rest under the content key. pquerna/otp keeps
// no replay state, so the last accepted time step per practitioner is stored and advanced with a
// compare-and-set: a code is accepted once, even when two requests carry it at the same moment.

package mailbox

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// TOTP parameters (what every authenticator app assumes).
const (
	TOTPPeriod = 30 * time.Second
	TOTPDigits = 6
	totpSkew   = 1 // steps either side of the current one
)

// Errors of the second factor, tested with errors.Is.
var (
	// ErrTOTPRefused: the code is wrong, malformed, or was already used. ErrTOTPWrong and
	// ErrTOTPReplayed wrap it, for the log.
	ErrTOTPRefused  = errors.New("mailbox: one-time code refused")
	ErrTOTPWrong    = fmt.Errorf("%w: wrong code", ErrTOTPRefused)
	ErrTOTPReplayed = fmt.Errorf("%w: code already used", ErrTOTPRefused)
	// ErrTOTPNotEnrolled: the practitioner has no authenticator set up (or it was reset).
	ErrTOTPNotEnrolled = errors.New("mailbox: no authenticator enrolled")
)

// totpAADPrefix separates TOTP secrets from every other use of the content key.
const totpAADPrefix = "cafgate/mailbox/totp/v1\x00"

// totpAAD binds a sealed secret to its practitioner, its generation and whether it is the enrolled
// secret or one waiting for confirmation, so no sealed value can be moved to another row or role.
func totpAAD(mail string, generation int64, pending bool) []byte {
	role := "enrolled"
	if pending {
		role = "pending"
	}
	return []byte(totpAADPrefix + mail + "\x00" + strconv.FormatInt(generation, 10) + "\x00" + role)
}

func (s *sealer) sealWith(aad, plain []byte) (nonce, sealed []byte, err error) {
	g, err := s.aead()
	defer s.release(g)
	if err != nil {
		return nil, nil, err
	}
	nonce = make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	return nonce, g.Seal(nil, nonce, plain, aad), nil
}

func (s *sealer) openWith(aad, nonce, sealed []byte) ([]byte, error) {
	g, err := s.aead()
	defer s.release(g)
	if err != nil {
		return nil, err
	}
	if len(nonce) != g.NonceSize() {
		return nil, fmt.Errorf("%w: TOTP secret nonce length %d", ErrCorrupt, len(nonce))
	}
	plain, err := g.Open(nil, nonce, sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: TOTP secret does not authenticate", ErrCorrupt)
	}
	return plain, nil
}

// totpStep is the RFC 6238 time step of t.
func totpStep(t time.Time) int64 { return t.Unix() / int64(TOTPPeriod/time.Second) }

// matchTOTP returns the step within the allowed drift of now whose code is code, checking every
// candidate in constant time; ok is false when none matches.
func matchTOTP(secret, code string, now time.Time) (step int64, ok bool) {
	code = strings.TrimSpace(code)
	if len(code) != TOTPDigits || strings.Trim(code, "0123456789") != "" {
		return 0, false
	}
	opts := hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	cur := totpStep(now)
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		if cur+d < 0 {
			continue
		}
		good, err := hotp.ValidateCustom(code, uint64(cur+d), secret, opts)
		if err == nil && good && !ok {
			step, ok = cur+d, true
		}
	}
	return step, ok
}

// factor is a totp_factors row as the verification needs it.
type factor struct {
	generation    int64
	nonce, sealed []byte
	lastStep      int64
}

// VerifyTOTP checks mail's code at now and, when it is right, records its time step so it is never
// accepted again. Errors: ErrTOTPNotEnrolled, ErrTOTPWrong, ErrTOTPReplayed (both wrap
// ErrTOTPRefused), or a store error.
func (s *Store) VerifyTOTP(ctx context.Context, mail, code string, now time.Time) error {
	if s.wdb == nil {
		return fmt.Errorf("%w: store opened read-only", ErrUnavailable)
	}
	var f factor
	err := s.wdb.QueryRowContext(ctx, `SELECT generation, secret_nonce, secret, last_step FROM totp_factors
		WHERE mail = ? AND secret IS NOT NULL`, mail).Scan(&f.generation, &f.nonce, &f.sealed, &f.lastStep)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrTOTPNotEnrolled
	}
	if err != nil {
		return classify(err)
	}
	secret, err := s.seal.openWith(totpAAD(mail, f.generation, false), f.nonce, f.sealed)
	if err != nil {
		return err
	}
	step, ok := matchTOTP(string(secret), code, now)
	if !ok {
		return ErrTOTPWrong
	}
	// The compare-and-set: only a step later than the last accepted one, under the same secret.
	res, err := s.wdb.ExecContext(ctx, `UPDATE totp_factors SET last_step = ?, updated_at = ?
		WHERE mail = ? AND generation = ? AND last_step < ?`, step, formatTime(s.opt.Now()), mail, f.generation, step)
	if err != nil {
		return classify(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrTOTPReplayed
	}
	return nil
}
