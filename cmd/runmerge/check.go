package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/runmerge/runmerge/tenantstore"
)

func newCheckCommand(g *globalFlags) *cobra.Command {
	var opts tenantstore.CheckOptions
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check the integrity of every tenant file",
		Long: `Check the file of every tenant in the catalog: that it exists, is a Runmerge
tenant file of a schema version this build knows, and passes SQLite's
PRAGMA integrity_check (which covers the search index too). Files in the
tenants directory that belong to no tenant are reported as strays.

It reads through connections of its own and works beside a running server.
It exits non-zero when any tenant fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Parallel < 0 || opts.Parallel > 256 {
				return fmt.Errorf("--parallel must be from 1 to 256, got %d", opts.Parallel)
			}
			store, _, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			return closeWith(checkAll(cmd, store, opts), done)
		},
	}
	cmd.Flags().IntVar(&opts.Parallel, "parallel", 0, "tenant files checked at once (default: the CPUs)")
	cmd.Flags().BoolVar(&opts.Quick, "quick", false,
		"run PRAGMA quick_check, which skips comparing indexes with their tables")
	return cmd
}

func checkAll(cmd *cobra.Command, store *tenantstore.Store, opts tenantstore.CheckOptions) error {
	start := time.Now()
	bar := newProgress(cmd.ErrOrStderr(), 1, "check")
	if bar != nil {
		opts.Progress = func(done, total int) {
			bar.ChangeMax(total)
			bar.Set(done)
		}
	}
	sum, err := store.CheckAll(cmd.Context(), opts)
	if bar != nil {
		bar.Finish()
	}
	if sum == nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%d tenants checked: %d sound, %d failed, in %s\n",
		sum.OK+len(sum.Failed), sum.OK, len(sum.Failed), time.Since(start).Round(time.Millisecond))
	if len(sum.Failed) > 0 {
		printFailures(cmd.ErrOrStderr(), sum.Failed, 50)
	}
	for _, s := range sum.Strays {
		fmt.Fprintf(cmd.ErrOrStderr(), "  stray file belonging to no tenant: %s\n", s)
	}
	if err != nil {
		return err
	}
	if len(sum.Failed) > 0 {
		return fmt.Errorf("%d of %d tenant files failed the check", len(sum.Failed), sum.Total)
	}
	return nil
}
