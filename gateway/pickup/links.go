// The links page: a practitioner who sent a package, or who leads the episode it belongs to, signs in
// (directory password and a TOTP code, as for a package; each code accepted once), sees the one-time
// links of those packages that can still be used, and withdraws one, saying why. Withdrawing is a
// "revoked" ledger event naming the practitioner and the reason, and ends the recipient's sessions
// through that link at once. Who may withdraw is checked again, in the same transaction as the
// revocation, against the package's sender and the episode's lead professional at that moment.

package pickup

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"cafgate/gateway/intake"
	"cafgate/mailbox"
)

// viaLinks marks sign-ins to the links page in the ledger and the log.
const viaLinks = "pickup-links"

// maxListedLinks bounds the links page.
const maxListedLinks = 200

// linkView is one link as the links page shows it (never its token).
type linkView struct {
	ID         string
	Recipient  string
	Episode    string
	Sent       string
	SentISO    string
	Expires    string
	ExpiresISO string
	Downloads  string
	Opened     string
	Action     string // the revoke form's target
}

// linksPage shows the links the signed-in practitioner may withdraw, or the sign-in form.
func (h *Handler) linksPage(w http.ResponseWriter, r *http.Request) {
	s, err := h.session(r, kindLinks)
	if err != nil {
		h.internal(w, r, "reading a session", err)
		return
	}
	if s == nil {
		h.linksForm(w, r, http.StatusOK, "", "")
		return
	}
	info := ""
	if r.URL.Query().Get("done") == "revoked" {
		info = "links.revoked"
	}
	h.linksList(w, r, http.StatusOK, s, "", info)
}

func (h *Handler) linksForm(w http.ResponseWriter, r *http.Request, status int, errKey, mail string) {
	d := h.page("links.signin.title")
	d.Error, d.Mail = errKey, mail
	d.CSRF = formToken(w, r)
	d.Action = Prefix + "links/signin"
	d.EnrolURL = Prefix + "enrol"
	d.Intro = "links.signin.intro"
	h.render(w, status, pageSignIn, d)
}

// linksList shows the list for session s.
func (h *Handler) linksList(w http.ResponseWriter, r *http.Request, status int, s *session, errKey, info string) {
	if !h.stillPermitted(w, r, s) {
		return
	}
	ls, err := h.opt.Store.LinksRevocableBy(r.Context(), s.Mail, h.opt.Now(), maxListedLinks)
	if err != nil {
		h.internal(w, r, "listing links", err)
		return
	}
	d := h.page("links.title")
	d.Error, d.Info, d.CSRF, d.SignOut = errKey, info, s.CSRF, Prefix+"signout"
	for _, l := range ls {
		v := linkView{ID: l.ID, Recipient: l.Recipient, Episode: l.Episode,
			Sent: l.Received.UTC().Format(dateLayout), SentISO: l.Received.UTC().Format(time.RFC3339),
			Expires: l.Expires.UTC().Format(dateLayout), ExpiresISO: l.Expires.UTC().Format(time.RFC3339),
			Downloads: fmt.Sprintf(h.opt.Text["links.downloads.of"], l.Downloads, l.MaxDownloads),
			Action:    Prefix + "links/" + l.ID + "/revoke"}
		if !l.Opened.IsZero() {
			v.Opened = l.Opened.UTC().Format(dateLayout)
		}
		d.Links = append(d.Links, v)
	}
	h.render(w, status, pageLinks, d)
}

// linksSignIn checks both factors and opens a links session.
func (h *Handler) linksSignIn(w http.ResponseWriter, r *http.Request) {
	mail := intake.NormalizeMail(r.PostFormValue("mail"))
	if !formTokenOK(r) {
		h.linksForm(w, r, http.StatusForbidden, "session.form", mail)
		return
	}
	if h.ipBlocked(w, r) {
		return
	}
	a := mailbox.PickupSignIn{User: mail, Remote: clientIP(r), Via: viaLinks, AccountLimit: h.opt.AccountFailures}
	if h.accountLocked(w, r, a) {
		return
	}
	again := func() { h.linksForm(w, r, http.StatusUnauthorized, "signin.failed", mail) }
	ctx := r.Context()
	p, err := h.opt.Auth.Authenticate(ctx, mail, r.PostFormValue("password"),
		intake.Client{RemoteAddr: r.RemoteAddr, Via: viaLinks, TLS: true})
	if err != nil {
		h.authFailed(w, r, a, err, again)
		return
	}
	a.User = p.Mail
	if reason, err := h.checkCode(r, p.Mail, r.PostFormValue("code")); err != nil || reason != "" {
		if err != nil {
			h.internal(w, r, "checking a one-time code", err)
			return
		}
		h.refused(w, r, a, reason, again)
		return
	}
	a.OK = true
	if _, err := h.opt.Store.RecordPickupSignIn(ctx, a); err != nil {
		h.internal(w, r, "recording a sign-in", err)
		return
	}
	if err := h.startSession(w, r, mailbox.NewSession{Kind: kindLinks, Mail: p.Mail}); err != nil {
		h.internal(w, r, "opening a session", err)
		return
	}
	h.log.Info("pickup: signed in to the links page", "remote", a.Remote)
	http.Redirect(w, r, Prefix+"links", http.StatusSeeOther)
}

// revokeLink withdraws one link for the signed-in practitioner, with the reason they give.
func (h *Handler) revokeLink(w http.ResponseWriter, r *http.Request) {
	s := h.sessionOrEnded(w, r, kindLinks)
	if s == nil {
		return
	}
	if !sessionTokenOK(r, s) {
		h.linksList(w, r, http.StatusForbidden, s, "session.form", "")
		return
	}
	id := r.PathValue("id")
	reason := cleanReason(r.PostFormValue("reason"))
	if !mailbox.ValidLinkID(id) {
		h.linksList(w, r, http.StatusNotFound, s, "links.notyours", "")
		return
	}
	if reason == "" {
		h.linksList(w, r, http.StatusUnprocessableEntity, s, "links.reason.empty", "")
		return
	}
	if p, err := h.permitted(r, s); err != nil || !p {
		h.stillPermitted(w, r, s) // answers
		return
	}
	err := h.opt.Store.RevokeLinkAs(r.Context(), id, s.Mail, s.Mail+" (pickup page)", reason)
	switch {
	case errors.Is(err, mailbox.ErrLinkNotFound):
		h.log.Info("pickup: revocation refused: not a link of this practitioner", "link", id, "remote", clientIP(r))
		h.linksList(w, r, http.StatusNotFound, s, "links.notyours", "")
		return
	case errors.Is(err, mailbox.ErrLinkRevoked), errors.Is(err, mailbox.ErrLinkExpired):
		h.linksList(w, r, http.StatusConflict, s, "links.ended", "")
		return
	case err != nil:
		h.internal(w, r, "revoking a link", err)
		return
	}
	h.log.Info("pickup: link revoked by a practitioner", "link", id, "remote", clientIP(r))
	http.Redirect(w, r, Prefix+"links?done=revoked", http.StatusSeeOther)
}

// permitted reports, without answering, whether the directory still lets s's practitioner act.
func (h *Handler) permitted(r *http.Request, s *session) (bool, error) {
	if h.opt.Directory == nil {
		return true, nil
	}
	p, err := h.opt.Directory.Lookup(r.Context(), s.Mail)
	if err != nil {
		return false, err
	}
	return p.Standing(h.opt.Now()) == nil, nil
}
