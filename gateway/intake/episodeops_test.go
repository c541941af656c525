package intake

import (
	"context"
	"errors"
	"strings"
	"testing"

	"cafgate/gateway/fault"
	"cafgate/mailbox"
	"cafgate/policy"
)

// opStore is a store that takes packages with their decisions and packages that change the episode.
type opStore struct {
	fakeStore
	decided []*mailbox.PackageDecision
	plans   []*mailbox.PackagePlan
	opErr   error
	team    []string // the open episode's team, for the refusal of a second open
}

func (s *opStore) AcceptDecided(_ context.Context, m *mailbox.Incoming, pd *mailbox.PackageDecision) error {
	s.got = append(s.got, m)
	s.decided = append(s.decided, pd)
	return nil
}

func (s *opStore) AcceptPackage(_ context.Context, m *mailbox.Incoming, plan *mailbox.PackagePlan) (*mailbox.PackageDecision, error) {
	s.plans = append(s.plans, plan)
	if s.opErr != nil {
		return nil, s.opErr
	}
	s.got = append(s.got, m)
	return &mailbox.PackageDecision{}, nil
}

func (s *opStore) Episode(_ context.Context, ref string) (*policy.Episode, error) {
	ep := &policy.Episode{Ref: ref, State: policy.StateAssessment}
	for _, m := range s.team {
		ep.Team = append(ep.Team, policy.Member{Mail: m})
	}
	return ep, nil
}

func manifestMessage(manifest string) []byte {
	return []byte("From: <ann@school.test>\r\nSubject: CAF package\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=P\r\n\r\n" +
		"--P\r\nContent-Type: application/vnd.cafgate.manifest+json\r\n\r\n" + strings.ReplaceAll(manifest, "\n", "\r\n") + "\r\n" +
		"--P\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n\r\n%PDF\r\n--P--\r\n")
}

const opening = `{"version": 1, "child": "NFS-1", "sender": "ann@school.test",
 "operations": [{"op": "open", "lead": "bob@health.test", "members": ["ann@school.test"]}],
 "consent": {"given_by": "parent", "given_at": "2026-03-01T10:30:00Z", "grants": [{"team": true}],
   "refusals": [{"agency": "Police", "sections": ["childs-details", "consent"]}]},
 "documents": [{"part": "a.pdf", "sections": ["childs-details"]}]}`

func TestAcceptWithOperations(t *testing.T) {
	in, _, _, _ := setup(t)
	st := &opStore{}
	in.Store = st
	ann, _ := in.Dir.Lookup(context.Background(), "ann@school.test")
	send := func(body []byte) error {
		_, err := in.Accept(context.Background(), &Submission{Sender: ann, From: ann.Mail, Recipients: []string{"bob@health.test"}, Content: body})
		return err
	}

	// A package without operations: stored with its decisions in one call.
	if err := send([]byte("From: <ann@school.test>\r\nSubject: [CAF-2026-000001] notes\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	if len(st.decided) != 1 || st.decided[0] == nil || len(st.plans) != 0 || len(in.Decider.(*fakeDecider).recorded) != 0 {
		t.Fatalf("decided %d, plans %d, recorded apart %d", len(st.decided), len(st.plans), len(in.Decider.(*fakeDecider).recorded))
	}

	// A package that opens: the plan has the child, the lead looked up, the consent converted.
	if err := send(manifestMessage(opening)); err != nil {
		t.Fatal(err)
	}
	p := st.plans[0]
	if p.ChildID != "NFS-1" || len(p.Ops) != 1 || p.Ops[0].Lead.Mail != "bob@health.test" || len(p.Ops[0].Team) != 1 ||
		p.Package.EpisodeRef != "" || p.Consent == nil || len(p.Consent.Grants) != 1 || len(p.Consent.Refusals) != 2 ||
		p.Consent.Refusals[1].Section != policy.SectionConsent || len(p.To) != 1 {
		t.Fatalf("plan %+v", p)
	}

	// Refusals name the field.
	cases := []struct {
		name, manifest string
		opErr          error
		team           []string
		kind           fault.Kind
		says, never    string
	}{
		{"second open, sender on its team", opening, &mailbox.PackageError{Field: "/operations/0", Err: &mailbox.OpenEpisodeError{Ref: "CAF-2026-000007"}},
			[]string{"ann@school.test"}, fault.NotPermitted, "at /operations/0: this child already has an open episode, CAF-2026-000007", ""},
		{"second open, sender not on its team", opening, &mailbox.PackageError{Field: "/operations/0", Err: &mailbox.OpenEpisodeError{Ref: "CAF-2026-000007"}},
			nil, fault.NotPermitted, "not on its team", "CAF-2026-000007"},
		{"open naming a reference", strings.Replace(opening, `"child"`, `"episode": "CAF-2026-000001", "child"`, 1), nil, nil, fault.BadMessage, "at /episode: must be left out", ""},
		{"unknown lead", strings.Replace(opening, `"lead": "bob@health.test"`, `"lead": "nobody@health.test"`, 1), nil, nil,
			fault.NotPermitted, "at /operations/0/lead: names no practitioner", ""},
		{"team change", strings.Replace(strings.Replace(opening, `{"op": "open", "lead": "bob@health.test", "members": ["ann@school.test"]}`, `{"op": "add-members", "members": ["bob@health.test"]}`, 1), `"child"`, `"episode": "CAF-2026-000001", "child"`, 1),
			nil, nil, fault.BadMessage, "at /operations/0/op: asks for add-members, which this gateway does not apply yet", ""},
		{"closed", strings.Replace(strings.Replace(opening, `{"op": "open", "lead": "bob@health.test", "members": ["ann@school.test"]}`, `{"op": "close"}`, 1), `"child"`, `"episode": "CAF-2026-000001", "child"`, 1),
			&mailbox.PackageError{Field: "/operations/0", Err: mailbox.ErrEpisodeClosed}, nil, fault.NotPermitted, "at /operations/0: episode CAF-2026-000001 is closed", ""},
		{"unknown episode", strings.Replace(strings.Replace(opening, `{"op": "open", "lead": "bob@health.test", "members": ["ann@school.test"]}`, `{"op": "close"}`, 1), `"child"`, `"episode": "CAF-2026-000009", "child"`, 1),
			&mailbox.PackageError{Field: "/operations/0", Err: mailbox.ErrEpisodeNotFound}, nil, fault.NotPermitted, "at /episode: no episode has the reference CAF-2026-000009", ""},
	}
	for _, c := range cases {
		st.opErr, st.team = c.opErr, c.team
		stored := len(st.got)
		err := send(manifestMessage(c.manifest))
		var fe *fault.Error
		if !errors.As(err, &fe) {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if fe.Kind != c.kind || !strings.Contains(fe.Message, c.says) {
			t.Errorf("%s: kind %v, %q; want %q", c.name, fe.Kind, fe.Message, c.says)
		}
		if c.never != "" && strings.Contains(fe.Message, c.never) {
			t.Errorf("%s: names %s to a practitioner not on its team: %q", c.name, c.never, fe.Message)
		}
		if len(st.got) != stored {
			t.Errorf("%s: stored", c.name)
		}
	}
}
