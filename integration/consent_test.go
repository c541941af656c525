package integration

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// episodeOut is `cafgate episode ... --json`.
type episodeOut struct {
	Reference string `json:"reference"`
	State     string `json:"state"`
	Lead      string `json:"lead"`
	Team      []struct {
		Mail      string `json:"mail"`
		Sensitive bool   `json:"sensitive_service"`
	} `json:"team"`
	Consent *consentOut `json:"consent"`
}

func (e *episodeOut) mails() []string {
	var out []string
	for _, m := range e.Team {
		out = append(out, m.Mail)
	}
	return out
}

// consentOut is one version in `cafgate consent ... --json`.
type consentOut struct {
	Version    int       `json:"version"`
	GivenBy    string    `json:"given_by"`
	RecordedAt time.Time `json:"recorded_at"`
	Withdrawn  bool      `json:"withdrawn"`
	Grants     []struct {
		To       string   `json:"to"`
		Name     string   `json:"name"`
		Sections []string `json:"sections"`
	} `json:"grants"`
	Refusals []struct {
		Of      string `json:"of"`
		Name    string `json:"name"`
		Section string `json:"section"`
	} `json:"refusals"`
}

// cliJSON runs a command that must succeed and decodes its JSON output into v.
func cliJSON(t *testing.T, g *gateway, v any, args ...string) {
	t.Helper()
	out, errOut, code := g.cli(append(args, "--json")...)
	if code != 0 {
		t.Fatalf("cafgate %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("cafgate %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cliFails runs a command that must fail with code and say every one of want on stderr.
func cliFails(t *testing.T, g *gateway, code int, want []string, args ...string) {
	t.Helper()
	_, errOut, got := g.cli(args...)
	if got != code {
		t.Fatalf("cafgate %s: exit %d, want %d\n%s", strings.Join(args, " "), got, code, errOut)
	}
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			t.Errorf("cafgate %s: stderr lacks %q:\n%s", strings.Join(args, " "), w, errOut)
		}
	}
}

// sampleCast picks from dev.json a lead professional, a sensitive-service practitioner and two other
// active practitioners of different agencies.
func sampleCast(t *testing.T, info *devInfo) (lead, sensitive account, others []account) {
	t.Helper()
	for _, a := range info.Accounts {
		switch {
		case a.Status != "active" || !slices.Contains(a.Roles, "practitioner"):
		case a.SensitiveService:
			sensitive = a
		case lead.Mail == "" && slices.Contains(a.Roles, "lead-professional"):
			lead = a
		case len(others) < 2 && (len(others) == 0 || others[0].Agency != a.Agency):
			others = append(others, a)
		}
	}
	if lead.Mail == "" || sensitive.Mail == "" || len(others) < 2 {
		t.Fatalf("dev.json lacks the sample cast: lead %q sensitive %q others %d", lead.Mail, sensitive.Mail, len(others))
	}
	return lead, sensitive, others
}

// TestEpisodeAndConsentCLI drives `cafgate episode` and `cafgate consent` against the running
// development gateway: open, a second open for the same child refused naming the first, the team's
// public view, consent versions recorded and withdrawn with their history, transitions and closing.
func TestEpisodeAndConsentCLI(t *testing.T) {
	t.Parallel()
	g := startGateway(t)
	lead, sensitive, others := sampleCast(t, g.Info())
	child := "IT " + randomToken(6) + " 42"
	team := others[0].Mail + "," + others[1].Mail + "," + sensitive.Mail

	var ep episodeOut
	cliJSON(t, g, &ep, "episode", "open", "--child", child, "--lead", lead.Mail, "--team", team)
	if !strings.HasPrefix(ep.Reference, "CAF-") || ep.State != "preparation" || ep.Lead != lead.Mail {
		t.Fatalf("opened %+v", ep)
	}
	if slices.Contains(ep.mails(), sensitive.Mail) || !slices.Contains(ep.mails(), others[1].Mail) {
		t.Errorf("public team %v names the sensitive-service member or lacks a member", ep.mails())
	}

	// The same child, written another way, is refused naming the open episode; nothing is stored.
	var before []episodeOut
	cliJSON(t, g, &before, "episode", "list")
	cliFails(t, g, 1, []string{"already has an open episode", ep.Reference},
		"episode", "open", "--child", strings.ReplaceAll(strings.ToLower(child), " ", "-"), "--lead", others[0].Mail)
	var after []episodeOut
	cliJSON(t, g, &after, "episode", "list")
	if len(after) != len(before) {
		t.Fatalf("episodes %d -> %d after a refused open", len(before), len(after))
	}
	cliFails(t, g, 1, []string{"sensitive service"}, "episode", "open", "--child", "IT other "+randomToken(6), "--lead", sensitive.Mail)
	cliFails(t, g, 1, []string{"nobody@"}, "episode", "open", "--child", "IT other "+randomToken(6), "--lead", "nobody@"+strings.SplitN(lead.Mail, "@", 2)[1])

	// Consent: a version, a withdrawal, a new version; the history keeps all three.
	var v1, v2, v3 []consentOut
	cliJSON(t, g, &v1, "consent", "record", ep.Reference, "--given-by", "parent", "--grant", "team",
		"--grant", "agency="+others[0].Agency+":childs-details", "--refuse", "person="+others[1].Mail+":family-and-environment")
	cliJSON(t, g, &v2, "consent", "withdraw", ep.Reference, "--given-by", "child")
	time.Sleep(10 * time.Millisecond)
	cliJSON(t, g, &v3, "consent", "record", ep.Reference, "--given-by", "carer", "--grant", "team:childs-details,consent")
	if len(v1) != 1 || v1[0].Version != 1 || len(v2) != 1 || v2[0].Version != 2 || !v2[0].Withdrawn || len(v3) != 1 || v3[0].Version != 3 {
		t.Fatalf("versions %+v %+v %+v", v1, v2, v3)
	}
	var hist []consentOut
	cliJSON(t, g, &hist, "consent", "show", ep.Reference, "--history")
	if len(hist) != 3 || hist[0].GivenBy != "parent" || len(hist[0].Grants) != 2 || hist[0].Refusals[0].Section != "family-and-environment" ||
		!hist[1].Withdrawn || len(hist[1].Grants) != 0 || hist[2].Grants[0].Sections[1] != "consent" {
		t.Fatalf("history %+v", hist)
	}
	var inForce []consentOut
	cliJSON(t, g, &inForce, "consent", "show", ep.Reference, "--at", hist[1].RecordedAt.Add(time.Nanosecond).Format(time.RFC3339Nano))
	if len(inForce) != 1 || inForce[0].Version != 2 {
		t.Errorf("in force after the withdrawal: %+v", inForce)
	}
	cliJSON(t, g, &inForce, "consent", "show", ep.Reference)
	if len(inForce) != 1 || inForce[0].Version != 3 {
		t.Errorf("in force now: %+v", inForce)
	}
	// Bad consent is a usage error and stores nothing.
	cliFails(t, g, 2, []string{"unknown section"}, "consent", "record", ep.Reference, "--given-by", "parent", "--grant", "team:medical-history")
	cliFails(t, g, 2, []string{"not the team"}, "consent", "record", ep.Reference, "--given-by", "parent", "--refuse", "team")
	cliFails(t, g, 2, []string{"child, a parent or a carer"}, "consent", "withdraw", ep.Reference, "--given-by", "neighbour")
	cliJSON(t, g, &hist, "consent", "show", ep.Reference, "--history")
	if len(hist) != 3 {
		t.Fatalf("%d versions after refused input", len(hist))
	}

	// States: only allowed transitions; show names the consent in force and hides the sensitive member
	// unless asked.
	cliFails(t, g, 1, []string{"cannot move to review"}, "episode", "transition", ep.Reference, "--to", "review")
	cliJSON(t, g, &ep, "episode", "transition", ep.Reference, "--to", "assessment")
	var shown episodeOut
	cliJSON(t, g, &shown, "episode", "show", ep.Reference)
	if shown.State != "assessment" || shown.Consent == nil || shown.Consent.Version != 3 || slices.Contains(shown.mails(), sensitive.Mail) {
		t.Errorf("show %+v", shown)
	}
	cliJSON(t, g, &shown, "episode", "show", ep.Reference, "--include-sensitive")
	if !slices.Contains(shown.mails(), sensitive.Mail) {
		t.Errorf("--include-sensitive does not list %s: %v", sensitive.Mail, shown.mails())
	}
	cliJSON(t, g, &ep, "episode", "handover", ep.Reference, "--to", others[0].Mail)
	if ep.Lead != others[0].Mail {
		t.Errorf("handover: lead %s", ep.Lead)
	}

	// Closed: no more consent, no more changes; the child may have a new episode.
	cliJSON(t, g, &ep, "episode", "close", ep.Reference)
	if ep.State != "closed" {
		t.Fatalf("close: %+v", ep)
	}
	cliFails(t, g, 1, []string{"closed"}, "consent", "record", ep.Reference, "--given-by", "parent", "--grant", "team")
	cliFails(t, g, 1, []string{"closed"}, "episode", "transition", ep.Reference, "--to", "review")
	var second episodeOut
	cliJSON(t, g, &second, "episode", "open", "--child", child, "--lead", lead.Mail)
	if second.Reference == ep.Reference || second.Reference == "" {
		t.Errorf("reopen: %+v", second)
	}
	var open []episodeOut
	cliJSON(t, g, &open, "episode", "list", "--open")
	for _, e := range open {
		if e.Reference == ep.Reference {
			t.Errorf("closed episode listed as open")
		}
	}
	if !slices.ContainsFunc(open, func(e episodeOut) bool { return e.Reference == second.Reference }) {
		t.Errorf("new episode %s not listed as open", second.Reference)
	}
	cliFails(t, g, 1, []string{"no such episode"}, "episode", "show", "CAF-2000-999999")
	cliFails(t, g, 2, []string{"not an episode reference"}, "episode", "show", "nonsense")
}
