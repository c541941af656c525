package smtpd

import (
	"errors"

	"github.com/emersion/go-sasl"
)

// loginServer is the server side of the LOGIN mechanism (draft-murchison-sasl-login), which go-sasl
// only implements as a client: "Username:", then "Password:", then the check.
type loginServer struct {
	authenticate func(user, password string) error
	state        int
	user         string
}

var _ sasl.Server = (*loginServer)(nil)

const (
	loginStart = iota
	loginWantUser
	loginWantPassword
	loginDone
)

var errLoginSequence = errors.New("sasl login: response after the exchange ended")

// Next takes the client's responses in turn. A response to AUTH LOGIN itself (the initial response) is
// the user name.
func (a *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch a.state {
	case loginStart:
		if response == nil {
			a.state = loginWantUser
			return []byte("Username:"), false, nil
		}
		fallthrough
	case loginWantUser:
		a.user = string(response)
		a.state = loginWantPassword
		return []byte("Password:"), false, nil
	case loginWantPassword:
		a.state = loginDone
		return nil, true, a.authenticate(a.user, string(response))
	}
	return nil, true, errLoginSequence
}
