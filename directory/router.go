package directory

import (
	"context"
	"fmt"
	"strings"
)

// Router sends each request to the directory that answers for the mail address's domain. A domain no
// directory answers for is ErrNotFound (look-up) or ErrBadCredentials (sign-in).
type Router struct {
	byDomain map[string]Directory
}

// NewRouter returns a Router; domains maps a lower-case mail domain to its directory.
func NewRouter(domains map[string]Directory) *Router {
	m := make(map[string]Directory, len(domains))
	for d, dir := range domains {
		m[strings.ToLower(d)] = dir
	}
	return &Router{byDomain: m}
}

func (r *Router) pick(mail string) (Directory, bool) {
	at := strings.LastIndexByte(mail, '@')
	if at < 0 {
		return nil, false
	}
	d, ok := r.byDomain[strings.ToLower(mail[at+1:])]
	return d, ok
}

// Authenticate signs in against the directory for mail's domain.
func (r *Router) Authenticate(ctx context.Context, mail, password string) (*Practitioner, error) {
	d, ok := r.pick(mail)
	if !ok {
		return nil, fmt.Errorf("%w: no directory answers for this domain", ErrBadCredentials)
	}
	return d.Authenticate(ctx, mail, password)
}

// Lookup finds mail in the directory for its domain.
func (r *Router) Lookup(ctx context.Context, mail string) (*Practitioner, error) {
	d, ok := r.pick(mail)
	if !ok {
		return nil, fmt.Errorf("%w: no directory answers for this domain", ErrNotFound)
	}
	return d.Lookup(ctx, mail)
}
