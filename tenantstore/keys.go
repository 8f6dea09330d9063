package tenantstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/runmerge/runmerge"
)

// KeyFilter selects a page of keys, in order of id.
type KeyFilter struct {
	TenantID *string // only the keys of this tenant; "" for platform keys
	After    string
	Limit    int
}

// Keys returns a page of keys.
func (c *Catalog) Keys(ctx context.Context, f KeyFilter) ([]*runmerge.Key, error) {
	q := `SELECT ` + keyColumns + ` FROM keys WHERE id > ?`
	args := []any{f.After}
	if f.TenantID != nil {
		if *f.TenantID == "" {
			q += ` AND tenant_id IS NULL`
		} else {
			q += ` AND tenant_id = ?`
			args = append(args, *f.TenantID)
		}
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, f.Limit)
	rows, err := c.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	var list []*runmerge.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		list = append(list, k)
	}
	return list, wrapErr(rows.Err(), "list keys")
}

// Key returns key id, or an ENOTFOUND error.
func (c *Catalog) Key(ctx context.Context, id string) (*runmerge.Key, error) {
	row := c.r.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE id = ?`, id)
	k, err := scanKey(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, runmerge.Errorf(runmerge.ENOTFOUND, "key not found")
	}
	return k, wrapErr(err, "read key %s", id)
}

// RevokeKey marks key id revoked. Revoking a revoked key changes nothing.
func (c *Catalog) RevokeKey(ctx context.Context, id string) error {
	res, err := c.w.ExecContext(ctx,
		`UPDATE keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`, formatTime(runmerge.Now()), id)
	if err != nil {
		return wrapErr(err, "revoke key %s", id)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return runmerge.Errorf(runmerge.ENOTFOUND, "key not found")
	}
	return nil
}

// TouchKeys records when keys were last used. Times only move forward.
func (c *Catalog) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	tx, err := c.w.BeginTx(ctx, nil)
	if err != nil {
		return wrapErr(err, "touch keys")
	}
	defer tx.Rollback()
	for id, at := range used {
		if _, err := tx.ExecContext(ctx, `UPDATE keys SET last_used_at = ?
			WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`,
			formatTime(at), id, formatTime(at)); err != nil {
			return wrapErr(err, "touch keys")
		}
	}
	return wrapErr(tx.Commit(), "touch keys")
}

// Watch calls changed each time the catalog has changed since the last
// poll, whether the change came from this process or another (the CLI
// revoking a key, say), until ctx ends. It polls PRAGMA data_version on a
// connection of its own every interval.
func (c *Catalog) Watch(ctx context.Context, every time.Duration, changed func()) error {
	conn, err := c.r.Conn(ctx)
	if err != nil {
		return fmt.Errorf("watch catalog: %w", err)
	}
	defer conn.Close()
	last := int64(-1)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var v int64
		if err := conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch catalog: %w", err)
		}
		if last >= 0 && v != last {
			changed()
		}
		last = v
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// MarkTenantCollection records that tenant has records in collection.
func (c *Catalog) MarkTenantCollection(ctx context.Context, tenantID, collection string) error {
	_, err := c.w.ExecContext(ctx, `INSERT OR IGNORE INTO tenant_collections (tenant_id, collection)
		SELECT id, ? FROM tenants WHERE id = ?`, collection, tenantID)
	return wrapErr(err, "mark tenant %s collection %s", tenantID, collection)
}

// TenantsWithRecords returns up to limit active tenants, in order of id from
// (and including) from, that have ever had records in collection.
func (c *Catalog) TenantsWithRecords(ctx context.Context, collection, from string, limit int) ([]string, error) {
	rows, err := c.r.QueryContext(ctx, `SELECT tc.tenant_id FROM tenant_collections tc
		JOIN tenants t ON t.id = tc.tenant_id
		WHERE tc.collection = ? AND tc.tenant_id >= ? AND t.status = 'active'
		ORDER BY tc.tenant_id LIMIT ?`, collection, from, limit)
	if err != nil {
		return nil, fmt.Errorf("list tenants with %s: %w", collection, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
