package tenantstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/runmerge/runmerge"
)

// MigrateOptions configures MigrateAll.
type MigrateOptions struct {
	// Parallel is how many tenant files are migrated at once; 0 means twice
	// the number of CPUs.
	Parallel int

	// Progress, when set, is called after each tenant with the number done
	// and the number to do, from one goroutine at a time.
	Progress func(done, total int)
}

// MigrateSummary says what MigrateAll did.
type MigrateSummary struct {
	Total    int               // tenants looked at
	Migrated int               // files brought to the current version
	Current  int               // files that already were at it
	Failed   map[string]string // tenant → why its file could not be migrated
	Version  int               // the current schema version
}

// MigrateAll brings the file of every tenant to the current schema
// version, several at a time, and records each tenant's version, or the
// error that stopped it, in the catalog. Tenants the catalog already
// records at the current version without an error are skipped, so a run
// that was interrupted (ctx cancelled) resumes where it stopped. A tenant
// interrupted mid-migration is left at its old version, since each
// migration is one transaction, and is taken up again by the next run.
func (s *Store) MigrateAll(ctx context.Context, opts MigrateOptions) (*MigrateSummary, error) {
	return s.migrateAll(ctx, tenantMigrations, opts)
}

// migrationResult is the outcome for one tenant.
type migrationResult struct {
	id       string
	from, to int
	err      error
}

func (s *Store) migrateAll(ctx context.Context, set *migrationSet, opts MigrateOptions) (
	*MigrateSummary, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = 2 * runtime.GOMAXPROCS(0)
	}
	ids, err := s.Catalog.tenantsBelowVersion(ctx, set.latest())
	if err != nil {
		return nil, err
	}
	sum := &MigrateSummary{Total: len(ids), Failed: make(map[string]string), Version: set.latest()}

	todo := make(chan string)
	results := make(chan migrationResult, opts.Parallel)
	var workers sync.WaitGroup
	for range opts.Parallel {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for id := range todo {
				from, err := migrateFile(ctx, set, s.Pool.Path(id), s.Pool.cfg.Options)
				results <- migrationResult{id: id, from: from, to: set.latest(), err: err}
			}
		}()
	}
	go func() {
		defer close(todo)
		for _, id := range ids {
			select {
			case todo <- id:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		workers.Wait()
		close(results)
	}()

	recordErr := s.recordMigrations(results, sum, opts.Progress)
	if err := ctx.Err(); err != nil {
		return sum, errors.Join(fmt.Errorf("migrate interrupted: %w", err), recordErr)
	}
	return sum, recordErr
}

// recordMigrations writes results to the catalog in batches as they come,
// keeps the summary, and reports progress. An interrupted migration is
// not recorded, so that the next run does it.
func (s *Store) recordMigrations(results <-chan migrationResult, sum *MigrateSummary,
	progress func(int, int)) error {
	const batchSize, batchAge = 256, 200 * time.Millisecond
	var batch []migrationResult
	var errs []error
	flush := func() {
		if len(batch) > 0 {
			errs = append(errs, s.Catalog.recordMigrations(context.Background(), batch))
			batch = batch[:0]
		}
	}
	tick := time.NewTicker(batchAge)
	defer tick.Stop()
	done := 0
	for {
		select {
		case r, ok := <-results:
			if !ok {
				flush()
				return errors.Join(errs...)
			}
			done++
			switch {
			case errors.Is(r.err, context.Canceled) || errors.Is(r.err, context.DeadlineExceeded):
				// Not recorded: the next run takes it up again.
			case r.err != nil:
				sum.Failed[r.id] = r.err.Error()
				batch = append(batch, r)
			case r.from < r.to:
				sum.Migrated++
				batch = append(batch, r)
			default:
				sum.Current++
				batch = append(batch, r)
			}
			if len(batch) >= batchSize {
				flush()
			}
			if progress != nil {
				progress(done, sum.Total)
			}
		case <-tick.C:
			flush()
		}
	}
}

// migrateFile brings the tenant file at path to set's latest version with
// a connection of its own, and closes it, which checkpoints its WAL. It
// returns the version the file had.
func migrateFile(ctx context.Context, set *migrationSet, path string, o Options) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	db, err := connect(path, o, modeWrite)
	if err != nil {
		return 0, err
	}
	from, err := set.migrate(ctx, db)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if isCantOpen(err) {
		return from, errors.New("the tenant's file is missing")
	}
	if err != nil && ctx.Err() != nil {
		// SQLite reports a cancelled statement as "interrupted"; say it was
		// the interruption, so that the tenant is left for the next run
		// instead of recorded as failed.
		return from, fmt.Errorf("%w: %v", ctx.Err(), err)
	}
	return from, err
}

// tenantsBelowVersion returns, in order of id, the tenants the catalog does
// not record at version without an error.
func (c *Catalog) tenantsBelowVersion(ctx context.Context, version int) ([]string, error) {
	rows, err := c.r.QueryContext(ctx, `SELECT id FROM tenants
		WHERE schema_version <> ? OR migrate_error IS NOT NULL ORDER BY id`, version)
	if err != nil {
		return nil, wrapErr(err, "list tenants to migrate")
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, wrapErr(err, "list tenants to migrate")
		}
		ids = append(ids, id)
	}
	return ids, wrapErr(rows.Err(), "list tenants to migrate")
}

// recordMigrations writes the version, or the error, of each result.
func (c *Catalog) recordMigrations(ctx context.Context, results []migrationResult) error {
	tx, err := c.w.BeginTx(ctx, nil)
	if err != nil {
		return wrapErr(err, "record migrations")
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `UPDATE tenants SET schema_version = ?, migrate_error = ? WHERE id = ?`)
	if err != nil {
		return wrapErr(err, "record migrations")
	}
	defer stmt.Close()
	for _, r := range results {
		version, msg := r.to, sql.NullString{}
		if r.err != nil {
			version, msg = r.from, sql.NullString{String: r.err.Error(), Valid: true}
		}
		if _, err := stmt.ExecContext(ctx, version, msg, r.id); err != nil {
			return wrapErr(err, "record migration of %s", r.id)
		}
	}
	return wrapErr(tx.Commit(), "record migrations")
}

// SetTenantSchemaVersion records tenant id's schema version and the last
// migration error ("" for none) in the catalog.
func (c *Catalog) SetTenantSchemaVersion(ctx context.Context, id string, version int, migrateErr string) error {
	var msg any
	if migrateErr != "" {
		msg = migrateErr
	}
	_, err := c.w.ExecContext(ctx, `UPDATE tenants SET schema_version = ?, migrate_error = ? WHERE id = ?`,
		version, msg, id)
	return wrapErr(err, "record schema version of %s", id)
}

// TenantSchema is what the catalog records about a tenant file's schema.
type TenantSchema struct {
	Version      int
	MigrateError string
}

// TenantSchemaOf returns what the catalog records about tenant id's schema.
func (c *Catalog) TenantSchemaOf(ctx context.Context, id string) (*TenantSchema, error) {
	var ts TenantSchema
	var msg sql.NullString
	err := c.r.QueryRowContext(ctx, `SELECT schema_version, migrate_error FROM tenants WHERE id = ?`, id).
		Scan(&ts.Version, &msg)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrTenantFileMissing
	}
	ts.MigrateError = msg.String
	return &ts, wrapErr(err, "read schema version of %s", id)
}

// TenantInfo is a tenant with what the catalog knows about its file.
type TenantInfo struct {
	runmerge.Tenant
	SchemaVersion int
	MigrateError  string
	ChangedAt     time.Time // zero when its records never changed
}

// TenantInfos returns a page of tenants, in order of id, with what the
// catalog knows about their files.
func (c *Catalog) TenantInfos(ctx context.Context, f runmerge.TenantFilter) ([]*TenantInfo, error) {
	rows, err := c.r.QueryContext(ctx, `SELECT `+tenantColumns+`, schema_version,
		coalesce(migrate_error, ''), coalesce(changed_at, '')
		FROM tenants WHERE id > ? ORDER BY id LIMIT ?`, f.After, f.Limit)
	if err != nil {
		return nil, wrapErr(err, "list tenants")
	}
	defer rows.Close()
	var list []*TenantInfo
	for rows.Next() {
		var ti TenantInfo
		var created, updated, changed string
		if err := rows.Scan(&ti.ID, &ti.Name, &ti.Status, &created, &updated,
			&ti.SchemaVersion, &ti.MigrateError, &changed); err != nil {
			return nil, wrapErr(err, "list tenants")
		}
		ti.CreatedAt, ti.UpdatedAt = parseTime(created), parseTime(updated)
		if changed != "" {
			ti.ChangedAt = parseTime(changed)
		}
		list = append(list, &ti)
	}
	return list, wrapErr(rows.Err(), "list tenants")
}
