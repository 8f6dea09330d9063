// Command runmerge is the Runmerge API server and its operator's tools.
//
//	runmerge serve            run the HTTP API
//	runmerge --help           list every command
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "runmerge:", err)
		stop()
		os.Exit(1)
	}
}

// globalFlags are the flags every command shares.
type globalFlags struct {
	config  string
	dataDir *pflag.Flag
}

func newRootCommand() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "runmerge",
		Short:         "Runmerge: a multi-tenant API server for event data",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.PersistentFlags().StringVar(&g.config, "config", "", "config file (default ./config.yaml when present)")
	root.PersistentFlags().String("data-dir", "", "data directory (config key data_dir)")
	g.dataDir = root.PersistentFlags().Lookup("data-dir")

	root.AddCommand(newServeCommand(g))
	root.AddCommand(newKeysCommand(g))
	root.AddCommand(newTenantsCommand(g), newExportCommand(g), newImportCommand(g), newRestoreCommand(g),
		newMigrateCommand(g), newCheckCommand(g), newDemoCommand(g))
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "runmerge", version)
		},
	})
	return root
}

// load reads the configuration with the given command-specific flags bound
// to their keys, besides the global ones.
func (g *globalFlags) load(flags map[string]*pflag.Flag) (*Config, error) {
	bound := map[string]*pflag.Flag{}
	for k, f := range flags {
		if f.Changed {
			bound[k] = f
		}
	}
	if g.dataDir.Changed {
		bound["data_dir"] = g.dataDir
	}
	return loadConfig(g.config, bound)
}
