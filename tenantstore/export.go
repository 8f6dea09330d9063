package tenantstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/runmerge/runmerge"
)

// Manifest describes an export: which tenant the file holds, at which schema
// version, as of when, and how many records. It is kept inside the file, in
// the tables runmerge_export and runmerge_export_counts, so that the file
// says what it is wherever it goes.
type Manifest struct {
	TenantID      string
	TenantName    string
	SchemaVersion int
	ExportedAt    time.Time

	// LastChange is the position, in the tenant's change order, of the last
	// change the file holds: the export is the tenant as of that change.
	LastChange int64

	Records    map[string]int64 // live records per collection
	Tombstones map[string]int64 // deleted records kept for sync, per collection
}

// manifestSchema makes the manifest tables of an export. Their names do
// not clash with any table of the tenant schema, and import drops them.
const manifestSchema = `
CREATE TABLE runmerge_export (
	tenant_id      TEXT NOT NULL,
	tenant_name    TEXT NOT NULL,
	schema_version INTEGER NOT NULL,
	exported_at    TEXT NOT NULL,
	last_change    INTEGER NOT NULL
) STRICT;
CREATE TABLE runmerge_export_counts (
	collection TEXT PRIMARY KEY,
	records    INTEGER NOT NULL,
	tombstones INTEGER NOT NULL
) STRICT;`

// manifestTables are the tables an export has beyond the tenant schema.
var manifestTables = []string{"runmerge_export", "runmerge_export_counts"}

// ExportTenant writes a copy of tenant id to a new file at path: one
// self-contained SQLite file (no WAL beside it), consistent as of one
// moment, holding every record, link, change event and tombstone of the
// tenant and a manifest, and passing PRAGMA integrity_check. Writes to the
// tenant go on meanwhile. path must not exist; on failure nothing is left
// there.
//
// A tenant open in the pool is read through a lease, so that an import or
// a delete waits for the export. Any other is read through a connection
// of its own, so that exporting a tenant nobody uses (as the CLI does,
// beside a running server) neither opens it in the pool nor pushes
// another tenant out.
func (s *Store) ExportTenant(ctx context.Context, id, path string) (*Manifest, error) {
	t, err := s.Catalog.Tenant(ctx, id)
	if err != nil {
		return nil, err
	}
	var m *Manifest
	if s.Pool.IsOpen(id) {
		l, aerr := s.Pool.Acquire(ctx, id)
		if aerr != nil {
			return nil, aerr
		}
		m, err = l.DB().export(ctx, path, t.Name, s.Pool.cfg.Options)
		l.Release()
	} else {
		m, err = exportFile(ctx, s.Pool.Path(id), path, s.Pool.cfg.Options, id, t.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("export tenant %s: %w", id, err)
	}
	s.log.Info("tenant exported", "tenant", id, "last_change", m.LastChange)
	return m, nil
}

// export copies the file with VACUUM INTO on a read connection. In WAL mode
// a reader sees the database as of the moment its transaction began and
// never blocks the writer, so the copy is consistent while writes go on;
// it costs the writer only that the WAL cannot be checkpointed past the
// reader's snapshot until the copy is done.
func (db *DB) export(ctx context.Context, path, name string, o Options) (*Manifest, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("export to %s: file exists", path)
	}
	exportedAt := runmerge.Now()
	conn, err := db.r.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	// The reader connection is query_only, which would refuse VACUUM; the
	// setting is put back before the connection returns to the pool.
	_, err = conn.ExecContext(ctx, `PRAGMA query_only = 0`)
	if err == nil {
		_, err = conn.ExecContext(ctx, `VACUUM INTO ?`, path)
		_, rerr := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA query_only = 1`)
		if rerr != nil {
			// Never hand a writable reader back to the pool.
			conn.Raw(func(any) error { return driver.ErrBadConn })
			err = errors.Join(err, rerr)
		}
	}
	conn.Close()
	if err != nil {
		removeTenantFiles(path)
		return nil, wrapErr(err, "copy tenant file")
	}

	m, err := sealExport(ctx, path, o, Manifest{TenantID: db.id, TenantName: name, ExportedAt: exportedAt})
	if err != nil {
		removeTenantFiles(path)
		return nil, err
	}
	return m, nil
}

// sealExport turns the copy at path into an export: it writes the
// manifest, counted from the copy itself so that it cannot disagree with
// it, leaves the file in rollback-journal mode so that it is one file on
// its own, and checks its integrity.
func sealExport(ctx context.Context, path string, o Options, m Manifest) (*Manifest, error) {
	db, err := sql.Open("sqlite", standaloneDSN(path, o, false))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	h, err := readHeader(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("read export header: %w", err)
	}
	m.SchemaVersion = h.userVersion
	err = db.QueryRowContext(ctx, `SELECT next - 1 FROM change_seq WHERE id = 1`).Scan(&m.LastChange)
	if err != nil {
		return nil, fmt.Errorf("read export change position: %w", err)
	}
	if m.Records, m.Tombstones, err = countRecords(ctx, db); err != nil {
		return nil, err
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, manifestSchema); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO runmerge_export
		(tenant_id, tenant_name, schema_version, exported_at, last_change) VALUES (?, ?, ?, ?, ?)`,
		m.TenantID, m.TenantName, m.SchemaVersion, formatTime(m.ExportedAt), m.LastChange)
	if err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	for _, c := range runmerge.CollectionNames {
		_, err := tx.ExecContext(ctx, `INSERT INTO runmerge_export_counts (collection, records, tombstones)
			VALUES (?, ?, ?)`, c, m.Records[c], m.Tombstones[c])
		if err != nil {
			return nil, fmt.Errorf("write manifest: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, wrapErr(err, "write manifest")
	}
	if err := integrityCheck(ctx, db); err != nil {
		return nil, fmt.Errorf("check export: %w", err)
	}
	return &m, db.Close()
}

// countRecords counts the live records and tombstones of each collection.
func countRecords(ctx context.Context, q queryer) (live, dead map[string]int64, err error) {
	live, dead = make(map[string]int64), make(map[string]int64)
	for _, c := range runmerge.CollectionNames {
		live[c], dead[c] = 0, 0
	}
	rows, err := q.QueryContext(ctx, `SELECT collection, deleted_at IS NOT NULL, count(*)
		FROM records GROUP BY 1, 2`)
	if err != nil {
		return nil, nil, fmt.Errorf("count records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		var deleted bool
		var n int64
		if err := rows.Scan(&c, &deleted, &n); err != nil {
			return nil, nil, fmt.Errorf("count records: %w", err)
		}
		if deleted {
			dead[c] = n
		} else {
			live[c] = n
		}
	}
	return live, dead, wrapErr(rows.Err(), "count records")
}

// ReadManifest reads the manifest of the export file at path.
func ReadManifest(ctx context.Context, path string) (*Manifest, error) {
	db, err := sql.Open("sqlite", standaloneDSN(path, Options{}.withDefaults(), true))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return readManifest(ctx, db)
}

func readManifest(ctx context.Context, q queryer) (*Manifest, error) {
	m := &Manifest{Records: make(map[string]int64), Tombstones: make(map[string]int64)}
	var at string
	err := q.QueryRowContext(ctx, `SELECT tenant_id, tenant_name, schema_version, exported_at, last_change
		FROM runmerge_export`).Scan(&m.TenantID, &m.TenantName, &m.SchemaVersion, &at, &m.LastChange)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	m.ExportedAt = parseTime(at)
	rows, err := q.QueryContext(ctx, `SELECT collection, records, tombstones FROM runmerge_export_counts`)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		var live, dead int64
		if err := rows.Scan(&c, &live, &dead); err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		m.Records[c], m.Tombstones[c] = live, dead
	}
	return m, rows.Err()
}

// integrityCheck runs PRAGMA integrity_check, which also checks the
// full-text index, and turns any finding into an error.
func integrityCheck(ctx context.Context, q queryer) error {
	rows, err := q.QueryContext(ctx, `PRAGMA integrity_check(10)`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("integrity check failed: %s", strings.Join(problems, "; "))
	}
	return nil
}

// standaloneDSN is the connection string for a file outside the pool: an
// export being sealed, an upload being checked. Unlike dsn, it keeps the
// file in rollback-journal mode, so that it stays one file on its own, and
// it opens the file defensively, since an upload may have been made by
// anyone: no schema-defined functions, no writes to the schema tables,
// cell sizes checked as pages are read.
func standaloneDSN(path string, o Options, readOnly bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(o.BusyTimeout.Milliseconds()))
	q.Set("_defensive", "1")
	q.Set("_journal_mode", "DELETE")
	q.Set("_foreign_keys", "0")
	q.Set("_txlock", "immediate")
	q.Add("_pragma", "trusted_schema(0)")
	q.Add("_pragma", "cell_size_check(1)")
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Set("mode", "rw")
	if readOnly {
		q.Set("mode", "ro")
		q.Del("_journal_mode")
	}
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: q.Encode()}
	return u.String()
}

// tempDir returns the directory for the store's temporary files (exports
// on their way to a client, uploads being checked), creating it. It is
// inside the data directory, so that an upload can be renamed into place.
func (s *Store) tempDir() (string, error) {
	dir := filepath.Join(filepath.Dir(s.Catalog.Path()), "tmp")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	return dir, nil
}

// TempFile returns a new, unused path for a temporary file in the data
// directory, for an export or an upload; no file is left there. Temporary
// files left behind by a crash are removed after a day.
func (s *Store) TempFile(prefix string) (string, error) {
	dir, err := s.tempDir()
	if err != nil {
		return "", fmt.Errorf("temporary file: %w", err)
	}
	removeStaleTemp(dir, 24*time.Hour)
	f, err := os.CreateTemp(dir, prefix+"-*.db")
	if err != nil {
		return "", fmt.Errorf("temporary file: %w", err)
	}
	name := f.Name()
	f.Close()
	// VACUUM INTO refuses a file that exists and is not empty; an empty
	// one is fine, but the caller may want the name free.
	os.Remove(name)
	return name, nil
}

// removeStaleTemp removes files in dir older than age.
func removeStaleTemp(dir string, age time.Duration) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > age {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
