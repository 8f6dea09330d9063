package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/handlers"
	"github.com/runmerge/runmerge/tenantstore"
	"github.com/runmerge/runmerge/webhook"
)

func newServeCommand(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP API server",
		Long: `Run the HTTP API server on the data directory.

On the first start with no auth.root_key and no key yet, the server creates
a platform admin key and prints it once on standard output.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().String("addr", "", "listen address HOST:PORT (config key server.addr)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := g.load(map[string]*pflag.Flag{"server.addr": cmd.Flags().Lookup("addr")})
		if err != nil {
			return err
		}
		log := newLogger(cfg.Log, os.Stderr)
		return serve(cmd.Context(), cfg, log, cmd.OutOrStdout(), nil)
	}
	return cmd
}

// serve runs the server until ctx ends, then shuts it down within the
// configured grace period. When ready is not nil it receives the listening
// address once the server accepts connections.
func serve(ctx context.Context, cfg *Config, log *slog.Logger, stdout io.Writer, ready chan<- string) error {
	store, err := tenantstore.Open(ctx, cfg.storeConfig(log))
	if err != nil {
		return err
	}
	if err := bootstrapKey(ctx, cfg, store, stdout); err != nil {
		return errors.Join(err, store.Close(context.Background()))
	}
	changes, err := webhook.New(cfg.webhookConfig(log), store)
	if err == nil {
		err = changes.Start(ctx)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("start webhook delivery: %w", err), store.Close(context.Background()))
	}

	srv := handlers.New(handlers.Config{
		Addr:              cfg.Server.Addr,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxBodyBytes:      cfg.Limits.MaxBodyBytes,
		MaxImportBytes:    cfg.Limits.MaxImportBytes,
		RootKey:           cfg.Auth.RootKey,
		RatePerKey:        cfg.Limits.RatePerKey,
		RateBurst:         cfg.Limits.RateBurst,
		MetricsEnabled:    cfg.Metrics.Enabled,
		Webhooks:          changes,
		StreamMaxPerKey:   cfg.Stream.MaxPerKey,
	}, store, log)
	backups, err := startBackups(cfg, store, srv, log)
	if err != nil {
		srv.Close()
		return errors.Join(fmt.Errorf("start backups: %w", err),
			changes.Stop(context.Background()), store.Close(context.Background()))
	}

	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		srv.Close() // its background work holds the catalog
		backups.Close()
		return errors.Join(fmt.Errorf("listen on %s: %w", cfg.Server.Addr, err),
			changes.Stop(context.Background()), store.Close(context.Background()))
	}
	log.Info("runmerge listening", "addr", ln.Addr().String(), "data_dir", cfg.DataDir, "version", version)
	if ready != nil {
		ready <- ln.Addr().String()
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}

	log.Info("shutting down", "grace", cfg.Server.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	shutdownErr := srv.Shutdown(shutdownCtx)
	if errors.Is(shutdownErr, context.DeadlineExceeded) {
		shutdownErr = fmt.Errorf("gave up waiting for requests in flight after %s (server.shutdown_timeout)",
			cfg.Server.ShutdownTimeout)
	}
	// Streams closed with the HTTP server; undelivered changes stay in the
	// database for the next start. Stopping abandons attempts in flight, so
	// it is quick even when the grace period is spent.
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopCancel()
	backups.Close()
	err = errors.Join(serveErr, shutdownErr, changes.Stop(stopCtx), store.Close(shutdownCtx))
	if err != nil {
		log.Error("shutdown", "error", err)
		return err
	}
	log.Info("stopped")
	return nil
}

// bootstrapKey makes the first platform admin key when the operator gave no
// root key and no key exists yet, and prints it once.
func bootstrapKey(ctx context.Context, cfg *Config, store *tenantstore.Store, stdout io.Writer) error {
	if cfg.Auth.RootKey != "" {
		return nil
	}
	n, err := store.Catalog.CountKeys(ctx)
	if err != nil || n > 0 {
		return err
	}
	secret := runmerge.NewKeySecret()
	k := &runmerge.Key{
		ID:        uuid.Must(uuid.NewV7()).String(),
		Name:      "bootstrap platform admin",
		Role:      runmerge.RoleAdmin,
		Hash:      runmerge.HashKeySecret(secret),
		CreatedAt: runmerge.Now(),
	}
	if err := store.Catalog.CreateKey(ctx, k); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "\nCreated a platform admin key. It is shown only this once; keep it safe:\n\n    %s\n\n", secret)
	return err
}
