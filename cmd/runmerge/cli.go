package main

import (
	"context"
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/runmerge/runmerge/tenantstore"
)

// openStore opens the configured data directory for an operator's command.
// It works beside a running server: both use SQLite's locking, and writes
// wait up to sqlite.busy_timeout for each other. Tenant files opened by the
// command are closed again when done is called; the command's log goes to
// standard error at warn level and above.
func (g *globalFlags) openStore(cmd *cobra.Command) (store *tenantstore.Store, cfg *Config, done func() error, err error) {
	cfg, err = g.load(nil)
	if err != nil {
		return nil, nil, nil, err
	}
	log := newLogger(LogConfig{Level: "warn", Format: cfg.Log.Format}, os.Stderr)
	sc := cfg.storeConfig(log)
	sc.IdleTimeout = 0
	store, err = tenantstore.Open(cmd.Context(), sc)
	if err != nil {
		return nil, nil, nil, err
	}
	done = func() error { return store.Close(context.Background()) }
	return store, cfg, done, nil
}

// closeWith joins the error of a command with that of closing its store.
func closeWith(err error, done func() error) error {
	return errors.Join(err, done())
}
