package policy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"cafgate/configs"
	"cafgate/directory"
	"cafgate/directory/ldif"
	"cafgate/policy"
)

// docExample is one ```example block of docs/consent.md.
type docExample struct {
	line    int // where the block starts, for messages
	episode string
	consent string
	pkg     string
	expects []string
}

// TestConsentDoc runs every worked example of docs/consent.md against the sample directory, and
// checks the page documents every reason code.
func TestConsentDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/consent.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range policy.Reasons() {
		if !bytes.Contains(doc, []byte("`"+string(r)+"`")) {
			t.Errorf("docs/consent.md does not document reason %q", r)
		}
	}
	examples := parseExamples(t, doc)
	if len(examples) < 10 {
		t.Fatalf("only %d examples found", len(examples))
	}
	dir := sampleDirectory(t)
	seen := map[policy.Reason]bool{}
	for _, ex := range examples {
		t.Run(fmt.Sprintf("line%d", ex.line), func(t *testing.T) {
			for _, r := range runExample(t, dir, ex) {
				seen[r] = true
			}
		})
	}
	for _, r := range []policy.Reason{policy.ReasonConsent, policy.ReasonOverride, policy.ReasonSectionsWithheld, policy.ReasonRefusedAgency,
		policy.ReasonRefusedPerson, policy.ReasonWithdrawn, policy.ReasonNoConsent, policy.ReasonNotGranted} {
		if !seen[r] {
			t.Errorf("no worked example shows %s", r)
		}
	}
}

func parseExamples(t *testing.T, doc []byte) []docExample {
	var out []docExample
	var cur *docExample
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "```example":
			cur = &docExample{line: n}
		case cur != nil && line == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			key, val, ok := strings.Cut(line, ": ")
			switch {
			case !ok:
				t.Fatalf("docs/consent.md:%d: not key: value", n)
			case key == "episode":
				cur.episode = val
			case key == "consent":
				cur.consent = val
			case key == "package":
				cur.pkg = val
			case key == "expect":
				cur.expects = append(cur.expects, val)
			default:
				t.Fatalf("docs/consent.md:%d: unknown key %q", n, key)
			}
		}
	}
	return out
}

var docAt = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const docRef = "CAF-2025-000001"

// runExample decides each expected recipient and compares; it returns the reasons seen.
func runExample(t *testing.T, dir directory.Directory, ex docExample) []policy.Reason {
	ep := exampleEpisode(t, dir, ex.episode)
	var cons *policy.Consent
	if ex.consent != "" {
		cons = exampleConsent(t, ex.consent)
	}
	pkg, sender := examplePackage(t, dir, ex.pkg)
	var reasons []policy.Reason
	for _, exp := range ex.expects {
		f := strings.Fields(exp)
		if len(f) < 3 {
			t.Fatalf("expect %q: want MAIL RESULT REASON [allowed=…] [withheld=…] [notify=…]", exp)
		}
		rcpt, _ := dir.Lookup(context.Background(), f[0]) // nil when unknown: that is a case too
		d := policy.Decide(policy.DecisionInput{Episode: ep, Consent: cons, Package: pkg, Sender: sender,
			Recipient: rcpt, RecipientMail: f[0], At: docAt})
		reasons = append(reasons, d.Reason)
		if string(d.Result) != f[1] || string(d.Reason) != f[2] {
			t.Errorf("%s: got %s %s (%s), doc says %s %s", f[0], d.Result, d.Reason, d.Sentence, f[1], f[2])
		}
		want := map[string]string{"allowed": "", "withheld": "", "notify": ""}
		for _, kv := range f[3:] {
			k, v, _ := strings.Cut(kv, "=")
			want[k] = v
		}
		if got := joinSections(d.Allowed); d.Result == policy.DeliverSections && got != want["allowed"] {
			t.Errorf("%s: allowed %s, doc says %s", f[0], got, want["allowed"])
		}
		if got := joinSections(d.Withheld); got != want["withheld"] {
			t.Errorf("%s: withheld %s, doc says %s", f[0], got, want["withheld"])
		}
		if d.NotifyLead != want["notify"] {
			t.Errorf("%s: notify %q, doc says %q", f[0], d.NotifyLead, want["notify"])
		}
	}
	return reasons
}

func joinSections(ss []policy.Section) string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = string(s)
	}
	return strings.Join(names, ",")
}

// exampleEpisode reads "lead=MAIL team=MAIL,MAIL [state=STATE]" or "none".
func exampleEpisode(t *testing.T, dir directory.Directory, spec string) *policy.Episode {
	if spec == "none" {
		return nil
	}
	ep := &policy.Episode{Ref: docRef, State: policy.StateAssessment}
	for _, kv := range strings.Fields(spec) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "lead":
			p := mustLookup(t, dir, v)
			ep.Lead, ep.Team = p.Mail, policy.WithMember(ep.Team, policy.MemberFrom(p))
		case "team":
			for _, m := range strings.Split(v, ",") {
				ep.Team = policy.WithMember(ep.Team, policy.MemberFrom(mustLookup(t, dir, m)))
			}
		case "state":
			ep.State = policy.State(v)
		default:
			t.Fatalf("episode: unknown %q", k)
		}
	}
	return ep
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// exampleConsent reads the flags of `cafgate consent record` (plus --withdrawn).
func exampleConsent(t *testing.T, spec string) *policy.Consent {
	fs := flag.NewFlagSet("consent", flag.ContinueOnError)
	givenBy := fs.String("given-by", "", "")
	withdrawn := fs.Bool("withdrawn", false, "")
	var grants, refusals multi
	fs.Var(&grants, "grant", "")
	fs.Var(&refusals, "refuse", "")
	if err := fs.Parse(shellWords(t, spec)); err != nil {
		t.Fatalf("consent %q: %v", spec, err)
	}
	c := &policy.Consent{Episode: docRef, Version: 1, GivenBy: policy.Giver(*givenBy), Withdrawn: *withdrawn,
		RecordedAt: docAt.Add(-time.Hour), RecordedBy: "doc"}
	for _, g := range grants {
		pg, err := policy.ParseGrant(g)
		if err != nil {
			t.Fatal(err)
		}
		c.Grants = append(c.Grants, pg)
	}
	for _, r := range refusals {
		pr, err := policy.ParseRefusal(r)
		if err != nil {
			t.Fatal(err)
		}
		c.Refusals = append(c.Refusals, pr...)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("consent %q: %v", spec, err)
	}
	return c
}

// examplePackage reads --from MAIL [--sections LIST] [--episode REF] [--override] [--override-reason TEXT].
// Sections are taken as written (an unknown one is the package's fault, for Decide to refuse).
func examplePackage(t *testing.T, dir directory.Directory, spec string) (policy.Package, *directory.Practitioner) {
	fs := flag.NewFlagSet("package", flag.ContinueOnError)
	from := fs.String("from", "", "")
	sections := fs.String("sections", "", "")
	ref := fs.String("episode", docRef, "")
	override := fs.Bool("override", false, "")
	reason := fs.String("override-reason", "", "")
	if err := fs.Parse(shellWords(t, spec)); err != nil {
		t.Fatalf("package %q: %v", spec, err)
	}
	p := policy.Package{EpisodeRef: *ref, Override: *override, OverrideReason: *reason}
	if *sections != "" {
		for _, s := range strings.Split(*sections, ",") {
			p.Sections = append(p.Sections, policy.Section(s))
		}
	}
	return p, mustLookup(t, dir, *from)
}

func mustLookup(t *testing.T, dir directory.Directory, mail string) *directory.Practitioner {
	p, err := dir.Lookup(context.Background(), mail)
	if err != nil {
		t.Fatalf("%s: %v", mail, err)
	}
	return p
}

// shellWords splits like a shell for the simple cases the page uses: spaces, and double quotes.
func shellWords(t *testing.T, s string) []string {
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quote in %q", s)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// sampleDirectory is configs/sample-directory.ldif as a directory.
func sampleDirectory(t *testing.T) directory.Directory {
	entries, err := ldif.Parse(bytes.NewReader(configs.SampleDirectory))
	if err != nil {
		t.Fatal(err)
	}
	domains := []string{"school.cafgate.test", "health.cafgate.test", "socialcare.cafgate.test", "police.cafgate.test"}
	d, err := ldif.New(entries, "sample", domains)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Lookup(context.Background(), "nobody@elsewhere.test"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("unknown address: %v", err)
	}
	return d
}
