// Episodes: open, show, hand over, move on, close. Only the episode's team sees it (for anyone else it
// does not exist); only its lead professional changes it.

package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"cafgate/directory"
	"cafgate/gateway/fault"
	"cafgate/mailbox"
	"cafgate/policy"
)

// episodeOut is an episode as the API shows it: the team as the practitioner acted for may see it
// (a member in a sensitive service is never named to others), and the consent in force.
type episodeOut struct {
	Reference string      `json:"reference"`
	State     string      `json:"state"`
	Lead      string      `json:"lead"`
	Team      []memberOut `json:"team"`
	OpenedAt  time.Time   `json:"opened_at"`
	UpdatedAt time.Time   `json:"updated_at"`
	ClosedAt  *time.Time  `json:"closed_at,omitempty"`
	Consent   *consentOut `json:"consent"`
}

type memberOut struct {
	Mail             string `json:"mail"`
	Agency           string `json:"agency"`
	SensitiveService bool   `json:"sensitive_service,omitempty"`
}

func toEpisodeOut(ea *mailbox.EpisodeAt, viewer string) *episodeOut {
	ep := ea.Episode
	out := &episodeOut{Reference: ep.Ref, State: string(ep.State), Lead: ep.Lead, Team: []memberOut{},
		OpenedAt: ep.OpenedAt.UTC(), UpdatedAt: ep.UpdatedAt.UTC(), Consent: toConsentOut(ea.Consent)}
	if !ep.ClosedAt.IsZero() {
		t := ep.ClosedAt.UTC()
		out.ClosedAt = &t
	}
	for _, m := range ep.PublicTeam(viewer) {
		out.Team = append(out.Team, memberOut{Mail: m.Mail, Agency: m.Agency, SensitiveService: m.SensitiveService})
	}
	return out
}

// by is who a change is recorded as made by: the practitioner, through which client.
func (rq *request) by() string {
	return fmt.Sprintf("%s (api client %s)", rq.actor.Mail, rq.client.ID)
}

func (h *Handler) openEpisode(rq *request) (*reply, *Problem) {
	body, p := h.readJSON(rq, false)
	if p != nil {
		return nil, p
	}
	child, p := body.str("child", true)
	if p != nil {
		return nil, p
	}
	if _, err := mailbox.NormaliseChildID(child); err != nil {
		return nil, invalid("/child", "The child's identifier must have 1 to 64 characters and no control characters.", nil)
	}
	in, p := h.newEpisode(rq, body)
	if p != nil {
		return nil, p
	}
	in.ChildID = child
	ep, err := h.opt.Store.OpenEpisode(rq.ctx, h.opt.ChildKey, *in)
	var open *mailbox.OpenEpisodeError
	if errors.As(err, &open) {
		return nil, h.alreadyOpen(rq, open)
	}
	if err != nil {
		return nil, episodeProblem(err, "")
	}
	rq.note("episode", ep.Ref)
	return h.episodeReply(rq, ep.Ref, http.StatusCreated)
}

// newEpisode reads the lead (default: the practitioner acted for), the team (the practitioner acted
// for always on it) and the first state.
func (h *Handler) newEpisode(rq *request, body *jsonObject) (*mailbox.NewEpisode, *Problem) {
	leadMail, p := body.str("lead", false)
	if p != nil {
		return nil, p
	}
	teamMails, p := body.strs("team")
	if p != nil {
		return nil, p
	}
	state, p := body.str("state", false)
	if p != nil {
		return nil, p
	}
	if p := body.done(); p != nil {
		return nil, p
	}
	in := &mailbox.NewEpisode{By: rq.by(), Lead: rq.actor}
	if state != "" {
		st, err := policy.ParseState(state)
		if err != nil || st == policy.StateClosed {
			return nil, invalid("/state", "An episode opens in preparation, assessment, action-plan-and-delivery or review.", err)
		}
		in.State = st
	}
	now := h.opt.Now()
	if strings.TrimSpace(leadMail) != "" {
		lead, p := h.practitioner(rq, "/lead", leadMail)
		if p != nil {
			return nil, p
		}
		in.Lead = lead
	}
	if err := policy.CheckLead(in.Lead, now); err != nil {
		return nil, invalid("/lead", sentenceOf(err), err)
	}
	for i, m := range teamMails {
		ptr := fmt.Sprintf("/team/%d", i)
		p, prob := h.practitioner(rq, ptr, m)
		if prob != nil {
			return nil, prob
		}
		if err := policy.CheckMember(p, now); err != nil {
			return nil, invalid(ptr, sentenceOf(err), err)
		}
		in.Team = append(in.Team, p)
	}
	in.Team = append(in.Team, rq.actor) // the store adds each member once
	return in, nil
}

// alreadyOpen refuses a second open episode; its reference is named only to a member of its team.
func (h *Handler) alreadyOpen(rq *request, open *mailbox.OpenEpisodeError) *Problem {
	if ep, err := h.opt.Store.Episode(rq.ctx, open.Ref); err == nil && ep.OnTeam(rq.actor.Mail) {
		return newProblem(slugConflict, fmt.Sprintf("This child already has an open episode, %s; hand it over or close it instead of opening another.", open.Ref),
			"/child", open)
	}
	return newProblem(slugConflict, "This child already has an open episode, and you are not on its team; ask its lead professional to add you.",
		"/child", open)
}

func (h *Handler) showEpisode(rq *request) (*reply, *Problem) {
	ea, p := h.visibleEpisode(rq)
	if p != nil {
		return nil, p
	}
	return &reply{status: http.StatusOK, header: http.Header{}, body: toEpisodeOut(ea, rq.actor.Mail)}, nil
}

func (h *Handler) handover(rq *request) (*reply, *Problem) {
	return h.changeEpisode(rq, func(ep *policy.Episode, body *jsonObject) (*policy.Episode, *Problem) {
		mail, p := body.str("lead", true)
		if p != nil {
			return nil, p
		}
		if p := body.done(); p != nil {
			return nil, p
		}
		to, p := h.practitioner(rq, "/lead", mail)
		if p != nil {
			return nil, p
		}
		if err := policy.CheckLead(to, h.opt.Now()); err != nil {
			return nil, invalid("/lead", sentenceOf(err), err)
		}
		out, err := h.opt.Store.HandOverEpisode(rq.ctx, ep.Ref, to, rq.by())
		return out, episodeProblem(err, "/lead")
	})
}

func (h *Handler) transition(rq *request) (*reply, *Problem) {
	return h.changeEpisode(rq, func(ep *policy.Episode, body *jsonObject) (*policy.Episode, *Problem) {
		state, p := body.str("state", true)
		if p != nil {
			return nil, p
		}
		if p := body.done(); p != nil {
			return nil, p
		}
		to, err := policy.ParseState(state)
		if err != nil {
			return nil, invalid("/state", "The state is one of preparation, assessment, action-plan-and-delivery, review and closed.", err)
		}
		if err := policy.CheckTransition(ep.State, to); err != nil {
			return nil, newProblem(slugConflict, sentenceOf(err), "/state", err)
		}
		out, err := h.opt.Store.TransitionEpisode(rq.ctx, ep.Ref, to, rq.by())
		return out, episodeProblem(err, "/state")
	})
}

func (h *Handler) closeEpisode(rq *request) (*reply, *Problem) {
	return h.changeEpisode(rq, func(ep *policy.Episode, body *jsonObject) (*policy.Episode, *Problem) {
		if p := body.done(); p != nil {
			return nil, p
		}
		if !ep.Open() {
			return nil, newProblem(slugConflict, fmt.Sprintf("Episode %s is already closed.", ep.Ref), "", nil)
		}
		out, err := h.opt.Store.CloseEpisode(rq.ctx, ep.Ref, rq.by())
		return out, episodeProblem(err, "")
	})
}

// changeEpisode runs a change that only the episode's lead professional may make, and answers with
// the episode as it then is.
func (h *Handler) changeEpisode(rq *request, change func(*policy.Episode, *jsonObject) (*policy.Episode, *Problem)) (*reply, *Problem) {
	ea, p := h.visibleEpisode(rq)
	if p != nil {
		return nil, p
	}
	if err := policy.MayManage(ea.Episode, rq.actor, h.opt.Now()); err != nil {
		return nil, faultProblem(fault.NotPermitted, "Only the episode's lead professional may hand it over, move it on or close it.", "", err)
	}
	body, p := h.readJSON(rq, true)
	if p != nil {
		return nil, p
	}
	ep, p := change(ea.Episode, body)
	if p != nil {
		return nil, p
	}
	rq.note("episode", ep.Ref)
	return h.episodeReply(rq, ep.Ref, http.StatusOK)
}

// visibleEpisode loads the episode of the path for the practitioner acted for: one not on its team is
// told it does not exist, as for an unknown reference.
func (h *Handler) visibleEpisode(rq *request) (*mailbox.EpisodeAt, *Problem) {
	ref := strings.ToUpper(strings.TrimSpace(rq.r.PathValue("ref")))
	notFound := newProblem(slugNotFound, "You have no episode with this reference (only its team sees an episode).", "", nil)
	if !policy.ValidRef(ref) {
		return nil, notFound
	}
	ea, err := h.opt.Store.EpisodeWithConsent(rq.ctx, ref, h.opt.Now())
	switch {
	case errors.Is(err, mailbox.ErrEpisodeNotFound):
		notFound.cause = err
		return nil, notFound
	case err != nil:
		return nil, storeProblem(err)
	case !ea.Episode.OnTeam(rq.actor.Mail):
		notFound.cause = fmt.Errorf("%s is not on the team of %s", rq.actor.Mail, ref)
		return nil, notFound
	}
	return ea, nil
}

// episodeReply answers with the episode and the consent in force now.
func (h *Handler) episodeReply(rq *request, ref string, status int) (*reply, *Problem) {
	ea, err := h.opt.Store.EpisodeWithConsent(rq.ctx, ref, h.opt.Now())
	if err != nil {
		return nil, storeProblem(err)
	}
	hdr := http.Header{}
	if status == http.StatusCreated {
		hdr.Set("Location", "/v1/episodes/"+url.PathEscape(ref))
	}
	return &reply{status: status, header: hdr, body: toEpisodeOut(ea, rq.actor.Mail)}, nil
}

// practitioner looks a mail address up for an episode field.
func (h *Handler) practitioner(rq *request, ptr, mail string) (*directory.Practitioner, *Problem) {
	p, err := h.opt.Dir.Lookup(rq.ctx, strings.ToLower(strings.TrimSpace(mail)))
	switch {
	case errors.Is(err, directory.ErrUnavailable):
		return nil, faultProblem(fault.DirectoryUnavailable, "", ptr, err)
	case errors.Is(err, directory.ErrAmbiguous):
		return nil, invalid(ptr, "More than one directory entry has this address; the agency administrator must correct it first.", err)
	case err != nil:
		return nil, invalid(ptr, "No practitioner with this mail address is known to any agency directory.", err)
	}
	return p, nil
}

// episodeProblem maps an error of an episode or consent change.
func episodeProblem(err error, ptr string) *Problem {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mailbox.ErrEpisodeNotFound):
		return newProblem(slugNotFound, "You have no episode with this reference (only its team sees an episode).", "", err)
	case errors.Is(err, mailbox.ErrEpisodeClosed):
		return newProblem(slugConflict, "The episode is closed; this change can no longer be made to it.", "", err)
	case errors.Is(err, policy.ErrInvalid), errors.Is(err, mailbox.ErrInvalid):
		return invalid(ptr, sentenceOf(err), err)
	}
	return storeProblem(err)
}

// sentenceOf turns a policy or store refusal into a sentence: the error's text without its package
// prefixes. These texts name mail addresses, states and sections, never a child's identifier.
func sentenceOf(err error) string {
	s := err.Error()
	for _, prefix := range []string{"policy: invalid: ", "mailbox: invalid message: ", "mailbox: "} {
		s = strings.ReplaceAll(s, prefix, "")
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "The request is not valid."
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
