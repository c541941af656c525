package mailbox

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrol runs the whole enrolment for mail at now and returns the secret.
func enrol(t *testing.T, s *Store, mail string, now time.Time) string {
	t.Helper()
	ctx := context.Background()
	ec, err := s.IssueEnrolment(ctx, mail, "admin:test", 0)
	if err != nil {
		t.Fatal(err)
	}
	key, err := s.StartEnrolment(ctx, mail, strings.ToLower(ec), "cafgate test", now)
	if err != nil {
		t.Fatalf("StartEnrolment: %v", err)
	}
	if err := s.ConfirmEnrolment(ctx, mail, code(t, key.Secret(), now), now); err != nil {
		t.Fatalf("ConfirmEnrolment: %v", err)
	}
	return key.Secret()
}

func TestEnrolmentCodeIsOneTimeAndExpires(t *testing.T) {
	s, clk := pickupStore(t)
	ctx := context.Background()
	now := clk.Now()
	if _, err := s.StartEnrolment(ctx, "bob@council.example", "AAAA-BBBB-CCCC-DDDD", "x", now); !errors.Is(err, ErrEnrolmentRefused) {
		t.Fatalf("enrolment with no code issued: %v", err)
	}
	ec, err := s.IssueEnrolment(ctx, "bob@council.example", "admin:test", time.Hour)
	if err != nil || len(ec) != 19 {
		t.Fatalf("IssueEnrolment = %q, %v", ec, err)
	}
	wrong := []byte(ec)
	wrong[0] = map[bool]byte{true: '1', false: '0'}[wrong[0] == '0']
	if _, err := s.StartEnrolment(ctx, "bob@council.example", string(wrong), "x", now); !errors.Is(err, ErrEnrolmentRefused) {
		t.Fatalf("wrong code: %v", err)
	}
	if _, err := s.StartEnrolment(ctx, "carol@health.example", ec, "x", now); !errors.Is(err, ErrEnrolmentRefused) {
		t.Fatalf("another practitioner's code: %v", err)
	}
	if _, err := s.StartEnrolment(ctx, "bob@council.example", ec, "x", now.Add(time.Hour)); !errors.Is(err, ErrEnrolmentRefused) {
		t.Fatalf("expired code: %v", err)
	}
	key, err := s.StartEnrolment(ctx, "bob@council.example", " "+strings.ReplaceAll(ec, "-", " ")+" ", "x", now)
	if err != nil {
		t.Fatalf("code typed with spaces: %v", err)
	}
	if err := s.ConfirmEnrolment(ctx, "bob@council.example", "000000", now); !errors.Is(err, ErrTOTPRefused) {
		t.Fatalf("wrong first code: %v", err)
	}
	if err := s.ConfirmEnrolment(ctx, "bob@council.example", code(t, key.Secret(), now), now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartEnrolment(ctx, "bob@council.example", ec, "x", now); !errors.Is(err, ErrEnrolmentRefused) {
		t.Fatalf("code used twice: %v", err)
	}
	// The confirming code cannot be used again to sign in.
	if err := s.VerifyTOTP(ctx, "bob@council.example", code(t, key.Secret(), now), now); !errors.Is(err, ErrTOTPReplayed) {
		t.Fatalf("confirmation code reused: %v", err)
	}
	st, err := s.TOTPStatusOf(ctx, "bob@council.example")
	if err != nil || !st.Enrolled || st.EnrolmentOpen {
		t.Fatalf("status %+v %v", st, err)
	}
}

func TestVerifyTOTPAcceptsEachStepOnceWithinOneStepOfDrift(t *testing.T) {
	s, clk := pickupStore(t)
	ctx := context.Background()
	t0 := clk.Now()
	secret := enrol(t, s, "bob@council.example", t0)
	mail := "bob@council.example"
	if err := s.VerifyTOTP(ctx, mail, code(t, secret, t0.Add(30*time.Second)), t0.Add(30*time.Second)); err != nil {
		t.Fatalf("next step: %v", err)
	}
	if err := s.VerifyTOTP(ctx, mail, code(t, secret, t0.Add(30*time.Second)), t0.Add(35*time.Second)); !errors.Is(err, ErrTOTPReplayed) {
		t.Fatalf("replay: %v", err)
	}
	// An earlier step within the drift is refused once a later one was accepted.
	if err := s.VerifyTOTP(ctx, mail, code(t, secret, t0), t0.Add(40*time.Second)); !errors.Is(err, ErrTOTPRefused) {
		t.Fatalf("older step: %v", err)
	}
	at := t0.Add(5 * time.Minute)
	if err := s.VerifyTOTP(ctx, mail, code(t, secret, at.Add(30*time.Second)), at); err != nil {
		t.Fatalf("one step ahead: %v", err)
	}
	at = at.Add(5 * time.Minute)
	if err := s.VerifyTOTP(ctx, mail, code(t, secret, at.Add(-30*time.Second)), at); err != nil {
		t.Fatalf("one step behind: %v", err)
	}
	at = at.Add(5 * time.Minute)
	for _, c := range []string{code(t, secret, at.Add(61*time.Second)), code(t, secret, at.Add(-61*time.Second)), "12345", "abcdef", ""} {
		if err := s.VerifyTOTP(ctx, mail, c, at); !errors.Is(err, ErrTOTPWrong) {
			t.Errorf("code %q: %v, want ErrTOTPWrong", c, err)
		}
	}
	if err := s.VerifyTOTP(ctx, "carol@health.example", code(t, secret, at), at); !errors.Is(err, ErrTOTPNotEnrolled) {
		t.Fatalf("not enrolled: %v", err)
	}
}

func TestVerifyTOTPParallelOneWins(t *testing.T) {
	s, clk := pickupStore(t)
	ctx := context.Background()
	secret := enrol(t, s, "bob@council.example", clk.Now())
	at := clk.Now().Add(2 * time.Minute)
	c := code(t, secret, at)
	var wins, replays atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			switch err := s.VerifyTOTP(ctx, "bob@council.example", c, at); {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, ErrTOTPReplayed):
				replays.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || replays.Load() != 15 {
		t.Fatalf("%d accepted, %d refused as replays; want 1 and 15", wins.Load(), replays.Load())
	}
}

func TestTOTPSecretIsSealedAndResetByANewEnrolment(t *testing.T) {
	s, clk := pickupStore(t)
	ctx := context.Background()
	secret := enrol(t, s, "bob@council.example", clk.Now())
	db := rawDB(t, s.opt.Path)
	if n := count(t, db, `SELECT count(*) FROM totp_factors WHERE instr(secret, ?) > 0 OR instr(CAST(secret AS TEXT), ?) > 0`,
		[]byte(secret), secret); n != 0 {
		t.Fatal("TOTP secret stored in the clear")
	}
	// Moving the sealed secret to another practitioner does not authenticate.
	if _, err := s.IssueEnrolment(ctx, "carol@health.example", "admin:test", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE totp_factors SET (secret_nonce, secret, generation) =
		(SELECT secret_nonce, secret, generation FROM totp_factors WHERE mail = 'bob@council.example') WHERE mail = 'carol@health.example'`); err != nil {
		t.Fatal(err)
	}
	at := clk.Now().Add(time.Minute)
	if err := s.VerifyTOTP(ctx, "carol@health.example", code(t, secret, at), at); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("moved secret: %v", err)
	}
	if _, err := s.IssueEnrolment(ctx, "bob@council.example", "admin:test", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyTOTP(ctx, "bob@council.example", code(t, secret, at), at); !errors.Is(err, ErrTOTPNotEnrolled) {
		t.Fatalf("after reset: %v", err)
	}
}

func TestImportTOTPSecret(t *testing.T) {
	s, clk := pickupStore(t)
	ctx := context.Background()
	key, _ := totp.Generate(totp.GenerateOpts{Issuer: "dev", AccountName: "bob@council.example"})
	if err := s.ImportTOTPSecret(ctx, "bob@council.example", "not base32!"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad secret: %v", err)
	}
	if err := s.ImportTOTPSecret(ctx, "Bob@council.example", key.Secret()); err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	if err := s.VerifyTOTP(ctx, "bob@council.example", code(t, key.Secret(), now), now); err != nil {
		t.Fatal(err)
	}
	// Importing the same secret again (every start of `cafgate dev`) keeps the last accepted step:
	// the code just used is still refused.
	if err := s.ImportTOTPSecret(ctx, "bob@council.example", key.Secret()); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyTOTP(ctx, "bob@council.example", code(t, key.Secret(), now), now); !errors.Is(err, ErrTOTPReplayed) {
		t.Fatalf("a code replayed after re-importing the same secret: %v", err)
	}
	// A different secret replaces it.
	other, _ := totp.Generate(totp.GenerateOpts{Issuer: "dev", AccountName: "bob@council.example"})
	if err := s.ImportTOTPSecret(ctx, "bob@council.example", other.Secret()); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyTOTP(ctx, "bob@council.example", code(t, other.Secret(), now), now); err != nil {
		t.Fatalf("the new secret: %v", err)
	}
}
