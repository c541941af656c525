package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"cafgate/configs"
	"cafgate/mailbox"
)

// storeEnv is the configuration and the store of record a CLI command works with.
type storeEnv struct {
	cfg        *configs.Config
	store      *mailbox.Store
	contentKey []byte
}

// openStoreEnv opens the store of the --config file: read-write beside the running gateway (SQLite
// WAL allows it), or read-only. It never creates a database or a key: a gateway must have run first.
func openStoreEnv(ctx context.Context, fs *flag.FlagSet, readOnly bool) (*storeEnv, error) {
	cfg, err := configs.Load(flagString(fs, "config"))
	if err != nil {
		return nil, err
	}
	for _, p := range []string{cfg.Store.Database, cfg.Store.ContentKeyFile} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("no store here yet (start the gateway once first): %w", err)
		}
	}
	key, err := mailbox.LoadOrCreateKey(cfg.Store.ContentKeyFile)
	if err != nil {
		return nil, err
	}
	var st *mailbox.Store
	if readOnly {
		st, err = mailbox.OpenReadOnly(ctx, cfg.Store.Database, key)
	} else {
		st, err = mailbox.Open(ctx, mailbox.Options{Path: cfg.Store.Database, ContentKey: key, Ledger: ledgerOptions(cfg)})
	}
	if err != nil {
		return nil, err
	}
	return &storeEnv{cfg: cfg, store: st, contentKey: key}, nil
}
