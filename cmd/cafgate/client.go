package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"cafgate/mailbox"
)

// clientCommands register, list and revoke the HTTPS API's clients (agency case systems). They open
// the store beside a running gateway, as the episode commands do; the gateway sees a change at the
// client's next request.
func clientCommands() []command {
	return []command{
		{name: "client add", args: "--config FILE --agency AGENCY --name NAME [--cert-fingerprint SHA256] [--by WHO] [--json]",
			short: "register an API client bound to one agency: with an API key (printed once, stored only as a hash) or a client certificate fingerprint (recorded in the ledger with who)",
			run:   runClientAdd, flags: clientAddFlags},
		{name: "client list", args: "--config FILE [--json]", short: "list the API clients, revoked ones included (never a key)",
			run: runClientList, flags: jsonConfigFlags},
		{name: "client revoke", args: "ID --config FILE --reason WHY [--by WHO] [--json]", short: "revoke an API client: its key or certificate is refused from its next request on (recorded in the ledger with who and why)",
			run: runClientRevoke, flags: clientRevokeFlags},
	}
}

func clientAddFlags(fs *flag.FlagSet) {
	jsonConfigFlags(fs)
	fs.String("agency", "", "the agency the client acts for, exactly as the directory names it")
	fs.String("name", "", "what the agency calls the system (e.g. its case management system)")
	fs.String("cert-fingerprint", "", "SHA-256 fingerprint of the client certificate (openssl x509 -noout -fingerprint -sha256); without it the client gets an API key")
	fs.String("by", operator(), "who is registering it, recorded in the ledger (default: the user running the command, the one behind sudo if any)")
}

func clientRevokeFlags(fs *flag.FlagSet) {
	jsonConfigFlags(fs)
	fs.String("by", operator(), "who is revoking it, recorded in the ledger (default: the user running the command, the one behind sudo if any)")
	fs.String("reason", "", "why it is revoked (required; recorded in the ledger)")
}

// operator names the person running an operator command (client, queue, ledger): the user behind
// sudo when there is one (sudo runs the command as root, but the ledger should say who asked), else
// the user running it.
func operator() string {
	if u := strings.TrimSpace(os.Getenv("SUDO_USER")); u != "" && u != "root" {
		return "cli:" + u + " (sudo)"
	}
	return defaultActor()
}

// openClientStore opens the configured store read-write (never creating it).
func openClientStore(ctx context.Context, fs *flag.FlagSet) (*mailbox.Store, error) {
	e, err := openStoreEnv(ctx, fs, false)
	if err != nil {
		return nil, err
	}
	return e.store, nil
}

// clientAdded is `client add --json`: the client and, for a key client, the key (shown only here).
type clientAdded struct {
	mailbox.APIClient
	APIKey string `json:"api_key,omitempty"`
}

func runClientAdd(c *cli, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
	}
	agency, name := strings.TrimSpace(flagString(fs, "agency")), strings.TrimSpace(flagString(fs, "name"))
	if agency == "" || name == "" {
		return fmt.Errorf("%w: --agency and --name are required", errUsage)
	}
	ctx := context.Background()
	st, err := openClientStore(ctx, fs)
	if err != nil {
		return err
	}
	defer st.Close()
	cl, key, err := st.AddAPIClient(ctx, mailbox.NewAPIClient{Agency: agency, Name: name,
		CertFingerprint: flagString(fs, "cert-fingerprint"), By: flagString(fs, "by")})
	if err != nil {
		return err
	}
	if flagBool(fs, "json") {
		return json.NewEncoder(c.out).Encode(clientAdded{APIClient: *cl, APIKey: key})
	}
	fmt.Fprintf(c.out, "client %s registered for %s (%s)\n", cl.ID, cl.Agency, cl.Name)
	if key != "" {
		fmt.Fprintf(c.out, "API key (shown only now; the gateway keeps only its hash):\n%s\n", key)
		fmt.Fprintf(c.out, "The system sends it as \"Authorization: Bearer <key>\" with \"CAF-On-Behalf-Of: <practitioner's mail>\".\n")
	} else {
		fmt.Fprintf(c.out, "It signs in with the client certificate whose SHA-256 fingerprint is %s.\n", cl.CertFingerprint)
	}
	return nil
}

func runClientList(c *cli, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
	}
	ctx := context.Background()
	st, err := openStoreReadOnly(ctx, fs)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.APIClients(ctx)
	if err != nil {
		return err
	}
	if flagBool(fs, "json") {
		if list == nil {
			list = []mailbox.APIClient{}
		}
		return json.NewEncoder(c.out).Encode(list)
	}
	tw := tabwriter.NewWriter(c.out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAGENCY\tNAME\tCREDENTIAL\tCREATED\tREVOKED")
	for _, cl := range list {
		revoked := "-"
		if cl.Revoked() {
			revoked = cl.RevokedAt.UTC().Format(time.RFC3339) + " by " + cl.RevokedBy
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", cl.ID, cl.Agency, cl.Name, cl.Credential, cl.CreatedAt.UTC().Format(time.RFC3339), revoked)
	}
	return tw.Flush()
}

func runClientRevoke(c *cli, fs *flag.FlagSet, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: give the client's ID (cafgate client list shows it)", errUsage)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	reason := strings.TrimSpace(flagString(fs, "reason"))
	if reason == "" {
		return fmt.Errorf("%w: --reason is required: say why the client is revoked (it is recorded in the ledger)", errUsage)
	}
	ctx := context.Background()
	st, err := openClientStore(ctx, fs)
	if err != nil {
		return err
	}
	defer st.Close()
	cl, err := st.RevokeAPIClient(ctx, args[0], flagString(fs, "by"), reason)
	if err != nil {
		return err
	}
	if flagBool(fs, "json") {
		return json.NewEncoder(c.out).Encode(cl)
	}
	fmt.Fprintf(c.out, "client %s (%s, %s) revoked at %s by %s\n", cl.ID, cl.Agency, cl.Name, cl.RevokedAt.UTC().Format(time.RFC3339), cl.RevokedBy)
	return nil
}
