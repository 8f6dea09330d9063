package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

func newExportCommand(g *globalFlags) *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "export ID [-o FILE]",
		Short: "Write a tenant to one SQLite file, consistent as of one moment",
		Long: `Write tenant ID to one self-contained SQLite file: every record, relationship,
tombstone and change event, consistent as of one moment, checked with
PRAGMA integrity_check. Writes to the tenant go on meanwhile, so this is safe
beside a running server. The file opens in the sqlite3 shell; its tables
runmerge_export and runmerge_export_counts say what it holds. Hand it to the
customer, or load it elsewhere with runmerge import.`,
		Example: `  runmerge export acme                 # writes ./acme-<time>.db
  runmerge export acme -o acme.db
  runmerge export acme -o - | gzip > acme.db.gz`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			return closeWith(exportTenant(cmd, store, args[0], out, force), done)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "",
		`the file to write; "-" for standard output (default ./ID-<time>.db)`)
	cmd.Flags().BoolVar(&force, "force", false, "replace the output file if it exists")
	return cmd
}

func exportTenant(cmd *cobra.Command, store *tenantstore.Store, id, out string, force bool) error {
	ctx := cmd.Context()
	if !runmerge.ValidTenantID(id) {
		return fmt.Errorf("%q is not a tenant id", id)
	}
	start := time.Now()
	if out == "" {
		out = id + "-" + time.Now().UTC().Format("20060102T150405Z") + ".db"
	}
	if out != "-" && !force {
		if _, err := os.Stat(out); err == nil {
			return fmt.Errorf("%s exists; choose another -o or add --force", out)
		}
	}

	// The export is made beside its destination and renamed when complete,
	// so that the destination never holds half a file.
	tmp := out + ".partial"
	if out == "-" {
		var err error
		if tmp, err = store.TempFile("export-" + id); err != nil {
			return err
		}
	}
	os.Remove(tmp)
	defer os.Remove(tmp)
	m, err := store.ExportTenant(ctx, id, tmp)
	if err != nil {
		return fmt.Errorf("export tenant %q: %w", id, plain(err))
	}
	if out == "-" {
		err = copyFileTo(cmd.OutOrStdout(), tmp)
	} else {
		err = os.Rename(tmp, out)
	}
	if err != nil {
		return fmt.Errorf("export tenant %q: %w", id, err)
	}

	var records, tombstones int64
	for _, c := range runmerge.CollectionNames {
		records += m.Records[c]
		tombstones += m.Tombstones[c]
	}
	where := out
	if out == "-" {
		where = "standard output"
	} else if fi, err := os.Stat(out); err == nil {
		where = fmt.Sprintf("%s (%s)", filepath.Clean(out), byteSize(fi.Size()))
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "exported tenant %s to %s: %d records, %d tombstones, schema %d, "+
		"as of change %d, in %s\n", id, where, records, tombstones, m.SchemaVersion, m.LastChange,
		time.Since(start).Round(time.Millisecond))
	return nil
}

// copyFileTo copies the file at path to w.
func copyFileTo(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// errNoBackups is the answer of the backup commands when backup.dir is unset.
var errNoBackups = errors.New("no backup directory: set backup.dir in the config (or RUNMERGE_BACKUP_DIR)")
