package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/handlers"
	"github.com/runmerge/runmerge/tenantstore"
)

func newRestoreCommand(g *globalFlags) *cobra.Command {
	var from string
	var list bool
	cmd := &cobra.Command{
		Use:   "restore ID [--from SNAPSHOT]",
		Short: "Bring a tenant back from a backup snapshot",
		Long: `Replace tenant ID's data with one of its snapshots in backup.dir, the newest
unless --from names another (by its file name or time, as --list shows them,
or as the path of any export file). A deleted tenant is created again. The
snapshot is checked as runmerge import checks a file.

Beside a running server, the restore is refused while the server has the
tenant open; stop the server, or restore through PUT /v1/tenants/{id}/import
with the snapshot file as the body.`,
		Example: `  runmerge restore acme --list
  runmerge restore acme
  runmerge restore acme --from 20260501T090000.000Z`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, cfg, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			if cfg.Backup.Dir == "" {
				return closeWith(errNoBackups, done)
			}
			dir, err := filepath.Abs(cfg.Backup.Dir)
			if err != nil {
				return closeWith(err, done)
			}
			if list {
				return closeWith(listSnapshots(cmd, dir, args[0]), done)
			}
			start := time.Now()
			res, used, err := store.RestoreTenant(cmd.Context(), dir, args[0], from)
			if err != nil {
				return closeWith(fmt.Errorf("restore tenant %q: %w", args[0], plain(err)), done)
			}
			reportImport(cmd, res, used, time.Since(start))
			return done()
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the snapshot to restore (default: the newest)")
	cmd.Flags().BoolVar(&list, "list", false, "list the tenant's snapshots instead")
	return cmd
}

func listSnapshots(cmd *cobra.Command, dir, id string) error {
	snaps, err := tenantstore.ListSnapshots(dir, id)
	if err != nil {
		return plain(err)
	}
	if len(snaps) == 0 {
		return fmt.Errorf("no snapshot of tenant %q in %s", id, dir)
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SNAPSHOT\tTAKEN\tSIZE")
	for _, s := range snaps {
		fmt.Fprintf(w, "%s\t%s\t%s\n", filepath.Base(s.Path), runmerge.FormatTime(s.TakenAt), byteSize(s.Size))
	}
	return w.Flush()
}

// startBackups starts the backup scheduler of serve when backup.dir is set,
// and adds its counters to srv's metrics. It returns nil when backups are
// off; Close of a nil *tenantstore.Backups does nothing.
func startBackups(cfg *Config, store *tenantstore.Store, srv *handlers.Server, log *slog.Logger) (
	*tenantstore.Backups, error) {
	if cfg.Backup.Dir == "" {
		return nil, nil
	}
	dir, err := filepath.Abs(cfg.Backup.Dir)
	if err != nil {
		return nil, fmt.Errorf("backup.dir: %w", err)
	}
	b, err := store.NewBackups(tenantstore.BackupConfig{
		Dir: dir, Interval: cfg.Backup.Interval, Keep: cfg.Backup.Keep, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if err := srv.MonitorBackups(b); err != nil {
		return nil, err
	}
	b.Start()
	log.Info("backups on", "dir", dir, "interval", cfg.Backup.Interval, "keep", cfg.Backup.Keep)
	return b, nil
}
