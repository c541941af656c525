// Who is asking: the client (an agency system, by API key or client certificate) and the practitioner
// of that agency it acts for (CAF-On-Behalf-Of). A 401 or 403 never says whether the other thing
// exists: every credential failure is one answer, and so is every practitioner the client may not act
// for, whatever the reason.

package api

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"cafgate/directory"
	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
	"cafgate/mailbox"
)

// OnBehalfOfHeader names the practitioner a client acts for.
const OnBehalfOfHeader = "CAF-On-Behalf-Of"

// admit authenticates the client and the practitioner it acts for, within the limits.
func (h *Handler) admit(rq *request) *Problem {
	ip := ipKey(rq.r.RemoteAddr)
	l := h.opt.Limits
	if h.failures.Count(ip) >= l.AuthFailuresPerIP {
		p := faultProblem(fault.RateLimited, "Too many failed authentications from your address; please wait and try again later.", "", nil)
		p.retryAfter = h.failures.RetryAfter(ip, l.AuthFailuresPerIP)
		return p
	}
	c, p := h.authenticate(rq)
	if p != nil {
		if p.Status == 401 {
			h.failures.Add(ip)
		}
		return p
	}
	rq.client = c
	if ok, wait := h.rate.take(c.ID); !ok {
		p := faultProblem(fault.RateLimited, "This client has made too many requests; please slow down and try again later.", "", nil)
		p.retryAfter = wait
		return p
	}
	actor, p := h.actingFor(rq, c)
	if p != nil {
		return p
	}
	rq.actor = actor
	return nil
}

// authenticate finds the client by its API key (Authorization: Bearer) or, without one, by its client
// certificate's fingerprint.
func (h *Handler) authenticate(rq *request) (*mailbox.APIClient, *Problem) {
	r := rq.r
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, key, _ := strings.Cut(auth, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return nil, badCredentials(errors.New("the Authorization header is not a Bearer key")) // never quote it: it may hold a secret
		}
		c, err := h.opt.Store.APIClientByKey(rq.ctx, strings.TrimSpace(key))
		return c, credentialFault(err)
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		cert := r.TLS.PeerCertificates[0]
		if now := h.opt.Now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
			return nil, badCredentials(errors.New("client certificate outside its validity period"))
		}
		c, err := h.opt.Store.APIClientByCert(rq.ctx, mailbox.CertFingerprint(cert.Raw))
		return c, credentialFault(err)
	}
	return nil, faultProblem(fault.AuthRequired, "Present the client's API key (Authorization: Bearer) or its client certificate.", "", nil)
}

func badCredentials(cause error) *Problem {
	return faultProblem(fault.BadCredentials, "The client's credentials were not accepted.", "", cause)
}

// credentialFault maps a store error of a credential look-up: unavailable is a 503, anything else is
// the one 401.
func credentialFault(err error) *Problem {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mailbox.ErrUnavailable), errors.Is(err, mailbox.ErrFull):
		return storeProblem(err)
	}
	return badCredentials(err)
}

// actingFor checks the practitioner named by CAF-On-Behalf-Of like an SMTP sender: known to the
// directory, of the client's agency, in good standing.
func (h *Handler) actingFor(rq *request, c *mailbox.APIClient) (*directory.Practitioner, *Problem) {
	raw := rq.r.Header.Get(OnBehalfOfHeader)
	mail := intake.NormalizeMail(raw)
	if mail == "" {
		return nil, faultProblem(fault.BadCommand, "Name the practitioner the client acts for in the "+OnBehalfOfHeader+" header (their mail address).",
			"header "+OnBehalfOfHeader, nil)
	}
	p, err := h.opt.Dir.Lookup(rq.ctx, mail)
	switch {
	case errors.Is(err, directory.ErrUnavailable):
		return nil, faultProblem(fault.DirectoryUnavailable, "", "", err)
	case err != nil:
		return nil, notForYou(fmt.Errorf("acting for %s: %w", mail, err))
	case !sameAgency(p.Agency, c.Agency):
		return nil, notForYou(fmt.Errorf("acting for %s of agency %q; the client is of %q", mail, p.Agency, c.Agency))
	}
	if err := p.Standing(h.opt.Now()); err != nil {
		// The practitioner is of the client's own agency, so saying why tells the client nothing new.
		return nil, faultProblem(fault.NotPermitted, standingSentence(err), "header "+OnBehalfOfHeader, err)
	}
	return p, nil
}

// notForYou is the one answer for every practitioner a client may not act for.
func notForYou(cause error) *Problem {
	return faultProblem(fault.NotPermitted, "This client may not act on behalf of that practitioner.", "header "+OnBehalfOfHeader, cause)
}

func standingSentence(err error) string {
	switch {
	case errors.Is(err, directory.ErrDisabled):
		return "The practitioner acted for cannot use the gateway: their directory account is disabled."
	case errors.Is(err, directory.ErrVettingLapsed):
		return "The practitioner acted for cannot use the gateway: their vetting checks have lapsed and must be renewed by the agency."
	}
	return "The practitioner acted for may not use the gateway."
}

// sameAgency compares agency names as consent does: without regard to case or surrounding spaces.
func sameAgency(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b)) && strings.TrimSpace(a) != ""
}

// storeProblem maps a store error: full is a 507, unavailable (or out of time) a 503, both asking for
// a retry; anything else is an internal error whose text stays in the log.
func storeProblem(err error) *Problem {
	switch {
	case errors.Is(err, mailbox.ErrFull):
		return faultProblem(fault.StoreFull, "", "", err)
	case errors.Is(err, mailbox.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return faultProblem(fault.StoreUnavailable, "", "", err)
	}
	return faultProblem(fault.Internal, "", "", err)
}

// clip keeps a value from a request short in logs and answers.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
