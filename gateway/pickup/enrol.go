// Enrolling an authenticator: the directory password and the one-time enrolment code from an
// administrator open an enrolment session, which shows the new secret as a QR code (a data: PNG, so
// no script and no second request) and as text; the first code from the app confirms it.

package pickup

import (
	"bytes"
	"encoding/base64"
	"errors"
	"html/template"
	"image/png"
	"net/http"

	"cafgate/gateway/intake"
	"cafgate/mailbox"
)

// viaEnrol marks enrolment sign-ins in the ledger and the log.
const viaEnrol = "pickup-enrol"

// enrolPage shows the first enrolment form; from a link's page it returns there afterwards.
func (h *Handler) enrolPage(w http.ResponseWriter, r *http.Request) {
	h.enrolForm(w, r, http.StatusOK, h.returnToken(r), "", "")
}

// returnToken is the token of the link enrolment started from, if it names a link.
func (h *Handler) returnToken(r *http.Request) string {
	token := r.PathValue("token")
	if token == "" {
		return ""
	}
	if _, err := h.opt.Store.OpenLink(r.Context(), token); err != nil {
		return ""
	}
	return token
}

func (h *Handler) enrolForm(w http.ResponseWriter, r *http.Request, status int, token, errKey, mail string) {
	d := h.page("enrol.title")
	d.Error, d.Mail = errKey, mail
	d.CSRF = formToken(w, r)
	d.Action = Prefix + "enrol"
	if token != "" {
		d.Action = Prefix + "l/" + token + "/enrol"
	}
	h.render(w, status, pageEnrol, d)
}

// enrolStart checks the password and the enrolment code and shows the new secret.
func (h *Handler) enrolStart(w http.ResponseWriter, r *http.Request) {
	token := h.returnToken(r)
	mail := intake.NormalizeMail(r.PostFormValue("mail"))
	if !formTokenOK(r) {
		h.enrolForm(w, r, http.StatusForbidden, token, "session.form", mail)
		return
	}
	if h.ipBlocked(w, r) {
		return
	}
	a := mailbox.PickupSignIn{User: mail, Remote: clientIP(r), Via: viaEnrol, AccountLimit: h.opt.AccountFailures}
	if h.accountLocked(w, r, a) {
		return
	}
	again := func() { h.enrolForm(w, r, http.StatusUnauthorized, token, "enrol.failed", mail) }
	ctx := r.Context()
	p, err := h.opt.Auth.Authenticate(ctx, mail, r.PostFormValue("password"),
		intake.Client{RemoteAddr: r.RemoteAddr, Via: viaEnrol, TLS: true})
	if err != nil {
		h.authFailed(w, r, a, err, again)
		return
	}
	a.User = p.Mail
	_, err = h.opt.Store.StartEnrolment(ctx, p.Mail, r.PostFormValue("enrolcode"), h.opt.Issuer, h.opt.Now())
	if errors.Is(err, mailbox.ErrEnrolmentRefused) {
		h.refused(w, r, a, reasonBadEnrolCode, again)
		return
	}
	if err != nil {
		h.internal(w, r, "starting an enrolment", err)
		return
	}
	if err := h.startSession(w, r, mailbox.NewSession{Kind: kindEnrol, Mail: p.Mail, Return: token}); err != nil {
		h.internal(w, r, "opening an enrolment session", err)
		return
	}
	http.Redirect(w, r, Prefix+"enrol/confirm", http.StatusSeeOther)
}

// enrolQR shows the secret of the enrolment under way.
func (h *Handler) enrolQR(w http.ResponseWriter, r *http.Request) {
	s := h.sessionOrEnded(w, r, kindEnrol)
	if s == nil {
		return
	}
	h.qrPage(w, r, http.StatusOK, s, "")
}

func (h *Handler) qrPage(w http.ResponseWriter, r *http.Request, status int, s *session, errKey string) {
	key, err := h.opt.Store.PendingEnrolment(r.Context(), s.Mail, h.opt.Issuer)
	if errors.Is(err, mailbox.ErrEnrolmentRefused) {
		// Reset or completed elsewhere meanwhile.
		h.dropSession(r)
		h.message(w, r, http.StatusConflict, "session.title", "enrol.failed", "")
		return
	}
	if err != nil {
		h.internal(w, r, "reading the enrolment", err)
		return
	}
	img, err := key.Image(240, 240)
	if err != nil {
		h.internal(w, r, "drawing a QR code", err)
		return
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		h.internal(w, r, "encoding a QR code", err)
		return
	}
	d := h.page("enrol.qr.title")
	d.Error = errKey
	// A data: URL built here from PNG bytes only; the CSP allows data: for images and nothing else.
	d.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()))
	d.Secret = groupSecret(key.Secret())
	d.CSRF = s.CSRF
	d.Action = Prefix + "enrol/confirm"
	h.render(w, status, pageEnrolQR, d)
}

// enrolConfirm takes the first code of the new secret and, when it is right, makes it the
// practitioner's authenticator.
func (h *Handler) enrolConfirm(w http.ResponseWriter, r *http.Request) {
	s := h.sessionOrEnded(w, r, kindEnrol)
	if s == nil {
		return
	}
	if !sessionTokenOK(r, s) {
		h.qrPage(w, r, http.StatusForbidden, s, "session.form")
		return
	}
	if h.ipBlocked(w, r) {
		return
	}
	a := mailbox.PickupSignIn{User: s.Mail, Remote: clientIP(r), Via: viaEnrol, AccountLimit: h.opt.AccountFailures}
	err := h.opt.Store.ConfirmEnrolment(r.Context(), s.Mail, r.PostFormValue("code"), h.opt.Now())
	switch {
	case errors.Is(err, mailbox.ErrTOTPRefused):
		h.refused(w, r, a, reasonBadCode, func() { h.qrPage(w, r, http.StatusUnauthorized, s, "enrol.qr.failed") })
		return
	case errors.Is(err, mailbox.ErrEnrolmentRefused):
		// Reset or completed elsewhere meanwhile.
		h.dropSession(r)
		h.message(w, r, http.StatusConflict, "session.title", "enrol.failed", "")
		return
	case err != nil:
		h.internal(w, r, "confirming an enrolment", err)
		return
	}
	a.OK = true
	if _, err := h.opt.Store.RecordPickupSignIn(r.Context(), a); err != nil {
		h.internal(w, r, "recording an enrolment", err)
		return
	}
	h.dropSession(r)
	setCookie(w, sessionCookie, "", -1)
	h.log.Info("pickup: authenticator enrolled", "remote", a.Remote)
	d := h.page("enrol.qr.title")
	d.Title = "enrol.title"
	if s.Return != "" {
		d.Continue = Prefix + "l/" + s.Return
	}
	h.render(w, http.StatusOK, pageEnrolDone, d)
}
