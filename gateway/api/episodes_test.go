package api

import (
	"context"
	"fmt"
	"net/mail"
	"strings"
	"testing"
	"time"

	"cafgate/mailbox"
)

// episodeResult is an episode answer, decoded.
type episodeResult struct {
	Reference string `json:"reference"`
	State     string `json:"state"`
	Lead      string `json:"lead"`
	Team      []struct {
		Mail      string `json:"mail"`
		Sensitive bool   `json:"sensitive_service"`
	} `json:"team"`
	Consent *struct {
		Version   int  `json:"version"`
		Withdrawn bool `json:"withdrawn"`
	} `json:"consent"`
}

func (ep *episodeResult) mails() string {
	var out []string
	for _, m := range ep.Team {
		out = append(out, m.Mail)
	}
	return strings.Join(out, ",")
}

// post sends a JSON body.
func (e *env) post(agency, actor, path, body string) *resp {
	e.t.Helper()
	return e.do(call{method: "POST", path: path, key: e.keys[agency], actor: actor, ctype: "application/json", body: strings.NewReader(body)})
}

func TestEpisodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.post(health, priya, "/v1/episodes", `{"child": "943 476 5919", "team": ["`+gwen+`", "`+sam+`"]}`)
	var ep episodeResult
	r.json(t, &ep)
	// sam works in a sensitive service: named to nobody but sam.
	if r.status != 201 || ep.Lead != priya || ep.State != "preparation" || ep.mails() != gwen+","+priya || ep.Consent != nil ||
		r.header.Get("Location") != "/v1/episodes/"+ep.Reference {
		t.Fatalf("open: %s", r)
	}
	if strings.Contains(e.log.String(), "943 476 5919") || strings.Contains(e.log.String(), "9434765919") {
		t.Error("the child's identifier is in the log")
	}
	path := "/v1/episodes/" + ep.Reference
	// The same child again: 409; the reference is named only to a member of its team.
	p := wantProblem(t, e.post(health, priya, "/v1/episodes", `{"child": "943-476-5919"}`), 409, "conflict", "/child")
	if !strings.Contains(p.Detail, ep.Reference) {
		t.Errorf("409 to a member does not name the episode: %q", p.Detail)
	}
	p = wantProblem(t, e.post(school, harriet, "/v1/episodes", `{"child": "9434765919"}`), 409, "conflict", "/child")
	if strings.Contains(p.Detail, ep.Reference) {
		t.Errorf("409 to a stranger names the episode: %q", p.Detail)
	}
	// Malformed and invalid bodies, each naming its field.
	for body, want := range map[string][3]string{
		`{}`:                                           {"400", "bad-request", "/child"},
		`{"child": "x", "colour": "red"}`:              {"400", "bad-request", "/colour"},
		`{"child": "x", "child": "y"}`:                 {"400", "bad-request", "/child"},
		`{"child": 42}`:                                {"400", "bad-request", "/child"},
		`{"child": "x", "team": ["a", 1]}`:             {"400", "bad-request", "/team/1"},
		`[1]`:                                          {"400", "bad-request", ""},
		`{"child": "x"} {}`:                            {"400", "bad-request", ""},
		`{"child": "x", "lead": "no@x.test"}`:          {"422", "invalid-request", "/lead"},
		`{"child": "x", "lead": "` + sam + `"}`:        {"422", "invalid-request", "/lead"},
		`{"child": "x", "team": ["` + oliver + `"]}`:   {"422", "invalid-request", "/team/0"},
		`{"child": "x", "state": "closed"}`:            {"422", "invalid-request", "/state"},
		`{"child": "` + strings.Repeat("9", 80) + `"}`: {"422", "invalid-request", "/child"},
	} {
		r := e.post(health, priya, "/v1/episodes", body)
		wantProblem(t, r, atoi(want[0]), want[1], want[2])
	}
	wantProblem(t, e.do(call{method: "POST", path: "/v1/episodes", key: e.keys[health], actor: priya, ctype: "text/plain",
		body: strings.NewReader(`{"child":"x"}`)}), 415, "unsupported-media-type")
	wantProblem(t, e.post(health, priya, "/v1/episodes", `{"child": "`+strings.Repeat("x", 70000)+`"}`), 413, "too-big")
	// Only the team sees it; a stranger gets the answer of a reference that does not exist.
	g := e.do(call{method: "GET", path: path, key: e.keys[health], actor: sam})
	var seen episodeResult
	g.json(t, &seen)
	if g.status != 200 || !strings.Contains(seen.mails(), sam) {
		t.Errorf("sam sees: %s", g)
	}
	a := wantProblem(t, e.do(call{method: "GET", path: path, key: e.keys[school], actor: harriet}), 404, "not-found")
	b := wantProblem(t, e.do(call{method: "GET", path: "/v1/episodes/CAF-2020-999999", key: e.keys[school], actor: harriet}), 404, "not-found")
	if a.Detail != b.Detail {
		t.Errorf("404s differ")
	}
	// Only the lead changes it.
	wantProblem(t, e.post(health, sam, path+"/transition", `{"state": "assessment"}`), 403, "not-permitted")
	wantProblem(t, e.post(health, priya, path+"/transition", `{"state": "review"}`), 409, "conflict", "/state")
	wantProblem(t, e.post(health, priya, path+"/transition", `{"state": "done"}`), 422, "invalid-request", "/state")
	r = e.post(health, priya, path+"/transition", `{"state": "assessment"}`)
	r.json(t, &ep)
	if r.status != 200 || ep.State != "assessment" {
		t.Fatalf("transition: %s", r)
	}
	wantProblem(t, e.post(health, priya, path+"/handover", `{"lead": "`+sam+`"}`), 422, "invalid-request", "/lead")
	wantProblem(t, e.post(health, priya, path+"/handover", `{}`), 400, "bad-request", "/lead")
	r = e.post(health, priya, path+"/handover", `{"lead": "`+gwen+`"}`)
	r.json(t, &ep)
	if r.status != 200 || ep.Lead != gwen {
		t.Fatalf("handover: %s", r)
	}
	wantProblem(t, e.post(health, priya, path+"/close", ``), 403, "not-permitted")
	e.addClient("Eastshire Children's Services")
	r = e.post("Eastshire Children's Services", gwen, path+"/close", ``)
	r.json(t, &ep)
	if r.status != 200 || ep.State != "closed" {
		t.Fatalf("close: %s", r)
	}
	wantProblem(t, e.post("Eastshire Children's Services", gwen, path+"/close", `{}`), 409, "conflict")
	// Closed: the child may have a new episode.
	if r := e.post(health, priya, "/v1/episodes", `{"child": "943 476 5919", "state": "assessment"}`); r.status != 201 {
		t.Fatalf("reopen: %s", r)
	}
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

// addClient registers a key client for agency.
func (e *env) addClient(agency string) {
	e.t.Helper()
	c, k, err := e.store.AddAPIClient(context.Background(), mailbox.NewAPIClient{Agency: agency, Name: "case system", By: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.keys[agency], e.clients[agency] = k, c.ID
}

func TestConsent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	path := "/v1/episodes/" + e.episode(0) + "/consent"
	body := `{"given_by": "Parent", "given_at": "2026-03-01T10:30:00Z",
		"grants": [{"team": true, "sections": ["conclusions-and-actions"]}, {"agency": "` + police + `"}],
		"refusals": [{"practitioner": "` + gwen + `", "sections": ["consent", "family-and-environment"]}]}`
	r := e.post(health, priya, path, body)
	var c struct {
		Version    int    `json:"version"`
		GivenBy    string `json:"given_by"`
		RecordedBy string `json:"recorded_by"`
		Grants     []map[string]any
		Refusals   []map[string]any
	}
	r.json(t, &c)
	if r.status != 201 || c.Version != 2 || c.GivenBy != "parent" || len(c.Grants) != 2 || len(c.Refusals) != 2 ||
		!strings.Contains(c.RecordedBy, priya) || !strings.Contains(c.RecordedBy, e.clients[health]) {
		t.Fatalf("record: %s", r)
	}
	// Only the lead records consent.
	wantProblem(t, e.post(school, harriet, path, `{"given_by": "parent"}`), 403, "not-permitted")
	for b, want := range map[string][3]string{
		`{}`:                    {"400", "bad-request", "/given_by"},
		`{"given_by": "uncle"}`: {"422", "invalid-request", "/given_by"},
		`{"given_by": "child", "given_at": "soon"}`:                                                         {"422", "invalid-request", "/given_at"},
		`{"given_by": "child", "given_at": "` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`: {"422", "invalid-request", "/given_at"},
		`{"given_by": "child", "grants": [{"team": true, "agency": "x"}]}`:                                  {"422", "invalid-request", "/grants/0"},
		`{"given_by": "child", "grants": [{}]}`:                                                             {"422", "invalid-request", "/grants/0"},
		`{"given_by": "child", "grants": [{"team": true, "sections": ["health"]}]}`:                         {"422", "invalid-request", "/grants/0/sections/0"},
		`{"given_by": "child", "refusals": [{"team": true}]}`:                                               {"422", "invalid-request", "/refusals/0/team"},
		`{"given_by": "child", "refusals": [{"practitioner": "nobody"}]}`:                                   {"422", "invalid-request", "/refusals/0/practitioner"},
		`{"given_by": "child", "grants": [{"team": true, "colour": 1}]}`:                                    {"400", "bad-request", "/grants/0/colour"},
		`{"given_by": "child", "withdrawn": true}`:                                                          {"400", "bad-request", "/withdrawn"},
	} {
		wantProblem(t, e.post(health, priya, path, b), atoi(want[0]), want[1], want[2])
	}
	// Any member records a withdrawal; from then on nothing is shared.
	r = e.post(school, harriet, path+"/withdraw", `{"given_by": "child"}`)
	var w struct {
		Version   int  `json:"version"`
		Withdrawn bool `json:"withdrawn"`
	}
	r.json(t, &w)
	if r.status != 201 || !w.Withdrawn || w.Version != 3 {
		t.Fatalf("withdraw: %s", r)
	}
	e.addClient("Eastshire Children's Services")
	wantProblem(t, e.post("Eastshire Children's Services", declan, path+"/withdraw", `{"given_by": "child"}`), 404, "not-found")
	docs := threeDocs()
	p := wantProblem(t, e.uploadForm(health, priya, manifestFor(e.episode(0), priya, docs), docs, []string{gwen}, nil), 403, "not-permitted")
	if !strings.Contains(p.Detail, "withdrawn") {
		t.Errorf("after a withdrawal: %q", p.Detail)
	}
	var ep episodeResult
	g := e.do(call{method: "GET", path: "/v1/episodes/" + e.episode(0), key: e.keys[health], actor: priya})
	g.json(t, &ep)
	if ep.Consent == nil || ep.Consent.Version != 3 || !ep.Consent.Withdrawn {
		t.Errorf("consent in force: %s", g)
	}
}

func TestLinkRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	docs := threeDocs()
	r := e.uploadForm(health, priya, manifestFor(e.episode(0), priya, docs), docs, []string{gwen}, nil)
	var st packageResult
	r.json(t, &st)
	link, err := e.store.Notify(ctx, mailbox.LinkRequest{MessageID: st.ID, Recipient: gwen}, func(l *mailbox.IssuedLink) (*mailbox.Outbound, error) {
		content := fmt.Sprintf("From: gateway@cafgate.test\r\nTo: %s\r\nMessage-ID: <%s@gateway.test>\r\nSubject: a package for you\r\n\r\nSee the link.\r\n", gwen, l.ID)
		if _, err := mail.ReadMessage(strings.NewReader(content)); err != nil {
			return nil, err
		}
		return &mailbox.Outbound{MessageID: st.ID, From: "gateway@cafgate.test", Recipient: gwen, Content: []byte(content)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	g := e.do(call{method: "GET", path: "/v1/packages/" + st.ID, key: e.keys[health], actor: priya})
	g.json(t, &st)
	if len(st.Recipients) != 1 || len(st.Recipients[0].Links) != 1 || st.Recipients[0].Links[0].ID != link.ID || st.Recipients[0].Delivery == nil {
		t.Fatalf("status with a link: %s", g)
	}
	path := "/v1/links/" + link.ID + "/revoke"
	wantProblem(t, e.post(school, harriet, path, `{"reason": "sent in error"}`), 404, "not-found")
	wantProblem(t, e.post(health, priya, "/v1/links/L0000000000000000/revoke", `{"reason": "x"}`), 404, "not-found")
	wantProblem(t, e.post(health, priya, "/v1/links/nonsense/revoke", `{"reason": "x"}`), 404, "not-found")
	wantProblem(t, e.post(health, sam, path, `{"reason": "sent in error"}`), 403, "not-permitted")
	wantProblem(t, e.post(health, priya, path, `{}`), 400, "bad-request", "/reason")
	r = e.post(health, priya, path, `{"reason": "sent in error"}`)
	var l struct {
		State   string `json:"state"`
		EndedBy string `json:"ended_by"`
	}
	r.json(t, &l)
	if r.status != 200 || l.State != "revoked" || !strings.Contains(l.EndedBy, priya) {
		t.Fatalf("revoke: %s", r)
	}
	wantProblem(t, e.post(health, priya, path, `{"reason": "again"}`), 409, "conflict")
}
