// A package's status: GET /v1/packages/{id}, and the answer to an upload. Only the sender's agency
// sees a package; for anyone else it does not exist.

package api

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"cafgate/mailbox"
	"cafgate/policy"
)

// packageOut is a package's status as the API shows it: metadata, never content.
type packageOut struct {
	ID             string         `json:"id"`
	Sender         string         `json:"sender"`
	Agency         string         `json:"agency"`
	Via            string         `json:"via"`
	ReceivedAt     time.Time      `json:"received_at"`
	AcceptedAt     time.Time      `json:"accepted_at"`
	Size           int            `json:"size"`
	Digest         string         `json:"digest"`
	Episode        string         `json:"episode,omitempty"`
	ConsentVersion int            `json:"consent_version,omitempty"`
	Recipients     []recipientOut `json:"recipients"`
}

// recipientOut is one recipient's decision and what has happened to their copy since.
type recipientOut struct {
	Recipient string       `json:"recipient"`
	Decision  string       `json:"decision"` // a policy.Result, or "undecided"
	Reason    string       `json:"reason,omitempty"`
	Detail    string       `json:"detail,omitempty"` // the reason in words
	Field     string       `json:"field,omitempty"`  // for a recipient refused at upload: its place in the request
	Allowed   []string     `json:"allowed"`
	Withheld  []string     `json:"withheld"`
	Override  bool         `json:"override"`
	Delivery  *deliveryOut `json:"delivery,omitempty"`
	Links     []linkOut    `json:"links"`
}

// deliveryOut is the state of a recipient's queued copy.
type deliveryOut struct {
	State     string    `json:"state"`
	Attempts  int       `json:"attempts"`
	UpdatedAt time.Time `json:"updated_at"`
}

// linkOut is a one-time link issued to a recipient (never its secret).
type linkOut struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	ExpiresAt time.Time `json:"expires_at"`
	Downloads int       `json:"downloads"`
}

// undecided is the decision shown while none is recorded.
const undecided = "undecided"

func (h *Handler) packageStatus(rq *request) (*reply, *Problem) {
	id := rq.r.PathValue("id")
	st, err := h.opt.Store.PackageStatus(rq.ctx, id)
	switch {
	case errors.Is(err, mailbox.ErrNotFound):
		return nil, noSuchPackage(err)
	case err != nil:
		return nil, storeProblem(err)
	case !sameAgency(st.Agency, rq.client.Agency):
		return nil, noSuchPackage(errors.New("package of another agency"))
	}
	links, err := h.opt.Store.ListLinks(rq.ctx, mailbox.LinkFilter{MessageID: id})
	if err != nil {
		return nil, storeProblem(err)
	}
	return &reply{status: http.StatusOK, header: http.Header{}, body: toPackageOut(st, links)}, nil
}

func noSuchPackage(cause error) *Problem {
	return newProblem(slugNotFound, "Your agency has no package with this ID.", "", cause)
}

// statusReply answers an upload with the package's status. If the status cannot be read just after
// the package was accepted, the answer still says it was accepted, with every decision undecided.
func (h *Handler) statusReply(rq *request, id string, status int, up *upload) (*reply, *Problem) {
	hdr := http.Header{"Location": {"/v1/packages/" + url.PathEscape(id)}}
	st, err := h.opt.Store.PackageStatus(rq.ctx, id)
	var links []mailbox.Link
	if err == nil {
		links, err = h.opt.Store.ListLinks(rq.ctx, mailbox.LinkFilter{MessageID: id})
	}
	switch {
	case err == nil:
		return &reply{status: status, header: hdr, body: withUploadRefusals(toPackageOut(st, links), up), messageID: id}, nil
	case up == nil:
		return nil, storeProblem(err)
	}
	h.opt.Log.Warn("api: status of an accepted package not readable", "message", id, "err", err)
	now := h.opt.Now().UTC()
	st = &mailbox.PackageStatus{Summary: mailbox.Summary{ID: id, Sender: rq.actor.Mail, Agency: rq.actor.Agency, Via: "https",
		Recipients: up.allowed, ReceivedAt: now, AcceptedAt: now, Size: len(up.content)}}
	return &reply{status: status, header: hdr, body: withUploadRefusals(toPackageOut(st, nil), up), messageID: id}, nil
}

// toPackageOut shapes a status: one entry per recipient, in submission order.
func toPackageOut(st *mailbox.PackageStatus, links []mailbox.Link) *packageOut {
	out := &packageOut{ID: st.ID, Sender: st.Sender, Agency: st.Agency, Via: st.Via, ReceivedAt: st.ReceivedAt,
		AcceptedAt: st.AcceptedAt, Size: st.Size, Digest: st.Digest, Recipients: []recipientOut{}}
	decided := map[string]*mailbox.StoredDecision{}
	for i := range st.Decisions {
		d := &st.Decisions[i]
		decided[d.Recipient] = d
		out.Episode, out.ConsentVersion = d.Episode, d.ConsentVersion
	}
	for _, rcpt := range st.Recipients {
		r := recipientOut{Recipient: rcpt, Decision: undecided, Allowed: []string{}, Withheld: []string{}, Links: []linkOut{}}
		if d := decided[rcpt]; d != nil {
			r.Decision, r.Reason, r.Override = string(d.Result), string(d.Reason), d.Override
			r.Detail = reasonSentence(d.Reason)
			r.Allowed, r.Withheld = sectionNames(d.Allowed), sectionNames(d.Withheld)
		}
		for _, e := range st.Deliveries {
			if e.Recipient == rcpt {
				r.Delivery = &deliveryOut{State: e.State, Attempts: e.Attempts, UpdatedAt: e.Updated}
			}
		}
		for _, l := range links {
			if l.Recipient == rcpt {
				r.Links = append(r.Links, linkOut{ID: l.ID, State: l.State, ExpiresAt: l.Expires, Downloads: l.Downloads})
			}
		}
		out.Recipients = append(out.Recipients, r)
	}
	return out
}

func sectionNames(ss []policy.Section) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// withUploadRefusals puts the recipients of an upload that the package was not accepted for into its
// status, in the order the upload named them: those refused by the directory check with their reason,
// and, when a retry is answered from the first upload, those the first upload left out (the first
// answer gave their reason; the package was not sent to them).
func withUploadRefusals(out *packageOut, up *upload) *packageOut {
	if up == nil {
		return out
	}
	stored := make(map[string]recipientOut, len(out.Recipients))
	for _, r := range out.Recipients {
		stored[r.Recipient] = r
	}
	refused := make(map[string]refusal, len(up.refused))
	for _, r := range up.refused {
		refused[r.Recipient] = r
	}
	merged := make([]recipientOut, 0, len(up.recipients))
	for i, rcpt := range up.recipients {
		if r, ok := stored[rcpt]; ok {
			merged = append(merged, r)
			delete(stored, rcpt)
			continue
		}
		r := recipientOut{Recipient: rcpt, Decision: string(policy.Refuse), Allowed: []string{}, Withheld: []string{}, Links: []linkOut{},
			Reason: reasonNotAccepted, Field: up.rcptField(i),
			Detail: "The first upload with this Idempotency-Key was not accepted for this recipient (its answer gave the reason); the package was not sent to them."}
		if rf, ok := refused[rcpt]; ok {
			r.Reason, r.Detail = rf.Reason, rf.Detail
		}
		merged = append(merged, r)
	}
	for _, r := range out.Recipients { // any stored recipient the upload did not name (none expected)
		if _, ok := stored[r.Recipient]; ok {
			merged = append(merged, r)
		}
	}
	out.Recipients = merged
	return out
}
