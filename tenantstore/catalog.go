package tenantstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/runmerge/runmerge"
)

// Catalog is the control plane: the file <data-dir>/catalog.db that lists
// tenants and keys.
type Catalog struct {
	path string
	w    *sql.DB
	r    *sql.DB
}

// OpenCatalog opens (creating if needed) the catalog in dir and brings it to
// the current schema.
func OpenCatalog(ctx context.Context, dir string, o Options) (*Catalog, error) {
	o = o.withDefaults()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	path := filepath.Join(dir, "catalog.db")
	w, err := connect(path, o, modeCreate)
	if err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	if _, err := catalogMigrations.migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	o.Readers = 4
	r, err := connect(path, o, modeRead)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	return &Catalog{path: path, w: w, r: r}, nil
}

// Close checkpoints and closes the catalog.
func (c *Catalog) Close() error {
	return errors.Join(c.r.Close(), checkpoint(context.Background(), c.w), c.w.Close())
}

// Path returns the catalog's file.
func (c *Catalog) Path() string { return c.path }

// Ping checks that the catalog answers.
func (c *Catalog) Ping(ctx context.Context) error {
	return c.r.PingContext(ctx)
}

// formatTime and parseTime convert times to and from the catalog's columns.
func formatTime(t time.Time) string { return runmerge.FormatTime(t) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t.UTC()
}

func parseTimePtr(s sql.NullString) *time.Time {
	if !s.Valid {
		return nil
	}
	t := parseTime(s.String)
	return &t
}

func formatTimePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return formatTime(*t)
}

// CreateTenant adds t to the catalog. A taken id is an ECONFLICT error.
func (c *Catalog) CreateTenant(ctx context.Context, t *runmerge.Tenant) error {
	_, err := c.w.ExecContext(ctx,
		`INSERT INTO tenants (id, name, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		t.ID, t.Name, t.Status, formatTime(t.CreatedAt), formatTime(t.UpdatedAt))
	if isUnique(err) {
		return runmerge.Errorf(runmerge.ECONFLICT, "tenant %q already exists", t.ID)
	}
	return wrapErr(err, "create tenant %s", t.ID)
}

const tenantColumns = `id, name, status, created_at, updated_at`

func scanTenant(s interface{ Scan(...any) error }) (*runmerge.Tenant, error) {
	var t runmerge.Tenant
	var created, updated string
	if err := s.Scan(&t.ID, &t.Name, &t.Status, &created, &updated); err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = parseTime(created), parseTime(updated)
	return &t, nil
}

// Tenant returns tenant id, or an ENOTFOUND error.
func (c *Catalog) Tenant(ctx context.Context, id string) (*runmerge.Tenant, error) {
	row := c.r.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = ?`, id)
	t, err := scanTenant(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")
	}
	return t, wrapErr(err, "read tenant %s", id)
}

// Tenants returns a page of tenants in order of id.
func (c *Catalog) Tenants(ctx context.Context, f runmerge.TenantFilter) ([]*runmerge.Tenant, error) {
	rows, err := c.r.QueryContext(ctx,
		`SELECT `+tenantColumns+` FROM tenants WHERE id > ? ORDER BY id LIMIT ?`, f.After, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	var list []*runmerge.Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		list = append(list, t)
	}
	return list, wrapErr(rows.Err(), "list tenants")
}

// UpdateTenant applies upd to tenant id and returns the tenant as it is now.
func (c *Catalog) UpdateTenant(ctx context.Context, id string, upd runmerge.TenantUpdate) (*runmerge.Tenant, error) {
	row := c.w.QueryRowContext(ctx, `UPDATE tenants SET
			name = coalesce(?, name),
			status = coalesce(?, status),
			updated_at = ?
		WHERE id = ? RETURNING `+tenantColumns,
		upd.Name, upd.Status, formatTime(runmerge.Now()), id)
	t, err := scanTenant(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")
	}
	return t, wrapErr(err, "update tenant %s", id)
}

// DeleteTenant removes tenant id and, with it, its keys.
func (c *Catalog) DeleteTenant(ctx context.Context, id string) error {
	res, err := c.w.ExecContext(ctx, `DELETE FROM tenants WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete tenant %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")
	}
	return nil
}

// CreateKey stores k. Its Hash must be set; the secret is never passed here.
func (c *Catalog) CreateKey(ctx context.Context, k *runmerge.Key) error {
	eventIDs, err := json.Marshal(nonNil(k.EventIDs))
	if err != nil {
		return err
	}
	var tenantID any
	if k.TenantID != "" {
		tenantID = k.TenantID
	}
	_, err = c.w.ExecContext(ctx, `INSERT INTO keys
		(id, name, tenant_id, role, event_ids, hash, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, tenantID, k.Role, string(eventIDs), k.Hash,
		formatTime(k.CreatedAt), formatTimePtr(k.ExpiresAt))
	return wrapErr(err, "create key")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const keyColumns = `id, name, tenant_id, role, event_ids, hash, created_at, expires_at, revoked_at, last_used_at`

func scanKey(s interface{ Scan(...any) error }) (*runmerge.Key, error) {
	var k runmerge.Key
	var tenantID, expires, revoked, lastUsed sql.NullString
	var eventIDs, created string
	err := s.Scan(&k.ID, &k.Name, &tenantID, &k.Role, &eventIDs, &k.Hash, &created, &expires, &revoked, &lastUsed)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(eventIDs), &k.EventIDs); err != nil {
		return nil, fmt.Errorf("key %s: event ids: %w", k.ID, err)
	}
	k.TenantID = tenantID.String
	k.CreatedAt = parseTime(created)
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = parseTimePtr(expires), parseTimePtr(revoked), parseTimePtr(lastUsed)
	return &k, nil
}

// KeyByHash returns the key whose secret hashes to hash, or an ENOTFOUND
// error. Revoked and expired keys are returned too; the caller decides.
func (c *Catalog) KeyByHash(ctx context.Context, hash string) (*runmerge.Key, error) {
	row := c.r.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE hash = ?`, hash)
	k, err := scanKey(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, runmerge.Errorf(runmerge.ENOTFOUND, "key not found")
	}
	return k, wrapErr(err, "read key")
}

// CountKeys returns how many keys exist, revoked ones included.
func (c *Catalog) CountKeys(ctx context.Context) (int, error) {
	var n int
	err := c.r.QueryRowContext(ctx, `SELECT count(*) FROM keys`).Scan(&n)
	return n, wrapErr(err, "count keys")
}

// wrapErr adds context to err, turning the storage faults a client can act
// on (a full disk, a lock held too long) into domain errors. It returns nil
// for nil.
func wrapErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if e := classify(err); e != err {
		return e
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// classify turns the storage faults a client can act on into domain
// errors that keep the fault as their cause; other errors pass unchanged.
func classify(err error) error {
	var de *runmerge.Error
	switch {
	case err == nil || errors.As(err, &de):
		return err
	case isDiskFull(err):
		return &runmerge.Error{Code: runmerge.EINSUFFICIENTSPACE, Message: "the server's disk is full", Err: err}
	case isBusy(err):
		return &runmerge.Error{Code: runmerge.EUNAVAILABLE, Message: "the data is locked by another process; try again", Err: err}
	case isReadOnly(err):
		return &runmerge.Error{Code: runmerge.EUNAVAILABLE,
			Message: "the data cannot be written now; try again later", Err: err}
	}
	return err
}
