package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os/user"
	"strings"
	"time"

	"cafgate/configs"
	"cafgate/directory"
	"cafgate/mailbox"
	"cafgate/policy"
)

// episodeCommands are the episode and consent commands. They open the store read-write beside a
// running gateway (SQLite WAL with a busy timeout lets a second process write).
func episodeCommands() []command {
	return []command{
		{name: "episode open", args: "--config FILE --child ID --lead MAIL [--team MAIL,MAIL] [--state STATE] [--by WHO] [--json]",
			short: "open an episode for a child (at most one open episode per child) with a lead professional and team",
			run:   runEpisodeOpen, flags: episodeOpenFlags},
		{name: "episode show", args: "REF --config FILE [--at TIME] [--include-sensitive] [--json]",
			short: "show an episode: state, lead, team and the consent in force",
			run:   runEpisodeShow, flags: episodeShowFlags},
		{name: "episode list", args: "--config FILE [--state STATE | --open] [--limit N] [--json]",
			short: "list episodes", run: runEpisodeList, flags: episodeListFlags},
		{name: "episode handover", args: "REF --to MAIL --config FILE [--by WHO] [--json]",
			short: "hand an episode to a new lead professional", run: runEpisodeHandover, flags: episodeToFlags},
		{name: "episode transition", args: "REF --to STATE --config FILE [--by WHO] [--json]",
			short: "move an episode to its next state (assessment, action-plan-and-delivery, review, closed)",
			run:   runEpisodeTransition, flags: episodeToFlags},
		{name: "episode close", args: "REF --config FILE [--by WHO] [--json]",
			short: "close an episode", run: runEpisodeClose, flags: episodeWriteFlags},
		{name: "consent record", args: "REF --config FILE --given-by child|parent|carer [--given-at TIME] [--grant SPEC]... [--refuse SPEC]... [--by WHO] [--json]",
			short: "record a new consent version (complete in itself; see docs/consent.md for SPEC)",
			run:   runConsentRecord, flags: consentRecordFlags},
		{name: "consent withdraw", args: "REF --config FILE --given-by child|parent|carer [--given-at TIME] [--by WHO] [--json]",
			short: "record that consent is withdrawn: nothing new is shared", run: runConsentWithdraw, flags: consentWithdrawFlags},
		{name: "consent show", args: "REF --config FILE [--at TIME] [--history] [--json]",
			short: "show the consent in force, or every version", run: runConsentShow, flags: consentShowFlags},
	}
}

// --- flags

func episodeWriteFlags(fs *flag.FlagSet) {
	jsonConfigFlags(fs)
	fs.String("by", defaultActor(), "who is making the change (recorded in the ledger)")
}

func episodeOpenFlags(fs *flag.FlagSet) {
	episodeWriteFlags(fs)
	fs.String("child", "", "the child's identifier (stored only as a keyed hash)")
	fs.String("lead", "", "mail of the lead professional")
	fs.String("team", "", "comma-separated mails of the other team members")
	fs.String("state", string(policy.StatePreparation), "first state")
}

func episodeShowFlags(fs *flag.FlagSet) {
	jsonConfigFlags(fs)
	fs.String("at", "", "show the consent in force at this time (RFC 3339 or YYYY-MM-DD); default now")
	fs.Bool("include-sensitive", false, "also list team members in a sensitive service (administrators only)")
}

func episodeListFlags(fs *flag.FlagSet) {
	jsonConfigFlags(fs)
	fs.String("state", "", "only episodes in this state")
	fs.Bool("open", false, "only open episodes")
	fs.Int("limit", 100, "most episodes to list (at most 1000)")
}

func episodeToFlags(fs *flag.FlagSet) {
	episodeWriteFlags(fs)
	fs.String("to", "", "the new lead's mail (handover) or the new state (transition)")
}

func consentWithdrawFlags(fs *flag.FlagSet) {
	episodeWriteFlags(fs)
	fs.String("given-by", "", "who gave or withdrew consent: child, parent or carer")
	fs.String("given-at", "", "when they did (RFC 3339 or YYYY-MM-DD); default now")
}

func consentRecordFlags(fs *flag.FlagSet) {
	consentWithdrawFlags(fs)
	fs.Var(&multiFlag{}, "grant", "share with SCOPE[:SECTIONS]: team, agency=NAME or person=MAIL (repeatable)")
	fs.Var(&multiFlag{}, "refuse", "refuse agency=NAME[:SECTIONS] or person=MAIL[:SECTIONS] (repeatable)")
}

func consentShowFlags(fs *flag.FlagSet) {
	jsonConfigFlags(fs)
	fs.String("at", "", "the consent in force at this time (RFC 3339 or YYYY-MM-DD); default now")
	fs.Bool("history", false, "show every version, oldest first")
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, "; ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func flagList(fs *flag.FlagSet, name string) []string { return *fs.Lookup(name).Value.(*multiFlag) }

func defaultActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

// refArg takes the episode reference from the first argument and parses any flags after it.
func refArg(fs *flag.FlagSet, args []string) (string, error) {
	if len(args) == 0 {
		return "", fmt.Errorf("%w: give the episode reference (CAF-YYYY-NNNNNN)", errUsage)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return "", fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	ref := strings.ToUpper(strings.TrimSpace(args[0]))
	if !policy.ValidRef(ref) {
		return "", fmt.Errorf("%w: %q is not an episode reference (CAF-YYYY-NNNNNN)", errUsage, args[0])
	}
	return ref, nil
}

// parseWhen reads RFC 3339 or a date (midnight UTC); empty gives the zero time.
func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q is not a time (RFC 3339, e.g. 2025-03-04T10:00:00Z, or YYYY-MM-DD)", errUsage, s)
	}
	return t, nil
}

// --- the store and the directory

// episodeEnv is what the episode commands work with.
type episodeEnv struct {
	store *mailbox.Store
	key   mailbox.ChildKey
	cfg   *configs.Config
}

// openEpisodeEnv opens the configured store read-write (never creating it) and derives the child key.
func openEpisodeEnv(ctx context.Context, fs *flag.FlagSet) (*episodeEnv, error) {
	e, err := openStoreEnv(ctx, fs, false)
	if err != nil {
		return nil, err
	}
	key, err := mailbox.DeriveChildKey(e.contentKey)
	if err != nil {
		e.store.Close()
		return nil, err
	}
	return &episodeEnv{store: e.store, key: key, cfg: e.cfg}, nil
}

// lookup finds practitioners in the configured directories.
func (e *episodeEnv) lookup(ctx context.Context, mails ...string) ([]*directory.Practitioner, error) {
	dir, err := openDirectories(e.cfg.Directories)
	if err != nil {
		return nil, err
	}
	var out []*directory.Practitioner
	for _, m := range mails {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		p, err := dir.Lookup(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// --- episode commands

func runEpisodeOpen(c *cli, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
	}
	child, lead := flagString(fs, "child"), flagString(fs, "lead")
	if strings.TrimSpace(child) == "" || strings.TrimSpace(lead) == "" {
		return fmt.Errorf("%w: --child and --lead are required", errUsage)
	}
	ctx := context.Background()
	env, err := openEpisodeEnv(ctx, fs)
	if err != nil {
		return err
	}
	defer env.store.Close()
	people, err := env.lookup(ctx, append([]string{lead}, strings.Split(flagString(fs, "team"), ",")...)...)
	if err != nil {
		return err
	}
	ep, err := env.store.OpenEpisode(ctx, env.key, mailbox.NewEpisode{ChildID: child, Lead: people[0], Team: people[1:],
		By: flagString(fs, "by"), State: policy.State(flagString(fs, "state"))})
	if err != nil {
		return err
	}
	return printEpisode(c, fs, ep, nil, false)
}

func runEpisodeShow(c *cli, fs *flag.FlagSet, args []string) error {
	ref, err := refArg(fs, args)
	if err != nil {
		return err
	}
	at, err := parseWhen(flagString(fs, "at"))
	if err != nil {
		return err
	}
	if at.IsZero() {
		at = time.Now()
	}
	ctx := context.Background()
	st, err := openStoreReadOnly(ctx, fs)
	if err != nil {
		return err
	}
	defer st.Close()
	ea, err := st.EpisodeWithConsent(ctx, ref, at)
	if err != nil {
		return err
	}
	return printEpisode(c, fs, ea.Episode, ea.Consent, flagBool(fs, "include-sensitive"))
}

func runEpisodeList(c *cli, fs *flag.FlagSet, _ []string) error {
	f := mailbox.EpisodeFilter{Open: flagBool(fs, "open")}
	fmt.Sscan(flagString(fs, "limit"), &f.Limit)
	if s := flagString(fs, "state"); s != "" {
		st, err := policy.ParseState(s)
		if err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		f.State = st
	}
	ctx := context.Background()
	st, err := openStoreReadOnly(ctx, fs)
	if err != nil {
		return err
	}
	defer st.Close()
	eps, err := st.ListEpisodes(ctx, f)
	if err != nil {
		return err
	}
	if flagBool(fs, "json") {
		out := make([]episodeJSON, len(eps))
		for i := range eps {
			out[i] = toEpisodeJSON(&eps[i], nil, false)
		}
		return json.NewEncoder(c.out).Encode(out)
	}
	fmt.Fprintf(c.out, "%-16s  %-24s  %-40s  %s\n", "REFERENCE", "STATE", "LEAD", "TEAM")
	for i := range eps {
		fmt.Fprintf(c.out, "%-16s  %-24s  %-40s  %d\n", eps[i].Ref, eps[i].State, eps[i].Lead, len(eps[i].PublicTeam("")))
	}
	return nil
}

func runEpisodeHandover(c *cli, fs *flag.FlagSet, args []string) error {
	return changeEpisode(c, fs, args, func(ctx context.Context, env *episodeEnv, ref string) (*policy.Episode, error) {
		people, err := env.lookup(ctx, flagString(fs, "to"))
		if err != nil {
			return nil, err
		}
		if len(people) == 0 {
			return nil, fmt.Errorf("%w: --to MAIL is required", errUsage)
		}
		return env.store.HandOverEpisode(ctx, ref, people[0], flagString(fs, "by"))
	})
}

func runEpisodeTransition(c *cli, fs *flag.FlagSet, args []string) error {
	return changeEpisode(c, fs, args, func(ctx context.Context, env *episodeEnv, ref string) (*policy.Episode, error) {
		to, err := policy.ParseState(flagString(fs, "to"))
		if err != nil {
			return nil, fmt.Errorf("%w: --to: %w", errUsage, err)
		}
		return env.store.TransitionEpisode(ctx, ref, to, flagString(fs, "by"))
	})
}

func runEpisodeClose(c *cli, fs *flag.FlagSet, args []string) error {
	return changeEpisode(c, fs, args, func(ctx context.Context, env *episodeEnv, ref string) (*policy.Episode, error) {
		return env.store.CloseEpisode(ctx, ref, flagString(fs, "by"))
	})
}

// changeEpisode runs one change to the episode named by the first argument and prints the result.
func changeEpisode(c *cli, fs *flag.FlagSet, args []string, change func(context.Context, *episodeEnv, string) (*policy.Episode, error)) error {
	ref, err := refArg(fs, args)
	if err != nil {
		return err
	}
	ctx := context.Background()
	env, err := openEpisodeEnv(ctx, fs)
	if err != nil {
		return err
	}
	defer env.store.Close()
	ep, err := change(ctx, env, ref)
	if err != nil {
		return err
	}
	return printEpisode(c, fs, ep, nil, false)
}

// --- consent commands

func runConsentRecord(c *cli, fs *flag.FlagSet, args []string) error {
	ref, err := refArg(fs, args)
	if err != nil {
		return err
	}
	cons, err := consentFromFlags(fs)
	if err != nil {
		return err
	}
	return writeConsent(c, fs, ref, cons)
}

func runConsentWithdraw(c *cli, fs *flag.FlagSet, args []string) error {
	ref, err := refArg(fs, args)
	if err != nil {
		return err
	}
	cons, err := consentFromFlags(fs)
	if err != nil {
		return err
	}
	cons.Withdrawn = true
	return writeConsent(c, fs, ref, cons)
}

// consentFromFlags builds a consent version from --given-by, --given-at, --by and any --grant/--refuse.
func consentFromFlags(fs *flag.FlagSet) (policy.Consent, error) {
	giver, err := policy.ParseGiver(flagString(fs, "given-by"))
	if err != nil {
		return policy.Consent{}, fmt.Errorf("%w: --given-by: %w", errUsage, err)
	}
	at, err := parseWhen(flagString(fs, "given-at"))
	if err != nil {
		return policy.Consent{}, err
	}
	c := policy.Consent{GivenBy: giver, GivenAt: at, RecordedBy: flagString(fs, "by")}
	if fs.Lookup("grant") == nil {
		return c, nil
	}
	for _, spec := range flagList(fs, "grant") {
		g, err := policy.ParseGrant(spec)
		if err != nil {
			return c, fmt.Errorf("%w: --grant: %w", errUsage, err)
		}
		c.Grants = append(c.Grants, g)
	}
	for _, spec := range flagList(fs, "refuse") {
		rs, err := policy.ParseRefusal(spec)
		if err != nil {
			return c, fmt.Errorf("%w: --refuse: %w", errUsage, err)
		}
		c.Refusals = append(c.Refusals, rs...)
	}
	return c, nil
}

func writeConsent(c *cli, fs *flag.FlagSet, ref string, cons policy.Consent) error {
	ctx := context.Background()
	env, err := openEpisodeEnv(ctx, fs)
	if err != nil {
		return err
	}
	defer env.store.Close()
	v, err := env.store.RecordConsent(ctx, ref, cons)
	if err != nil {
		return err
	}
	return printConsents(c, fs, []policy.Consent{*v})
}

func runConsentShow(c *cli, fs *flag.FlagSet, args []string) error {
	ref, err := refArg(fs, args)
	if err != nil {
		return err
	}
	at, err := parseWhen(flagString(fs, "at"))
	if err != nil {
		return err
	}
	if at.IsZero() {
		at = time.Now()
	}
	ctx := context.Background()
	st, err := openStoreReadOnly(ctx, fs)
	if err != nil {
		return err
	}
	defer st.Close()
	var versions []policy.Consent
	if flagBool(fs, "history") {
		if versions, err = st.ConsentHistory(ctx, ref); err != nil {
			return err
		}
	} else {
		ea, err := st.EpisodeWithConsent(ctx, ref, at)
		if err != nil {
			return err
		}
		if ea.Consent != nil {
			versions = []policy.Consent{*ea.Consent}
		}
	}
	return printConsents(c, fs, versions)
}

// --- output

type episodeJSON struct {
	Reference string          `json:"reference"`
	State     policy.State    `json:"state"`
	Lead      string          `json:"lead"`
	Team      []policy.Member `json:"team"`
	OpenedAt  time.Time       `json:"opened_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	ClosedAt  *time.Time      `json:"closed_at,omitempty"`
	Consent   *policy.Consent `json:"consent,omitempty"`
}

func toEpisodeJSON(ep *policy.Episode, c *policy.Consent, withSensitive bool) episodeJSON {
	out := episodeJSON{Reference: ep.Ref, State: ep.State, Lead: ep.Lead, Team: ep.PublicTeam(""),
		OpenedAt: ep.OpenedAt, UpdatedAt: ep.UpdatedAt, Consent: c}
	if withSensitive {
		out.Team = ep.Team
	}
	if !ep.ClosedAt.IsZero() {
		out.ClosedAt = &ep.ClosedAt
	}
	return out
}

// printEpisode prints an episode (and the consent in force, when given). Members in a sensitive
// service are listed only with withSensitive.
func printEpisode(c *cli, fs *flag.FlagSet, ep *policy.Episode, cons *policy.Consent, withSensitive bool) error {
	if flagBool(fs, "json") {
		return json.NewEncoder(c.out).Encode(toEpisodeJSON(ep, cons, withSensitive))
	}
	fmt.Fprintf(c.out, "episode %s\n  state: %s\n  lead professional: %s\n  opened: %s\n", ep.Ref, ep.State, ep.Lead, ep.OpenedAt.UTC().Format(time.RFC3339))
	if !ep.ClosedAt.IsZero() {
		fmt.Fprintf(c.out, "  closed: %s\n", ep.ClosedAt.UTC().Format(time.RFC3339))
	}
	team := ep.PublicTeam("")
	if withSensitive {
		team = ep.Team
	}
	fmt.Fprintln(c.out, "  team:")
	for _, m := range team {
		note := ""
		if m.SensitiveService {
			note = " [sensitive service: never named to other members]"
		}
		fmt.Fprintf(c.out, "    %s (%s)%s\n", m.Mail, m.Agency, note)
	}
	if hidden := len(ep.Team) - len(team); hidden > 0 {
		fmt.Fprintf(c.out, "    (and %d in a sensitive service, not listed; `episode show --include-sensitive` lists them)\n", hidden)
	}
	if fs.Lookup("at") != nil {
		if cons == nil {
			fmt.Fprintln(c.out, "  consent in force: none recorded; nothing is shared")
		} else {
			fmt.Fprintf(c.out, "  consent in force: %s\n", cons.Describe())
		}
	}
	return nil
}

func printConsents(c *cli, fs *flag.FlagSet, vs []policy.Consent) error {
	if flagBool(fs, "json") {
		if vs == nil {
			vs = []policy.Consent{}
		}
		return json.NewEncoder(c.out).Encode(vs)
	}
	if len(vs) == 0 {
		fmt.Fprintln(c.out, "no consent recorded: nothing is shared")
		return nil
	}
	for _, v := range vs {
		fmt.Fprintf(c.out, "%s\n  recorded %s by %s; given %s\n", v.Describe(), v.RecordedAt.UTC().Format(time.RFC3339), v.RecordedBy, v.GivenAt.UTC().Format(time.RFC3339))
		for _, g := range v.Grants {
			fmt.Fprintf(c.out, "  grant  %s\n", g)
		}
		for _, r := range v.Refusals {
			fmt.Fprintf(c.out, "  refuse %s\n", r)
		}
	}
	return nil
}
