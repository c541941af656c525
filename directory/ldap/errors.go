package ldap

import (
	"errors"
	"fmt"

	goldap "github.com/go-ldap/ldap/v3"

	"cafgate/directory"
)

// errTooMany marks a search that matched more than one entry (the server's size limit of 2 was hit).
var errTooMany = errors.New("more than one entry matches")

// unavailable wraps err as directory.ErrUnavailable with the directory's name and what was being done.
func (d *Directory) unavailable(op string, err error) error {
	d.health(err)
	return fmt.Errorf("%w: directory %s: %s: %v", directory.ErrUnavailable, d.o.Name, op, err)
}

// refused is a sign-in refusal with its reason for the log.
func (d *Directory) refused(reason string) error {
	return fmt.Errorf("%w: directory %s: %s", directory.ErrBadCredentials, d.o.Name, reason)
}

// isNetwork reports whether err left the connection unusable: anything but an LDAP result from the
// server (a broken or timed-out connection, a malformed answer, a TLS failure).
func isNetwork(err error) bool {
	var le *goldap.Error
	if !errors.As(err, &le) {
		return true
	}
	return le.ResultCode >= goldap.ErrorNetwork
}

// userRefusal reports whether the server's answer to a practitioner's bind refuses that practitioner
// (wrong password, locked, disabled, expired, entry gone) rather than saying the server cannot answer.
func userRefusal(err error) bool {
	var le *goldap.Error
	if !errors.As(err, &le) {
		return false
	}
	switch le.ResultCode {
	case goldap.LDAPResultInvalidCredentials, goldap.LDAPResultInappropriateAuthentication,
		goldap.LDAPResultInsufficientAccessRights, goldap.LDAPResultUnwillingToPerform,
		goldap.LDAPResultConstraintViolation, goldap.LDAPResultNoSuchObject,
		goldap.LDAPResultInvalidDNSyntax:
		return true
	}
	return false
}

// health logs when the directory goes from answering to not answering (err != nil) and back, once
// per change, so an outage is one warning and its end one line.
func (d *Directory) health(err error) {
	if err != nil {
		if !d.down.Swap(true) {
			d.log.Warn("directory unavailable; answering temporary failures until it recovers",
				"directory", d.o.Name, "err", err.Error())
		}
		return
	}
	if d.down.Swap(false) {
		d.log.Info("directory answering again", "directory", d.o.Name)
	}
}
