package intake

import (
	"context"
	"errors"

	"cafgate/directory"
	"cafgate/gateway/fault"
	"cafgate/mailbox/ledger"
)

// Events records ledger events that change no other state (sign-ins).
type Events interface {
	RecordEvent(ctx context.Context, typ, messageID string, data any) error
}

// signInReason is the ledger's reason code for a refused sign-in; the client sees one face for all.
func signInReason(err error) string {
	switch {
	case errors.Is(err, directory.ErrUnavailable):
		return "directory-unavailable"
	case errors.Is(err, directory.ErrDisabled):
		return "disabled"
	case errors.Is(err, directory.ErrVettingLapsed):
		return "vetting-lapsed"
	}
	return "bad-credentials"
}

// recordSignIn writes the sign-in or its refusal to the ledger. It is best effort: a sign-in alone
// opens no record (everything sent after it is recorded with the sender in its own "accepted" event,
// in the same transaction as the content), so a store that cannot be written just now fails the
// submission at its end of data (451 4.3.0), not the sign-in; the failure to record is logged.
func (in *Intake) recordSignIn(ctx context.Context, mail string, c Client, cause error) *fault.Error {
	if in.Events == nil {
		return nil
	}
	d := ledger.SignInData{User: mail, Via: c.Via, Remote: c.RemoteAddr}
	typ := ledger.SignIn
	if cause != nil {
		typ, d.Reason = ledger.SignInFailed, signInReason(cause)
	}
	err := in.Events.RecordEvent(ctx, typ, "", d)
	if err == nil {
		return nil
	}
	in.Log.Warn("recording a sign-in in the ledger", "type", typ, "via", c.Via, "remote", c.RemoteAddr, "err", err)
	return nil
}
