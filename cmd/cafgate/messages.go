package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"time"

	"cafgate/mailbox"
)

// openStoreReadOnly opens the configured store for reading; it never creates a database or a key.
func openStoreReadOnly(ctx context.Context, fs *flag.FlagSet) (*mailbox.Store, error) {
	e, err := openStoreEnv(ctx, fs, true)
	if err != nil {
		return nil, err
	}
	return e.store, nil
}

type messageJSON struct {
	ID         string    `json:"id"`
	Sender     string    `json:"sender"`
	Recipients []string  `json:"recipients"`
	Via        string    `json:"via"`
	ReceivedAt time.Time `json:"received_at"`
	Size       int       `json:"size"`
	SHA256     string    `json:"sha256"`
}

func runMessageList(c *cli, fs *flag.FlagSet, _ []string) error {
	ctx := context.Background()
	st, err := openStoreReadOnly(ctx, fs)
	if err != nil {
		return err
	}
	defer st.Close()
	limit := 0
	fmt.Sscan(flagString(fs, "limit"), &limit)
	if limit <= 0 {
		limit = int(^uint(0) >> 1)
	}
	out := []messageJSON{}
	var after int64
	for len(out) < limit {
		page, err := st.List(ctx, mailbox.ListOptions{Limit: min(1000, limit-len(out)), After: after})
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		for _, s := range page {
			out = append(out, messageJSON{s.ID, s.Sender, s.Recipients, s.Via, s.ReceivedAt, s.Size, s.Digest})
		}
		after = page[len(page)-1].Seq
	}
	if flagBool(fs, "json") {
		return json.NewEncoder(c.out).Encode(out)
	}
	fmt.Fprintf(c.out, "%-16s  %-20s  %-30s  %8s  %s\n", "ID", "RECEIVED", "SENDER", "SIZE", "RECIPIENTS")
	for _, m := range out {
		fmt.Fprintf(c.out, "%-16s  %-20s  %-30s  %8d  %s\n", m.ID, m.ReceivedAt.Format(time.RFC3339), m.Sender, m.Size, strings.Join(m.Recipients, ","))
	}
	return nil
}

func runMessageVerify(c *cli, fs *flag.FlagSet, _ []string) error {
	ctx := context.Background()
	st, err := openStoreReadOnly(ctx, fs)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := st.Verify(ctx)
	if err != nil {
		return err
	}
	if rep.Failed == nil {
		rep.Failed = []string{}
	}
	if flagBool(fs, "json") {
		_ = json.NewEncoder(c.out).Encode(map[string]any{"checked": rep.Messages, "ok": rep.OK, "failed": rep.Failed, "sqlite_check": rep.SQLiteCheck})
	} else {
		fmt.Fprintf(c.out, "checked %d messages: %d intact, %d failed; SQLite quick_check: %s\n", rep.Messages, rep.OK, len(rep.Failed), rep.SQLiteCheck)
		for _, id := range rep.Failed {
			fmt.Fprintln(c.out, "FAILED", id)
		}
	}
	if len(rep.Failed) > 0 || rep.SQLiteCheck != "ok" {
		return fmt.Errorf("%d messages failed verification", len(rep.Failed))
	}
	return nil
}
