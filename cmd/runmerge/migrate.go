package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/runmerge/runmerge/tenantstore"
)

func newMigrateCommand(g *globalFlags) *cobra.Command {
	var parallel int
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring every tenant file to this build's schema version",
		Long: `Bring the file of every tenant to the schema version of this build, several
files at a time, recording each tenant's version, or the error that stopped
it, in the catalog (runmerge tenants list shows both).

Tenants the catalog records at the current version are skipped, so a run
that was interrupted (Ctrl-C) picks up where it stopped when run again; a
tenant interrupted mid-migration is left at its old version, since each
migration is one transaction. The server also migrates a tenant's file when
it opens it, so migrate is how to do them all at once, ahead of traffic.

Run it with the new build. A server of the old build refuses files of a
newer version, so stop old servers first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if parallel < 0 || parallel > 256 {
				return fmt.Errorf("--parallel must be from 1 to 256, got %d", parallel)
			}
			store, _, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			return closeWith(migrateAll(cmd, store, parallel), done)
		},
	}
	cmd.Flags().IntVar(&parallel, "parallel", 0, "tenant files migrated at once (default: twice the CPUs)")
	return cmd
}

func migrateAll(cmd *cobra.Command, store *tenantstore.Store, parallel int) error {
	start := time.Now()
	bar := newProgress(cmd.ErrOrStderr(), 1, "migrate")
	var progress func(done, total int)
	if bar != nil {
		progress = func(done, total int) {
			bar.ChangeMax(total)
			bar.Set(done)
		}
	}
	opts := tenantstore.MigrateOptions{Parallel: parallel, Progress: progress}
	sum, err := store.MigrateAll(cmd.Context(), opts)
	if bar != nil {
		bar.Finish()
	}
	if sum != nil {
		took := time.Since(start)
		rate := ""
		if secs := took.Seconds(); secs > 0 && sum.Total > 0 {
			rate = fmt.Sprintf(" (%.0f tenants/s)", float64(sum.Migrated+sum.Current+len(sum.Failed))/secs)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "schema version %d: %d migrated, %d already current, %d failed, "+
			"of %d tenants to look at, in %s%s\n", sum.Version, sum.Migrated, sum.Current, len(sum.Failed),
			sum.Total, took.Round(time.Millisecond), rate)
		if len(sum.Failed) > 0 {
			printFailures(cmd.ErrOrStderr(), sum.Failed, 20)
		}
	}
	if err != nil {
		return err
	}
	if len(sum.Failed) > 0 {
		return fmt.Errorf("%d tenants could not be migrated", len(sum.Failed))
	}
	return nil
}
