// Revoking a one-time link: POST /v1/links/{id}/revoke. The link must be to a package of the client's
// agency (else it does not exist), and the practitioner acted for must have sent the package or lead
// the episode it belongs to.

package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"cafgate/gateway/fault"
	"cafgate/mailbox"
)

// linkState is a link as the API shows it after a change (never its secret).
type linkState struct {
	ID        string     `json:"id"`
	MessageID string     `json:"package"`
	Recipient string     `json:"recipient"`
	State     string     `json:"state"`
	ExpiresAt time.Time  `json:"expires_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	EndedBy   string     `json:"ended_by,omitempty"`
}

func (h *Handler) revokeLink(rq *request) (*reply, *Problem) {
	id := strings.TrimSpace(rq.r.PathValue("id"))
	notFound := newProblem(slugNotFound, "Your agency has no link with this ID.", "", nil)
	if !mailbox.ValidLinkID(id) {
		return nil, notFound
	}
	l, err := h.opt.Store.LinkByID(rq.ctx, id)
	switch {
	case errors.Is(err, mailbox.ErrLinkNotFound):
		notFound.cause = err
		return nil, notFound
	case err != nil:
		return nil, storeProblem(err)
	case !sameAgency(l.Agency, rq.client.Agency):
		notFound.cause = errors.New("link to a package of another agency")
		return nil, notFound
	}
	if p := h.mayRevoke(rq, l); p != nil {
		return nil, p
	}
	body, p := h.readJSON(rq, false)
	if p != nil {
		return nil, p
	}
	reason, p := body.str("reason", true)
	if p != nil {
		return nil, p
	}
	if p := body.done(); p != nil {
		return nil, p
	}
	switch err := h.opt.Store.RevokeLink(rq.ctx, id, rq.by(), reason); {
	case errors.Is(err, mailbox.ErrLinkRevoked), errors.Is(err, mailbox.ErrLinkExpired):
		return nil, newProblem(slugConflict, "The link has already ended (revoked or expired).", "", err)
	case errors.Is(err, mailbox.ErrInvalid):
		return nil, invalid("/reason", "Say why the link is revoked.", err)
	case err != nil:
		return nil, storeProblem(err)
	}
	rq.note("link", id, "message", l.MessageID)
	if l, err = h.opt.Store.LinkByID(rq.ctx, id); err != nil {
		return nil, storeProblem(err)
	}
	out := linkState{ID: l.ID, MessageID: l.MessageID, Recipient: l.Recipient, State: l.State, ExpiresAt: l.Expires.UTC(), EndedBy: l.EndedBy}
	if !l.Ended.IsZero() {
		t := l.Ended.UTC()
		out.EndedAt = &t
	}
	return &reply{status: http.StatusOK, header: http.Header{}, body: out}, nil
}

// mayRevoke: the package's sender, or the lead professional of its episode.
func (h *Handler) mayRevoke(rq *request, l *mailbox.Link) *Problem {
	st, err := h.opt.Store.PackageStatus(rq.ctx, l.MessageID)
	if err != nil {
		return storeProblem(err)
	}
	if strings.EqualFold(st.Sender, rq.actor.Mail) {
		return nil
	}
	if l.Episode != "" {
		if ep, err := h.opt.Store.Episode(rq.ctx, l.Episode); err == nil && strings.EqualFold(ep.Lead, rq.actor.Mail) {
			return nil
		}
	}
	return faultProblem(fault.NotPermitted, "Only the practitioner who sent the package, or the lead professional of its episode, may revoke its links.", "", nil)
}
