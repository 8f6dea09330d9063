package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

func newKeysCommand(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke API keys",
	}
	cmd.AddCommand(newKeysCreateCommand(g), newKeysListCommand(g), newKeysRevokeCommand(g))
	return cmd
}

func newKeysCreateCommand(g *globalFlags) *cobra.Command {
	var name, tenant, role, expiresIn string
	var eventIDs []string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a key and print its secret once",
		Long: `Create a key. Without --tenant it is a platform key (admin or read_only),
working across every tenant. The secret is printed once and cannot be
recovered: only its hash is stored.`,
		Example: `  runmerge keys create --name ops --role admin
  runmerge keys create --name acme-app --tenant acme --role read_only
  runmerge keys create --name keynote --tenant acme --role event_manager --event-id 0195...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !runmerge.ValidRole(role) {
				return fmt.Errorf("--role must be admin, event_manager or read_only, got %q", role)
			}
			if tenant == "" && role == runmerge.RoleEventManager {
				return fmt.Errorf("a platform key is admin or read_only; give --tenant for an event_manager key")
			}
			if (role == runmerge.RoleEventManager) != (len(eventIDs) > 0) {
				return fmt.Errorf("--event-id is required for, and only for, event_manager keys")
			}
			k := &runmerge.Key{
				ID: uuid.Must(uuid.NewV7()).String(), Name: name, TenantID: tenant, Role: role,
				EventIDs: eventIDs, CreatedAt: runmerge.Now(),
			}
			if expiresIn != "" {
				d, err := time.ParseDuration(expiresIn)
				if err != nil || d <= 0 {
					return fmt.Errorf("--expires-in must be a positive duration such as 720h, got %q", expiresIn)
				}
				t := runmerge.Now().Add(d)
				k.ExpiresAt = &t
			}
			store, _, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			return closeWith(createKey(cmd, store, k), done)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "a name that says what the key is for (required)")
	cmd.Flags().StringVar(&tenant, "tenant", "", "the tenant the key is bound to; none for a platform key")
	cmd.Flags().StringVar(&role, "role", "", "admin, event_manager or read_only (required)")
	cmd.Flags().StringSliceVar(&eventIDs, "event-id", nil, "an event an event_manager key may reach (repeatable)")
	cmd.Flags().StringVar(&expiresIn, "expires-in", "", "lifetime of the key, such as 720h; none for no expiry")
	cmd.MarkFlagRequired("name")
	cmd.MarkFlagRequired("role")
	return cmd
}

func createKey(cmd *cobra.Command, store *tenantstore.Store, k *runmerge.Key) error {
	ctx := cmd.Context()
	if k.TenantID != "" {
		if _, err := store.Catalog.Tenant(ctx, k.TenantID); err != nil {
			return fmt.Errorf("tenant %q: %w", k.TenantID, err)
		}
	}
	if len(k.EventIDs) > 0 {
		l, err := store.Pool.Acquire(ctx, k.TenantID)
		if err != nil {
			return err
		}
		missing, err := l.DB().MissingEvents(ctx, k.EventIDs)
		l.Release()
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			return fmt.Errorf("no event %q in tenant %q", k.EventIDs[missing[0]], k.TenantID)
		}
	}
	secret := runmerge.NewKeySecret()
	k.Hash = runmerge.HashKeySecret(secret)
	if err := store.Catalog.CreateKey(ctx, k); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Created key %s. Its secret is shown only this once:\n", k.ID)
	fmt.Fprintln(cmd.OutOrStdout(), secret)
	return nil
}

func newKeysListCommand(g *globalFlags) *cobra.Command {
	var tenant string
	var platform bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			f := tenantstore.KeyFilter{Limit: 500}
			if platform {
				empty := ""
				f.TenantID = &empty
			} else if tenant != "" {
				f.TenantID = &tenant
			}
			return closeWith(listKeys(cmd, store, f), done)
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "only the keys of this tenant")
	cmd.Flags().BoolVar(&platform, "platform", false, "only platform keys")
	return cmd
}

func listKeys(cmd *cobra.Command, store *tenantstore.Store, f tenantstore.KeyFilter) error {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tTENANT\tROLE\tSTATE\tLAST USED")
	for {
		list, err := store.Catalog.Keys(cmd.Context(), f)
		if err != nil {
			return err
		}
		for _, k := range list {
			tenant, state, used := k.TenantID, "active", "never"
			if tenant == "" {
				tenant = "(platform)"
			}
			switch {
			case k.RevokedAt != nil:
				state = "revoked"
			case !k.Usable(time.Now()):
				state = "expired"
			}
			if k.LastUsedAt != nil {
				used = runmerge.FormatTime(*k.LastUsedAt)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, tenant, k.Role, state, used)
		}
		if len(list) < f.Limit {
			break
		}
		f.After = list[len(list)-1].ID
	}
	return w.Flush()
}

func newKeysRevokeCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke KEY_ID",
		Short: "Revoke a key; it answers 401 from then on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			err = store.Catalog.RevokeKey(cmd.Context(), args[0])
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", args[0])
			}
			return closeWith(err, done)
		},
	}
}
