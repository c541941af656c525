package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"cafgate/configs"
	"cafgate/gateway/relay"
	"cafgate/mailbox"
)

// queueCommands are `cafgate queue list | retry ID | hold ID | drop ID --reason TEXT | pause | resume`.
// They open the configured store read-write beside a running gateway; the gateway's relay sees the
// change at its next look at the queue (relay.poll_interval), its delivery pipeline a pause or resume
// at its next round (within 2 s).
func queueCommands() []command {
	return []command{
		{name: "queue list", args: "--config FILE [--json] [--state STATE] [--limit N]", short: "list the outbound queue (metadata only, never content)", run: runQueueList, flags: queueListFlags},
		{name: "queue retry", args: "ID --config FILE", short: "attempt a queued entry now (a held one is released)", run: runQueueRetry, flags: configFlag},
		{name: "queue hold", args: "ID --config FILE", short: "keep a queued entry back until `queue retry`", run: runQueueHold, flags: configFlag},
		{name: "queue drop", args: "ID --reason TEXT --config FILE", short: "give a queued or held entry up; its sender gets a failure report with the reason", run: runQueueDrop, flags: queueDropFlags},
		{name: "queue pause", args: "--reason TEXT --config FILE", short: "hold all delivery: mail is still accepted, but no copy is made or queued until `queue resume`", run: runQueuePause, flags: queuePauseFlags},
		{name: "queue resume", args: "--config FILE", short: "lift `queue pause`: every recipient held back is delivered", run: runQueueResume, flags: configFlag},
	}
}

func queueListFlags(fs *flag.FlagSet) {
	jsonConfigFlags(fs)
	fs.String("state", "", "only entries in this state: queued, sending, held, delivered or failed")
	fs.Int("limit", 1000, "most entries to list")
}

func queuePauseFlags(fs *flag.FlagSet) {
	configFlag(fs)
	fs.String("reason", "", "why delivery is held (required; shown by queue list)")
}

func queueDropFlags(fs *flag.FlagSet) {
	configFlag(fs)
	fs.String("reason", "", "why the entry is dropped (required; told to the sender)")
}

// queueEnv is the store and configuration the queue commands work with.
type queueEnv struct {
	store *mailbox.Store
	cfg   *configs.Config
}

// openQueueEnv opens the configured store read-write, never creating a database or a key.
func openQueueEnv(ctx context.Context, fs *flag.FlagSet) (*queueEnv, error) {
	e, err := openStoreEnv(ctx, fs, false)
	if err != nil {
		return nil, err
	}
	return &queueEnv{store: e.store, cfg: e.cfg}, nil
}

// queueIDArg takes the queue ID from the first argument and parses any flags after it, so both
// `queue drop ID --reason X` and `queue drop --reason X ID` work.
func queueIDArg(fs *flag.FlagSet, args []string) (string, error) {
	if len(args) == 0 {
		return "", fmt.Errorf("%w: give the queue ID (see cafgate queue list)", errUsage)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return "", fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	return strings.TrimSpace(args[0]), nil
}

type queueJSON struct {
	ID              string    `json:"id"`
	MessageID       string    `json:"message_id"`
	Kind            string    `json:"kind"`
	State           string    `json:"state"`
	From            string    `json:"from"`
	Recipient       string    `json:"recipient"`
	Attempts        int       `json:"attempts"`
	NextAttempt     time.Time `json:"next_attempt"`
	FirstQueued     time.Time `json:"first_queued"`
	LastHost        string    `json:"last_host,omitempty"`
	LastAnswer      string    `json:"last_answer,omitempty"`
	HeaderMessageID string    `json:"header_message_id"`
	Size            int       `json:"size"`
}

func runQueueList(c *cli, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
	}
	state := flagString(fs, "state")
	switch state {
	case "", mailbox.QueueQueued, mailbox.QueueSending, mailbox.QueueHeld, mailbox.QueueDelivered, mailbox.QueueFailed:
	default:
		return fmt.Errorf("%w: --state must be queued, sending, held, delivered or failed", errUsage)
	}
	limit := 1000
	fmt.Sscan(flagString(fs, "limit"), &limit)
	ctx := context.Background()
	env, err := openQueueEnv(ctx, fs)
	if err != nil {
		return err
	}
	defer env.store.Close()
	entries, err := env.store.QueueList(ctx, mailbox.QueueFilter{State: state, Limit: limit})
	if err != nil {
		return err
	}
	out := make([]queueJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, queueJSON{e.ID, e.MessageID, e.Kind, e.State, e.From, e.Recipient, e.Attempts, e.NextAttempt,
			e.FirstQueued, e.LastHost, e.LastAnswer, e.HeaderMessageID, e.Size})
	}
	if flagBool(fs, "json") {
		return json.NewEncoder(c.out).Encode(out)
	}
	if h, held, err := env.store.DeliveryHeld(ctx); err != nil {
		return err
	} else if held {
		fmt.Fprintf(c.out, "delivery paused since %s by %s: %s (cafgate queue resume lifts it)\n",
			h.Since.UTC().Format(time.RFC3339), h.By, h.Reason)
	}
	fmt.Fprintf(c.out, "%-17s  %-9s  %-7s  %3s  %-20s  %-32s  %s\n", "ID", "STATE", "KIND", "TRY", "NEXT", "RECIPIENT", "LAST ANSWER")
	for _, e := range out {
		next := "-"
		if e.State == mailbox.QueueQueued || e.State == mailbox.QueueSending {
			next = e.NextAttempt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(c.out, "%-17s  %-9s  %-7s  %3d  %-20s  %-32s  %s\n", e.ID, e.State, e.Kind, e.Attempts, next, e.Recipient, queueClip(e.LastAnswer, 80))
	}
	return nil
}

func runQueueRetry(c *cli, fs *flag.FlagSet, args []string) error {
	return queueAction(c, fs, args, "due now", func(ctx context.Context, env *queueEnv, id string) error {
		return env.store.RetryNow(ctx, id)
	})
}

func runQueueHold(c *cli, fs *flag.FlagSet, args []string) error {
	return queueAction(c, fs, args, "held", func(ctx context.Context, env *queueEnv, id string) error {
		return env.store.Hold(ctx, id)
	})
}

func runQueueDrop(c *cli, fs *flag.FlagSet, args []string) error {
	return queueAction(c, fs, args, "dropped; a failure report to the sender is queued", func(ctx context.Context, env *queueEnv, id string) error {
		reason := strings.TrimSpace(flagString(fs, "reason"))
		if reason == "" {
			return fmt.Errorf("%w: --reason is required: the sender is told why", errUsage)
		}
		e, err := env.store.QueueGet(ctx, id)
		if err != nil {
			return err
		}
		content, err := env.store.QueueContent(ctx, id)
		if err != nil && !errors.Is(err, mailbox.ErrCorrupt) {
			return err
		}
		if content == nil && e.Kind == mailbox.KindMessage {
			content = copyHeaderOf(e) // a package copy queued by recipe: not stored, not built yet
		}
		host := env.cfg.Relay.HeloName
		if host == "" {
			host = env.cfg.Hostname
		}
		notice, err := relay.DropNotice(host, e, content, reason, time.Now())
		if err != nil {
			return fmt.Errorf("building the report to the sender: %w", err)
		}
		return env.store.Drop(ctx, id, reason, notice)
	})
}

func runQueuePause(c *cli, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
	}
	reason := strings.TrimSpace(flagString(fs, "reason"))
	if reason == "" {
		return fmt.Errorf("%w: --reason is required: queue list shows why delivery is held", errUsage)
	}
	ctx := context.Background()
	env, err := openQueueEnv(ctx, fs)
	if err != nil {
		return err
	}
	defer env.store.Close()
	if err := env.store.HoldDelivery(ctx, mailbox.DeliveryHold{By: operator(), Reason: reason, Since: time.Now()}); err != nil {
		return err
	}
	fmt.Fprintln(c.out, "delivery paused: mail is still accepted; no copy is made or queued until cafgate queue resume"+
		" (copies already in the queue are still sent: cafgate queue hold ID keeps one back)")
	return nil
}

func runQueueResume(c *cli, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
	}
	ctx := context.Background()
	env, err := openQueueEnv(ctx, fs)
	if err != nil {
		return err
	}
	defer env.store.Close()
	was, err := env.store.ReleaseDelivery(ctx)
	if err != nil {
		return err
	}
	if !was {
		fmt.Fprintln(c.out, "delivery was not paused")
		return nil
	}
	fmt.Fprintln(c.out, "delivery resumed: recipients held back are delivered from the gateway's next round")
	return nil
}

// queueAction parses the ID, opens the store, runs do and explains the store's refusals plainly.
func queueAction(c *cli, fs *flag.FlagSet, args []string, done string, do func(context.Context, *queueEnv, string) error) error {
	id, err := queueIDArg(fs, args)
	if err != nil {
		return err
	}
	ctx := context.Background()
	env, err := openQueueEnv(ctx, fs)
	if err != nil {
		return err
	}
	defer env.store.Close()
	err = do(ctx, env, id)
	switch {
	case errors.Is(err, mailbox.ErrNotFound):
		return fmt.Errorf("no queue entry %s (see cafgate queue list)", id)
	case errors.Is(err, mailbox.ErrBusy):
		return fmt.Errorf("queue entry %s is being sent right now; try again once the attempt is over", id)
	case errors.Is(err, mailbox.ErrQueueState):
		return fmt.Errorf("%v", strings.TrimPrefix(err.Error(), "mailbox: "))
	case err != nil:
		return err
	}
	fmt.Fprintf(c.out, "%s: %s\n", id, done)
	return nil
}

func queueClip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// copyHeaderOf is the header block a failure report quotes for a package copy that was never built
// (queued by recipe): its envelope and its Message-ID, all checked when it was queued.
func copyHeaderOf(e *mailbox.QueueEntry) []byte {
	return []byte("From: <" + e.From + ">\r\nTo: <" + e.Recipient + ">\r\nMessage-ID: " + e.HeaderMessageID + "\r\n\r\n")
}
