package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/runmerge/runmerge/tenantstore"
)

func newImportCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "import ID FILE",
		Short: "Replace (or create) a tenant from an export file",
		Long: `Replace tenant ID's data with FILE, an export made by runmerge export, the
export API or a backup snapshot (a tenant file copied while closed works too),
creating the tenant when it does not exist. FILE is checked first: a whole
SQLite database passing integrity_check, a Runmerge tenant file, with the
tables of a schema version this server knows (an older one is migrated).
Anything else is refused and nothing changes. FILE itself is left as it is.

Beside a running server, the import is refused while the server has the
tenant open; use the server's PUT /v1/tenants/{id}/import instead, which
waits for the tenant's requests to finish.`,
		Example: `  runmerge import acme acme-20260501T090000Z.db
  runmerge import acme-copy acme.db      # a copy under another id`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			start := time.Now()
			res, err := store.ImportTenantFile(cmd.Context(), args[0], args[1])
			if err != nil {
				return closeWith(fmt.Errorf("import %s into tenant %q: %w", args[1], args[0], plain(err)), done)
			}
			reportImport(cmd, res, args[1], time.Since(start))
			return done()
		},
	}
}

// reportImport says what an import or a restore did.
func reportImport(cmd *cobra.Command, res *tenantstore.ImportResult, from string, took time.Duration) {
	var records int64
	for _, n := range res.Records {
		records += n
	}
	what := "replaced"
	if res.Created {
		what = "created"
	}
	migrated := ""
	if res.FromVersion != res.SchemaVersion {
		migrated = fmt.Sprintf(", migrated from schema %d to %d", res.FromVersion, res.SchemaVersion)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s tenant %s from %s: %d records%s, in %s\n",
		what, res.TenantID, from, records, migrated, took.Round(time.Millisecond))
}
