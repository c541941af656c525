package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one entry of the CLI's table of commands.
type command struct {
	name  string // words, e.g. "config check"
	args  string // usage after the name
	short string
	run   func(c *cli, fs *flag.FlagSet, args []string) error
	flags func(fs *flag.FlagSet) // declares the command's flags before parsing
}

// cli carries the output streams, so commands are testable.
type cli struct {
	out, err io.Writer
}

// errUsage marks an error caused by how the command was called (exit code 2).
var errUsage = errors.New("usage")

var version = "0.1.0-dev"

func commands() []command {
	cmds := []command{
		{name: "dev", args: "[--dir DIR] [--ports auto|fixed]", short: "create a development setup in DIR on first run (CA, certificates, sample directory, accounts) and serve it on 127.0.0.1", run: runDev, flags: devFlags},
		{name: "serve", args: "--config FILE", short: "run the gateway from a configuration file", run: runServe, flags: configFlag},
		{name: "config check", args: "--config FILE", short: "check a configuration file and report every problem with the setting at fault", run: runConfigCheck, flags: configFlag},
		{name: "config doc", short: "print the configuration reference (docs/config.md) generated from the configuration struct", run: runConfigDoc},
		{name: "message list", args: "--config FILE [--json] [--limit N]", short: "list accepted messages (metadata only, never content)", run: runMessageList, flags: messageListFlags},
		{name: "message verify", args: "--config FILE [--json]", short: "decrypt every stored message and check it against its digest", run: runMessageVerify, flags: jsonConfigFlags},
		{name: "status", args: "--config FILE", short: "ask the running gateway for its status over the admin socket", run: runStatus, flags: configFlag},
		{name: "version", short: "print the version", run: func(c *cli, _ *flag.FlagSet, _ []string) error {
			fmt.Fprintln(c.out, "cafgate", version)
			return nil
		}},
	}
	cmds = append(cmds, episodeCommands()...)
	cmds = append(cmds, queueCommands()...)
	cmds = append(cmds, clientCommands()...)
	cmds = append(cmds, directoryCommands()...)
	cmds = append(cmds, pickupCommands()...)
	cmds = append(cmds, ledgerCommands()...)
	return cmds
}

func run(args []string, stdout, stderr io.Writer) int {
	c := &cli{out: stdout, err: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		c.usage(stdout, args)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, rest := find(args)
	if cmd == nil {
		fmt.Fprintf(stderr, "cafgate: unknown command %q\n\n", strings.Join(args, " "))
		c.usage(stderr, nil)
		return 2
	}
	fs := flag.NewFlagSet("cafgate "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: cafgate %s %s\n\n%s\n\n", cmd.name, cmd.args, cmd.short)
		fs.PrintDefaults()
	}
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := cmd.run(c, fs, fs.Args()); err != nil {
		fmt.Fprintf(stderr, "cafgate %s: %v\n", cmd.name, err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

// find picks the command with the longest name matching the first words of args.
func find(args []string) (*command, []string) {
	var best *command
	var rest []string
	cmds := commands()
	for i := range cmds {
		words := strings.Fields(cmds[i].name)
		if len(words) <= len(args) && strings.Join(args[:len(words)], " ") == cmds[i].name {
			if best == nil || len(words) > len(strings.Fields(best.name)) {
				best, rest = &cmds[i], args[len(words):]
			}
		}
	}
	return best, rest
}

func (c *cli) usage(w io.Writer, args []string) {
	if len(args) > 1 {
		if cmd, _ := find(args[1:]); cmd != nil {
			fmt.Fprintf(w, "usage: cafgate %s %s\n\n%s\n", cmd.name, cmd.args, cmd.short)
			return
		}
	}
	fmt.Fprintln(w, "cafgate: secure S/MIME messaging gateway for CAF episodes\n\nusage: cafgate COMMAND [flags]\n\ncommands:")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-16s %s\n", cmd.name, cmd.short)
	}
	fmt.Fprintln(w, "\n`cafgate COMMAND -h` shows a command's flags.")
}

func configFlag(fs *flag.FlagSet) {
	fs.String("config", "/etc/cafgate/cafgate.toml", "configuration file")
}

func jsonConfigFlags(fs *flag.FlagSet) {
	configFlag(fs)
	fs.Bool("json", false, "print JSON")
}

func messageListFlags(fs *flag.FlagSet) {
	jsonConfigFlags(fs)
	fs.Int("limit", 0, "most messages to list (0: all)")
}

func flagString(fs *flag.FlagSet, name string) string { return fs.Lookup(name).Value.String() }

func flagBool(fs *flag.FlagSet, name string) bool { return fs.Lookup(name).Value.String() == "true" }
