// Opening a link and signing in. The GET shows the form and changes nothing (mail scanners prefetch
// links); the POST checks, in order: the form token, the address limit, the link, the account lock,
// the directory password, the TOTP code (accepted once), and that the practitioner is the link's
// recipient. A wrong password, a wrong code, a replayed code and an unknown user get the same answer;
// the reason goes to the log and the ledger only.

package pickup

import (
	"errors"
	"net/http"
	"strconv"

	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
	"cafgate/mailbox"
)

// Reasons of refused sign-ins, for the log and the ledger (never shown).
const (
	reasonBadCredentials = "bad-credentials"
	reasonBadCode        = "bad-code"
	reasonReplayedCode   = "replayed-code"
	reasonNotEnrolled    = "not-enrolled"
	reasonNotRecipient   = "not-recipient"
	reasonAccountLocked  = "account-locked"
	reasonBadEnrolCode   = "bad-enrolment-code"
)

// linkPage shows the sign-in form of a live link, or why the link can no longer be used.
func (h *Handler) linkPage(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if _, ok := h.liveLink(w, r, token); ok {
		h.signInForm(w, r, http.StatusOK, token, "", "")
	}
}

// liveLink finds the link of token and checks it may be signed in to; otherwise it shows why and
// returns false.
func (h *Handler) liveLink(w http.ResponseWriter, r *http.Request, token string) (*mailbox.Link, bool) {
	l, err := h.opt.Store.OpenLink(r.Context(), token)
	if errors.Is(err, mailbox.ErrLinkNotFound) {
		h.message(w, r, http.StatusNotFound, "gone.title", "gone.notfound", "")
		return nil, false
	}
	if err != nil {
		h.internal(w, r, "opening a link", err)
		return nil, false
	}
	if err := l.Usable(h.opt.Now()); err != nil {
		h.gone(w, r, err)
		return nil, false
	}
	if l.Failures >= h.opt.LinkFailures {
		h.message(w, r, http.StatusForbidden, "locked.title", "locked.link", "")
		return nil, false
	}
	return l, true
}

// gone shows why a link cannot be used (an error of mailbox.Link.Usable or RecordPickup).
func (h *Handler) gone(w http.ResponseWriter, r *http.Request, err error) {
	msg := "gone.notfound"
	switch {
	case errors.Is(err, mailbox.ErrLinkExpired):
		msg = "gone.expired"
	case errors.Is(err, mailbox.ErrLinkRevoked):
		msg = "gone.revoked"
	case errors.Is(err, mailbox.ErrLinkUsedUp):
		msg = "gone.usedup"
	case errors.Is(err, ErrNotAllowed):
		msg = "gone.withdrawn"
	}
	h.message(w, r, http.StatusGone, "gone.title", msg, "")
}

func (h *Handler) signInForm(w http.ResponseWriter, r *http.Request, status int, token, errKey, mail string) {
	d := h.page("signin.title")
	d.Error, d.Mail = errKey, mail
	d.CSRF = formToken(w, r)
	d.Action = Prefix + "l/" + token
	d.EnrolURL = Prefix + "l/" + token + "/enrol"
	d.Intro = "signin.intro"
	h.render(w, status, pageSignIn, d)
}

// ipBlocked answers 429 when the client's address has too many refused attempts.
func (h *Handler) ipBlocked(w http.ResponseWriter, r *http.Request) bool {
	ip := clientIP(r)
	if h.ips.Count(ip) < h.opt.IPFailures {
		return false
	}
	secs := int(h.ips.RetryAfter(ip, h.opt.IPFailures).Seconds()) + 1
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	h.log.Info("pickup: attempt refused by the address limit", "remote", ip)
	h.message(w, r, http.StatusTooManyRequests, "locked.title", "locked.ip", "")
	return true
}

// signIn checks both factors and opens a session for the link's recipient.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	mail := intake.NormalizeMail(r.PostFormValue("mail"))
	if !formTokenOK(r) {
		h.signInForm(w, r, http.StatusForbidden, token, "session.form", mail)
		return
	}
	if h.ipBlocked(w, r) {
		return
	}
	l, ok := h.liveLink(w, r, token)
	if !ok {
		h.ips.Add(clientIP(r))
		return
	}
	a := mailbox.PickupSignIn{Link: l.ID, MessageID: l.MessageID, User: mail, Remote: clientIP(r),
		AccountLimit: h.opt.AccountFailures}
	if h.accountLocked(w, r, a) {
		return
	}
	ctx := r.Context()
	p, err := h.opt.Auth.Authenticate(ctx, mail, r.PostFormValue("password"),
		intake.Client{RemoteAddr: r.RemoteAddr, Via: "pickup", TLS: true})
	if err != nil {
		h.authFailed(w, r, a, err, func() { h.signInForm(w, r, http.StatusUnauthorized, token, "signin.failed", mail) })
		return
	}
	a.User = p.Mail
	if reason, err := h.checkCode(r, p.Mail, r.PostFormValue("code")); err != nil || reason != "" {
		if err != nil {
			h.internal(w, r, "checking a one-time code", err)
			return
		}
		h.refused(w, r, a, reason, func() { h.signInForm(w, r, http.StatusUnauthorized, token, "signin.failed", mail) })
		return
	}
	if p.Mail != l.Recipient {
		h.refused(w, r, a, reasonNotRecipient, func() {
			h.message(w, r, http.StatusForbidden, "signin.title", "signin.other", "")
		})
		return
	}
	h.signedIn(w, r, a, l)
}

// checkCode verifies a TOTP code: reason is "" when it was accepted, else why it was refused.
func (h *Handler) checkCode(r *http.Request, mail, code string) (reason string, err error) {
	err = h.opt.Store.VerifyTOTP(r.Context(), mail, code, h.opt.Now())
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, mailbox.ErrTOTPNotEnrolled):
		return reasonNotEnrolled, nil
	case errors.Is(err, mailbox.ErrTOTPReplayed):
		return reasonReplayedCode, nil
	case errors.Is(err, mailbox.ErrTOTPRefused):
		return reasonBadCode, nil
	}
	return "", err
}

// accountLocked shows the lock-out page (and records the attempt) when a's address is locked.
func (h *Handler) accountLocked(w http.ResponseWriter, r *http.Request, a mailbox.PickupSignIn) bool {
	if a.User == "" {
		return false
	}
	locked, err := h.opt.Store.AccountLocked(r.Context(), a.User)
	if err != nil {
		h.internal(w, r, "reading the lock-out", err)
		return true
	}
	if !locked {
		return false
	}
	a.AccountLimit = 0 // already locked: nothing more to count
	h.refused(w, r, a, reasonAccountLocked, nil)
	return true
}

// authFailed handles a refused directory sign-in: the directory being down is the one failure told
// apart, since the practitioner can do nothing but wait.
func (h *Handler) authFailed(w http.ResponseWriter, r *http.Request, a mailbox.PickupSignIn, err error, again func()) {
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Kind == fault.AuthDirectoryUnavailable {
		h.log.Warn("pickup: directory unavailable at sign-in", "id", fe.ID, "err", err)
		h.message(w, r, http.StatusServiceUnavailable, "error.title", "error.directory", fe.ID)
		return
	}
	h.refused(w, r, a, reasonBadCredentials, again)
}

// refused records a refused attempt (ledger, counters, address limit, log) and answers: the lock-out
// page when this attempt locked the account or the link, else again().
func (h *Handler) refused(w http.ResponseWriter, r *http.Request, a mailbox.PickupSignIn, reason string, again func()) {
	a.Reason = reason
	h.ips.Add(a.Remote)
	out, err := h.opt.Store.RecordPickupSignIn(r.Context(), a)
	if err != nil {
		h.internal(w, r, "recording a refused sign-in", err)
		return
	}
	id := fault.NewID()
	h.log.Info("pickup: sign-in refused", "id", id, "reason", reason, "link", a.Link, "via", a.Via,
		"remote", a.Remote, "link_failures", out.LinkFailures, "account_locked", out.AccountLocked)
	switch {
	case out.AccountLocked || reason == reasonAccountLocked:
		h.dropSession(r)
		h.message(w, r, http.StatusForbidden, "locked.title", "locked.account", "")
	case a.Link != "" && out.LinkFailures >= h.opt.LinkFailures:
		h.message(w, r, http.StatusForbidden, "locked.title", "locked.link", "")
	default:
		again()
	}
}

// signedIn records the sign-in and starts the package session.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request, a mailbox.PickupSignIn, l *mailbox.Link) {
	a.OK = true
	if _, err := h.opt.Store.RecordPickupSignIn(r.Context(), a); err != nil {
		h.internal(w, r, "recording a sign-in", err)
		return
	}
	if err := h.startSession(w, r, mailbox.NewSession{Kind: kindPackage, Mail: a.User, LinkID: l.ID}); err != nil {
		h.internal(w, r, "opening a session", err)
		return
	}
	h.log.Info("pickup: signed in", "link", l.ID, "remote", a.Remote)
	http.Redirect(w, r, Prefix+"package", http.StatusSeeOther)
}
