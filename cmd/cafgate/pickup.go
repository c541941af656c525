package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os/user"
	"strings"
	"time"

	"cafgate/configs"
	"cafgate/directory"
	"cafgate/mailbox"
)

// pickupCommands are the administrator's side of the one-time links and the pickup page's second
// factor: `cafgate totp enrol|unlock|status MAIL` and `cafgate link list | revoke ID | unlock ID`. They
// open the configured store read-write beside a running gateway, as the queue commands do.
func pickupCommands() []command {
	return []command{
		{name: "totp enrol", args: "MAIL --config FILE [--json]", short: "print a one-time enrolment code for MAIL's authenticator (resets any earlier one); give it to them in person or by phone", run: runTOTPEnrol, flags: pickupAdminFlags},
		{name: "totp unlock", args: "MAIL --config FILE", short: "lift the pickup page lock-out of MAIL after too many failed sign-ins", run: runTOTPUnlock, flags: configFlag},
		{name: "totp status", args: "MAIL --config FILE [--json]", short: "show whether MAIL has an authenticator, an open enrolment code or a lock-out", run: runTOTPStatus, flags: jsonConfigFlags},
		{name: "link list", args: "--config FILE [--json] [--state STATE] [--recipient MAIL] [--message ID] [--limit N]", short: "list one-time links (never their secrets)", run: runLinkList, flags: linkListFlags},
		{name: "link revoke", args: "ID --reason TEXT --config FILE [--by NAME]", short: "revoke a one-time link at once; the ledger records who and why", run: runLinkRevoke, flags: linkRevokeFlags},
		{name: "link unlock", args: "ID --config FILE", short: "lift a link's lock-out after too many failed sign-ins through it", run: runLinkUnlock, flags: configFlag},
	}
}

func pickupAdminFlags(fs *flag.FlagSet) {
	jsonConfigFlags(fs)
	fs.String("by", "", "who issues the code, for the record (default: admin:<login name>)")
}

func linkListFlags(fs *flag.FlagSet) {
	jsonConfigFlags(fs)
	fs.String("state", "", "only links in this state: active, revoked or expired")
	fs.String("recipient", "", "only links issued to this mail address")
	fs.String("message", "", "only links to this message ID")
	fs.Int("limit", 1000, "most links to list")
}

func linkRevokeFlags(fs *flag.FlagSet) {
	configFlag(fs)
	fs.String("reason", "", "why the link is revoked (required; recorded in the ledger)")
	fs.String("by", "", "who revokes it (default: admin:<login name>)")
}

// pickupEnv is the configuration and store the commands work with.
type pickupEnv struct {
	cfg   *configs.Config
	store *mailbox.Store
}

// openPickupEnv opens the configured store read-write, never creating a database or a key.
func openPickupEnv(ctx context.Context, fs *flag.FlagSet) (*pickupEnv, error) {
	e, err := openStoreEnv(ctx, fs, false)
	if err != nil {
		return nil, err
	}
	return &pickupEnv{cfg: e.cfg, store: e.store}, nil
}

// oneArg takes the command's one argument (MAIL or ID) and parses any flags after it, so both
// `link revoke ID --reason X` and `link revoke --reason X ID` work.
func oneArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	if len(args) == 0 {
		return "", fmt.Errorf("%w: give the %s", errUsage, what)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return "", fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	return strings.TrimSpace(args[0]), nil
}

// adminName is --by, or admin:<login name>.
func adminName(fs *flag.FlagSet) string {
	if by := strings.TrimSpace(flagString(fs, "by")); by != "" {
		return by
	}
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	return "admin:" + name
}

// mailArg reads and normalises the MAIL argument.
func mailArg(fs *flag.FlagSet, args []string) (string, error) {
	m, err := oneArg(fs, args, "practitioner's mail address")
	if err != nil {
		return "", err
	}
	m = strings.ToLower(m)
	if !mailbox.ValidAddress(m) {
		return "", fmt.Errorf("%w: %q is not a mail address", errUsage, m)
	}
	return m, nil
}

func runTOTPEnrol(c *cli, fs *flag.FlagSet, args []string) error {
	mail, err := mailArg(fs, args)
	if err != nil {
		return err
	}
	ctx := context.Background()
	env, err := openPickupEnv(ctx, fs)
	if err != nil {
		return err
	}
	defer env.store.Close()
	p, err := checkPractitioner(ctx, env.cfg, mail)
	if err != nil {
		return err
	}
	lifetime := env.cfg.Pickup.EnrolmentLifetime.D()
	code, err := env.store.IssueEnrolment(ctx, mail, adminName(fs), lifetime)
	if err != nil {
		return err
	}
	expires := time.Now().Add(lifetime).UTC().Truncate(time.Second)
	if flagBool(fs, "json") {
		return json.NewEncoder(c.out).Encode(map[string]any{"mail": mail, "code": code, "expires": expires, "agency": p.Agency})
	}
	fmt.Fprintf(c.out, "Enrolment code for %s (%s): %s\n", mail, p.Agency, code)
	fmt.Fprintf(c.out, "It works once, until %s. Any authenticator %s had is reset now.\n", expires.Format(time.RFC3339), mail)
	fmt.Fprintln(c.out, "Give it to the practitioner in person or by phone, not by mail. They enter it with their")
	fmt.Fprintf(c.out, "directory password at %senrol to set up their authenticator app.\n", env.cfg.PickupBaseURL())
	return nil
}

// checkPractitioner refuses to issue a code for an address no directory knows or that may not receive.
func checkPractitioner(ctx context.Context, cfg *configs.Config, mail string) (*directory.Practitioner, error) {
	dir, err := openDirectories(cfg.Directories)
	if err != nil {
		return nil, err
	}
	p, err := dir.Lookup(ctx, mail)
	switch {
	case errors.Is(err, directory.ErrNotFound):
		return nil, fmt.Errorf("no practitioner %s in any directory; nothing was issued", mail)
	case err != nil:
		return nil, fmt.Errorf("looking %s up in the directory (nothing was issued): %w", mail, err)
	}
	if err := p.Standing(time.Now()); err != nil {
		return nil, fmt.Errorf("%s may not receive through the gateway (%v); nothing was issued", mail, err)
	}
	return p, nil
}

func runTOTPUnlock(c *cli, fs *flag.FlagSet, args []string) error {
	mail, err := mailArg(fs, args)
	if err != nil {
		return err
	}
	ctx := context.Background()
	env, err := openPickupEnv(ctx, fs)
	if err != nil {
		return err
	}
	defer env.store.Close()
	lifted, err := env.store.UnlockAccount(ctx, mail)
	if err != nil {
		return err
	}
	if lifted {
		fmt.Fprintf(c.out, "%s may sign in to the pickup page again.\n", mail)
	} else {
		fmt.Fprintf(c.out, "%s was not locked out; nothing to do.\n", mail)
	}
	return nil
}

func runTOTPStatus(c *cli, fs *flag.FlagSet, args []string) error {
	mail, err := mailArg(fs, args)
	if err != nil {
		return err
	}
	ctx := context.Background()
	env, err := openPickupEnv(ctx, fs)
	if err != nil {
		return err
	}
	defer env.store.Close()
	st, err := env.store.TOTPStatusOf(ctx, mail)
	if err != nil {
		return err
	}
	if flagBool(fs, "json") {
		return json.NewEncoder(c.out).Encode(map[string]any{"mail": mail, "enrolled": st.Enrolled,
			"enrolled_at": st.EnrolledAt, "enrolment_open": st.EnrolmentOpen, "code_expires": st.CodeExpires,
			"code_issued_by": st.CodeIssuedBy, "locked": st.Locked})
	}
	fmt.Fprintf(c.out, "%s: authenticator %s", mail, map[bool]string{true: "enrolled " + st.EnrolledAt.UTC().Format(time.RFC3339), false: "not enrolled"}[st.Enrolled])
	if st.EnrolmentOpen {
		fmt.Fprintf(c.out, "; enrolment code issued by %s, valid until %s", st.CodeIssuedBy, st.CodeExpires.UTC().Format(time.RFC3339))
	}
	if st.Locked {
		fmt.Fprint(c.out, "; LOCKED OUT (cafgate totp unlock)")
	}
	fmt.Fprintln(c.out)
	return nil
}

type linkJSON struct {
	ID           string    `json:"id"`
	State        string    `json:"state"`
	MessageID    string    `json:"message_id"`
	Recipient    string    `json:"recipient"`
	Episode      string    `json:"episode,omitempty"`
	Created      time.Time `json:"created"`
	Expires      time.Time `json:"expires"`
	Downloads    int       `json:"downloads"`
	MaxDownloads int       `json:"max_downloads"`
	Failures     int       `json:"failures"`
	Opened       time.Time `json:"opened,omitzero"`
	Ended        time.Time `json:"ended,omitzero"`
	EndedBy      string    `json:"ended_by,omitempty"`
	EndReason    string    `json:"end_reason,omitempty"`
}

func runLinkList(c *cli, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
	}
	state := flagString(fs, "state")
	switch state {
	case "", mailbox.LinkActive, mailbox.LinkRevoked, mailbox.LinkExpired:
	default:
		return fmt.Errorf("%w: --state must be active, revoked or expired", errUsage)
	}
	limit := 1000
	fmt.Sscan(flagString(fs, "limit"), &limit)
	ctx := context.Background()
	env, err := openPickupEnv(ctx, fs)
	if err != nil {
		return err
	}
	defer env.store.Close()
	links, err := env.store.ListLinks(ctx, mailbox.LinkFilter{State: state, Recipient: flagString(fs, "recipient"),
		MessageID: flagString(fs, "message"), Limit: limit})
	if err != nil {
		return err
	}
	out := make([]linkJSON, 0, len(links))
	for _, l := range links {
		out = append(out, linkJSON{l.ID, l.State, l.MessageID, l.Recipient, l.Episode, l.Created, l.Expires,
			l.Downloads, l.MaxDownloads, l.Failures, l.Opened, l.Ended, l.EndedBy, l.EndReason})
	}
	if flagBool(fs, "json") {
		return json.NewEncoder(c.out).Encode(out)
	}
	fmt.Fprintf(c.out, "%-17s  %-7s  %-16s  %-32s  %-20s  %-9s  %s\n", "ID", "STATE", "MESSAGE", "RECIPIENT", "EXPIRES", "DOWNLOADS", "FAILURES")
	for _, l := range out {
		fmt.Fprintf(c.out, "%-17s  %-7s  %-16s  %-32s  %-20s  %4d/%-4d  %d\n", l.ID, l.State, l.MessageID, l.Recipient,
			l.Expires.UTC().Format(time.RFC3339), l.Downloads, l.MaxDownloads, l.Failures)
	}
	return nil
}

func runLinkRevoke(c *cli, fs *flag.FlagSet, args []string) error {
	return linkAction(c, fs, args, "revoked", func(ctx context.Context, st *mailbox.Store, id string) error {
		reason := strings.TrimSpace(flagString(fs, "reason"))
		if reason == "" {
			return fmt.Errorf("%w: --reason is required: the ledger records why", errUsage)
		}
		return st.RevokeLink(ctx, id, adminName(fs), reason)
	})
}

func runLinkUnlock(c *cli, fs *flag.FlagSet, args []string) error {
	return linkAction(c, fs, args, "unlocked", func(ctx context.Context, st *mailbox.Store, id string) error {
		return st.UnlockLink(ctx, id)
	})
}

// linkAction parses the link ID, opens the store, runs do and explains the store's refusals plainly.
func linkAction(c *cli, fs *flag.FlagSet, args []string, done string, do func(context.Context, *mailbox.Store, string) error) error {
	id, err := oneArg(fs, args, "link ID (see cafgate link list)")
	if err != nil {
		return err
	}
	if !mailbox.ValidLinkID(id) {
		return fmt.Errorf("%w: %q is not a link ID (see cafgate link list)", errUsage, id)
	}
	ctx := context.Background()
	env, err := openPickupEnv(ctx, fs)
	if err != nil {
		return err
	}
	defer env.store.Close()
	err = do(ctx, env.store, id)
	switch {
	case errors.Is(err, mailbox.ErrLinkNotFound):
		return fmt.Errorf("no link %s (see cafgate link list)", id)
	case errors.Is(err, mailbox.ErrLinkRevoked):
		return fmt.Errorf("link %s was already revoked", id)
	case errors.Is(err, mailbox.ErrLinkExpired):
		return fmt.Errorf("link %s has expired", id)
	case err != nil:
		return err
	}
	fmt.Fprintf(c.out, "link %s %s\n", id, done)
	return nil
}
