package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

func newTenantsCommand(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tenants",
		Short: "Create, list, show, suspend, resume and delete tenants",
		Long: `Manage tenants on the data directory, beside a running server or not.

A tenant is one SQLite file, <data-dir>/tenants/<id>.db, and a row in the
catalog. Tenant ids match ^[a-z0-9][a-z0-9-]{0,62}$.`,
	}
	cmd.AddCommand(
		newTenantsCreateCommand(g),
		newTenantsListCommand(g),
		newTenantsShowCommand(g),
		newTenantsStatusCommand(g, "suspend", runmerge.TenantSuspended,
			"Suspend a tenant: its data requests answer 403 tenant_suspended"),
		newTenantsStatusCommand(g, "resume", runmerge.TenantActive, "Resume a suspended tenant"),
		newTenantsDeleteCommand(g),
	)
	return cmd
}

// plain turns a domain error into its message alone, the way an operator
// wants to read it; other errors are shown as they are.
func plain(err error) error {
	var e *runmerge.Error
	if errors.As(err, &e) {
		msg := e.Message
		if len(e.Fields) > 0 {
			msg += ": " + e.Fields[0].Detail
		}
		return errors.New(msg)
	}
	return err
}

func newTenantsCreateCommand(g *globalFlags) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:     "create ID",
		Short:   "Create a tenant and its file",
		Example: `  runmerge tenants create acme --name "Acme Events"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			if name == "" {
				name = args[0]
			}
			t, err := store.CreateTenant(cmd.Context(), args[0], name)
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "created tenant %s (%s)\n", t.ID, t.Name)
			}
			return closeWith(plain(err), done)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the tenant's display name (default: its id)")
	return cmd
}

func newTenantsListCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List every tenant with its status and schema version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			return closeWith(listTenants(cmd, store), done)
		},
	}
}

func listTenants(cmd *cobra.Command, store *tenantstore.Store) error {
	ctx := cmd.Context()
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tSTATUS\tSCHEMA\tCREATED\tLAST CHANGE")
	f := runmerge.TenantFilter{Limit: 500}
	for {
		list, err := store.Catalog.TenantInfos(ctx, f)
		if err != nil {
			return err
		}
		for _, t := range list {
			schema, changed := fmt.Sprint(t.SchemaVersion), "never"
			if t.SchemaVersion == 0 {
				schema = "-" // never recorded: run runmerge migrate
			}
			if t.MigrateError != "" {
				schema += " (migrate failed)"
			}
			if !t.ChangedAt.IsZero() {
				changed = runmerge.FormatTime(t.ChangedAt)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Status, schema,
				runmerge.FormatTime(t.CreatedAt), changed)
		}
		if len(list) < f.Limit {
			break
		}
		f.After = list[len(list)-1].ID
	}
	return w.Flush()
}

func newTenantsShowCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a tenant: status, file size, records per collection, schema, snapshots",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, cfg, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			return closeWith(plain(showTenant(cmd, store, cfg, args[0])), done)
		},
	}
}

func showTenant(cmd *cobra.Command, store *tenantstore.Store, cfg *Config, id string) error {
	ctx := cmd.Context()
	t, err := store.Catalog.Tenant(ctx, id)
	if err != nil {
		return fmt.Errorf("tenant %q: %w", id, plain(err))
	}
	st, err := store.TenantStats(ctx, id)
	if err != nil {
		return fmt.Errorf("tenant %q: %w", id, plain(err))
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "id:\t%s\n", t.ID)
	fmt.Fprintf(w, "name:\t%s\n", t.Name)
	fmt.Fprintf(w, "status:\t%s\n", t.Status)
	fmt.Fprintf(w, "created:\t%s\n", runmerge.FormatTime(t.CreatedAt))
	fmt.Fprintf(w, "updated:\t%s\n", runmerge.FormatTime(t.UpdatedAt))
	if at, err := store.Catalog.TenantChangedAt(ctx, id); err == nil && !at.IsZero() {
		fmt.Fprintf(w, "last change:\t%s\n", runmerge.FormatTime(at))
	}
	if ts, err := store.Catalog.TenantSchemaOf(ctx, id); err == nil {
		fmt.Fprintf(w, "schema version:\t%d (this build writes %d)\n",
			ts.Version, tenantstore.TenantSchemaVersion())
		if ts.MigrateError != "" {
			fmt.Fprintf(w, "migrate error:\t%s\n", ts.MigrateError)
		}
	}
	fmt.Fprintf(w, "file:\t%s (%s)\n", store.Pool.Path(id), byteSize(st.FileSizeBytes))
	var total int64
	for _, c := range runmerge.CollectionNames {
		fmt.Fprintf(w, "%s:\t%d\n", c, st.Records[c])
		total += st.Records[c]
	}
	fmt.Fprintf(w, "records:\t%d\n", total)
	if cfg.Backup.Dir != "" {
		snaps, err := tenantstore.ListSnapshots(cfg.Backup.Dir, id)
		if err == nil && len(snaps) > 0 {
			last := snaps[len(snaps)-1]
			fmt.Fprintf(w, "snapshots:\t%d, newest %s\n", len(snaps), runmerge.FormatTime(last.TakenAt))
		} else {
			fmt.Fprintf(w, "snapshots:\tnone\n")
		}
	}
	return w.Flush()
}

func newTenantsStatusCommand(g *globalFlags, verb, status, short string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			t, err := store.Catalog.UpdateTenant(cmd.Context(), args[0], runmerge.TenantUpdate{Status: &status})
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "tenant %s is %s\n", t.ID, t.Status)
			} else {
				err = fmt.Errorf("tenant %q: %w", args[0], plain(err))
			}
			return closeWith(err, done)
		},
	}
}

func newTenantsDeleteCommand(g *globalFlags) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete ID --yes",
		Short: "Delete a tenant, its keys, its webhooks and its file",
		Long: `Delete a tenant, its keys, its webhooks and its file. There is no undo
other than restoring a snapshot (runmerge restore) or an export (runmerge
import), so --yes is required.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return fmt.Errorf("deleting tenant %q cannot be undone; add --yes to go ahead", args[0])
			}
			store, _, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			err = store.DeleteTenant(cmd.Context(), args[0])
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted tenant %s\n", args[0])
			} else {
				err = fmt.Errorf("tenant %q: %w", args[0], plain(err))
			}
			return closeWith(err, done)
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")
	return cmd
}

// byteSize writes n bytes for people: 512 B, 1.5 MB.
func byteSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// newProgress returns a progress bar of total steps on w, or nil when w is
// not a terminal (a log file, a pipe, a test), where a bar would be noise.
func newProgress(w io.Writer, total int, what string) *progressbar.ProgressBar {
	f, ok := w.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) || total == 0 {
		return nil
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("tenants"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionFullWidth(),
	)
}

// printFailures writes up to max failures, sorted by tenant, and how many
// more there were.
func printFailures(w io.Writer, failed map[string]string, max int) {
	ids := make([]string, 0, len(failed))
	for id := range failed {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for i, id := range ids {
		if i == max {
			fmt.Fprintf(w, "  … and %d more\n", len(ids)-max)
			break
		}
		fmt.Fprintf(w, "  %s: %s\n", id, failed[id])
	}
}
