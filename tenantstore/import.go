package tenantstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/runmerge/runmerge"
)

// ImportResult says what an import did.
type ImportResult struct {
	TenantID      string
	Created       bool             // the tenant did not exist and was created
	FromVersion   int              // the schema version of the file as uploaded
	SchemaVersion int              // the schema version of the file now
	Manifest      *Manifest        // the file's manifest; nil for a plain tenant file
	Records       map[string]int64 // live records per collection
	Tombstones    map[string]int64 // deleted records per collection
}

// sqliteMagic is the start of every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// ImportTenant replaces tenant id's data with the SQLite file read from r,
// an earlier export or a tenant file, creating the tenant when it does not
// exist. The upload is written to a temporary file in the data directory
// and checked there before anything changes: that it is a SQLite database
// of whole pages, passes PRAGMA integrity_check, is a Runmerge tenant file,
// has exactly the tables of a schema version this server knows, and is
// brought to the current version. Then it takes the place of the tenant's
// file in one rename, once every request using the old file has finished.
//
// A file that fails a check is refused with an EINVALID error, and the
// tenant, its file and the catalog are left exactly as they were.
func (s *Store) ImportTenant(ctx context.Context, id string, r io.Reader) (*ImportResult, error) {
	if !runmerge.ValidTenantID(id) {
		return nil, runmerge.ValidateTenantID(id, "/id")
	}
	tmp, err := s.TempFile("import-" + id)
	if err != nil {
		return nil, err
	}
	defer removeTenantFiles(tmp)
	if err := writeUpload(tmp, r); err != nil {
		return nil, err
	}
	res, err := prepareImport(ctx, tmp, s.Pool.cfg.Options)
	if err != nil {
		return nil, err
	}
	res.TenantID = id
	if err := s.swapIn(ctx, id, tmp, res); err != nil {
		return nil, err
	}
	s.log.Info("tenant imported", "tenant", id, "created", res.Created,
		"from_version", res.FromVersion, "schema_version", res.SchemaVersion)
	return res, nil
}

// ImportTenantFile is ImportTenant reading the file at path, which is left
// as it is.
func (s *Store) ImportTenantFile(ctx context.Context, id, path string) (*ImportResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return s.ImportTenant(ctx, id, f)
}

// writeUpload copies r to a new file at path and syncs it.
func writeUpload(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("store upload: %w", err)
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if isNoSpace(err) {
			return &runmerge.Error{Code: runmerge.EINSUFFICIENTSPACE, Message: "the server's disk is full"}
		}
		return fmt.Errorf("store upload: %w", err)
	}
	return nil
}

// isNoSpace reports whether err is the disk running out of room.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC)
}

// refuse returns the error of an upload that is not a file this server
// can import.
func refuse(format string, args ...any) error {
	return runmerge.Errorf(runmerge.EINVALID, "not an importable tenant file: "+format, args...)
}

// checkSQLiteHeader refuses a file that is not a whole SQLite database: a
// file of another kind, an empty one, or one cut short.
func checkSQLiteHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return refuse("the file is empty")
	}
	var h [100]byte
	if _, err := io.ReadFull(f, h[:]); err != nil || !bytes.Equal(h[:16], []byte(sqliteMagic)) {
		return refuse("it is not a database file")
	}
	pageSize := int64(binary.BigEndian.Uint16(h[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return refuse("its database header is damaged")
	}
	if fi.Size()%pageSize != 0 {
		return refuse("it is cut short (not a whole number of pages)")
	}
	// The page count in the header is valid when the change counter
	// matches the version-valid-for number, as every SQLite since 3.7.0
	// writes it.
	pages := int64(binary.BigEndian.Uint32(h[28:32]))
	if binary.BigEndian.Uint32(h[24:28]) == binary.BigEndian.Uint32(h[92:96]) && pages != fi.Size()/pageSize {
		return refuse("it is cut short or padded (%d pages, header says %d)", fi.Size()/pageSize, pages)
	}
	return nil
}

// prepareImport checks the upload at path and makes it ready to become a
// tenant file: the manifest tables of an export are dropped and the schema
// is brought to the current version. Every refusal is an EINVALID error.
func prepareImport(ctx context.Context, path string, o Options) (*ImportResult, error) {
	if err := checkSQLiteHeader(path); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", standaloneDSN(path, o, false))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		return nil, refuse("the database cannot be opened")
	}
	if err := integrityCheck(ctx, db); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, refuse("it fails the database integrity check")
	}
	h, err := readHeader(ctx, db)
	if err != nil {
		return nil, refuse("the database cannot be read")
	}
	switch {
	case h.applicationID != tenantMigrations.applicationID || h.userVersion < 1:
		return nil, refuse("it is not a Runmerge tenant file")
	case h.userVersion > tenantMigrations.latest():
		return nil, refuse("it has schema version %d, newer than this server knows (%d)",
			h.userVersion, tenantMigrations.latest())
	}
	if err := checkSchema(ctx, db, h.userVersion); err != nil {
		return nil, err
	}
	if err := checkContents(ctx, db); err != nil {
		return nil, err
	}

	res := &ImportResult{FromVersion: h.userVersion}
	if hasManifest(ctx, db) {
		if res.Manifest, err = readManifest(ctx, db); err != nil {
			return nil, refuse("its manifest cannot be read")
		}
	}
	for _, t := range manifestTables {
		if _, err := db.ExecContext(ctx, `DROP TABLE IF EXISTS `+t); err != nil {
			return nil, fmt.Errorf("drop manifest: %w", err)
		}
	}
	if _, err := tenantMigrations.migrate(ctx, db); err != nil {
		return nil, fmt.Errorf("migrate import: %w", err)
	}
	res.SchemaVersion = tenantMigrations.latest()
	if res.Records, res.Tombstones, err = countRecords(ctx, db); err != nil {
		return nil, err
	}
	return res, db.Close()
}

// checkContents refuses a file whose rows the server could not read back:
// record and change event documents that are not JSON objects, lists of
// event ids that are not JSON arrays. integrity_check vouches for the
// file's structure, not for what the rows say.
func checkContents(ctx context.Context, db *sql.DB) error {
	var bad int
	err := db.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM records WHERE json_type(data) IS NOT 'object'
			OR (raw_data IS NOT NULL AND json_valid(raw_data) = 0))
		+ (SELECT count(*) FROM changes WHERE json_type(data) IS NOT 'object'
			OR json_type(event_ids) IS NOT 'array')`).Scan(&bad)
	if err != nil {
		return refuse("its records cannot be read")
	}
	if bad > 0 {
		return refuse("%d of its records or change events are not well-formed", bad)
	}
	return nil
}

// hasManifest reports whether the file behind q is an export with a manifest.
func hasManifest(ctx context.Context, q queryer) bool {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema
		WHERE type = 'table' AND name = 'runmerge_export'`).Scan(&n)
	return err == nil && n == 1
}

// checkSchema refuses a file whose tables, indexes and triggers are not
// exactly those that the migrations up to version make, so that nothing
// unexpected (a trigger, a view, a missing index) enters the data
// directory. An export's manifest tables are allowed.
func checkSchema(ctx context.Context, db *sql.DB, version int) error {
	want, err := referenceSchema(ctx, version)
	if err != nil {
		return err
	}
	got, err := schemaOf(ctx, db)
	if err != nil {
		return refuse("its schema cannot be read")
	}
	manifest := map[string]bool{}
	for _, t := range manifestTables {
		manifest[t] = true
	}
	var extra []string
	for name, obj := range got {
		if manifest[obj.table] {
			continue
		}
		if w, ok := want[name]; !ok || w != obj {
			extra = append(extra, name)
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		return refuse("its schema differs from that of version %d in %d tables, indexes or triggers",
			version, len(extra))
	}
	return nil
}

// schemaObject is a table, index, trigger or view of a file's schema.
type schemaObject struct {
	table string // the table it belongs to
	def   string // its type and SQL
}

// schemaOf returns each object in the file's schema by name, leaving out
// the statistics tables that ANALYZE may add.
func schemaOf(ctx context.Context, q queryer) (map[string]schemaObject, error) {
	rows, err := q.QueryContext(ctx, `SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema
		WHERE name NOT LIKE 'sqlite_stat%'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]schemaObject)
	for rows.Next() {
		var typ, name, table, sql string
		if err := rows.Scan(&typ, &name, &table, &sql); err != nil {
			return nil, err
		}
		out[name] = schemaObject{table: table, def: typ + " " + sql}
	}
	return out, rows.Err()
}

// referenceSchemas caches referenceSchema by migration set and version.
var referenceSchemas sync.Map

type referenceKey struct {
	set     *migrationSet
	version int
}

// referenceSchema returns the schema that the tenant migrations up to
// version make, built once per version in a private in-memory database.
func referenceSchema(ctx context.Context, version int) (map[string]schemaObject, error) {
	set := tenantMigrations
	key := referenceKey{set, version}
	if s, ok := referenceSchemas.Load(key); ok {
		return s.(map[string]schemaObject), nil
	}
	// One connection only: every connection to :memory: has a database of
	// its own.
	db, err := sql.Open("sqlite", "file::memory:?mode=memory")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, m := range set.migrations[:version] {
		if _, err := db.ExecContext(ctx, m.sql); err != nil {
			return nil, fmt.Errorf("reference schema: %s: %w", m.name, err)
		}
	}
	s, err := schemaOf(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("reference schema: %w", err)
	}
	referenceSchemas.Store(key, s)
	return s, nil
}

// swapIn makes the checked file at tmp tenant id's file. It records the
// tenant in the catalog first (creating it when missing), so that a
// tenant file never exists without its tenant; then, with the tenant
// locked in the pool, it renames tmp over the tenant's file in one step.
func (s *Store) swapIn(ctx context.Context, id, tmp string, res *ImportResult) error {
	name := id
	if res.Manifest != nil && res.Manifest.TenantName != "" {
		name = res.Manifest.TenantName
	}
	if _, err := s.Catalog.Tenant(ctx, id); runmerge.ErrorCode(err) == runmerge.ENOTFOUND {
		now := runmerge.Now()
		t := &runmerge.Tenant{ID: id, Name: name, Status: runmerge.TenantActive, CreatedAt: now, UpdatedAt: now}
		err := s.Catalog.CreateTenant(ctx, t)
		switch {
		case runmerge.ErrorCode(err) == runmerge.ECONFLICT:
			// Created meanwhile, by another import say: replace it.
		case err != nil:
			return err
		default:
			res.Created = true
		}
	} else if err != nil {
		return err
	}
	if err := retarget(ctx, tmp, id, res, s.Pool.cfg.Options); err != nil {
		return s.undoCreate(ctx, id, res, err)
	}

	unlock, err := s.Pool.Lock(ctx, id)
	if err != nil {
		return s.undoCreate(ctx, id, res, err)
	}
	defer unlock()
	if err := replaceFile(ctx, tmp, s.Pool.Path(id), s.Pool.cfg.Options); err != nil {
		return s.undoCreate(ctx, id, res, fmt.Errorf("import tenant %s: %w", id, err))
	}

	// The file is in place; what follows only keeps the catalog's notes
	// about it up to date, and a failure there is reported, not undone.
	ctx = context.WithoutCancel(ctx)
	var errs []error
	for c, n := range res.Records {
		if n+res.Tombstones[c] == 0 {
			continue
		}
		if err := s.Catalog.MarkTenantCollection(ctx, id, c); err != nil {
			errs = append(errs, err)
		} else {
			s.marked.Store(id+"/"+c, true)
		}
	}
	errs = append(errs, s.Catalog.SetTenantSchemaVersion(ctx, id, res.SchemaVersion, ""))
	s.tenantChanged(id)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("import tenant %s: file in place, catalog not updated: %w", id, err)
	}
	return nil
}

// undoCreate takes a tenant that swapIn created back out of the catalog
// after a failure, and returns err.
func (s *Store) undoCreate(ctx context.Context, id string, res *ImportResult, err error) error {
	if res.Created {
		err = errors.Join(err, s.Catalog.DeleteTenant(context.WithoutCancel(ctx), id))
	}
	return err
}

// retarget makes an import taken from another tenant belong to id: the
// change events in its outbox name their tenant, and its saved idempotent
// responses were made for another tenant's keys.
func retarget(ctx context.Context, path, id string, res *ImportResult, o Options) error {
	if res.Manifest != nil && res.Manifest.TenantID == id {
		return nil
	}
	db, err := sql.Open("sqlite", standaloneDSN(path, o, false))
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `UPDATE changes SET data = json_set(data, '$.tenantId', ?)
		WHERE json_extract(data, '$.tenantId') IS NOT ?;
		DELETE FROM idempotency;`, id, id)
	if err != nil {
		return fmt.Errorf("import: rename tenant in change events: %w", err)
	}
	return db.Close()
}

// replaceFile renames tmp over the tenant file at path. The caller holds
// the tenant locked in this process's pool; another process (a CLI
// command beside the server, or the server beside one) may still have the
// old file open, so replaceFile first takes the old file over with an
// exclusive lock, which SQLite grants only when no other connection has
// it open, and holds that lock across the rename.
func replaceFile(ctx context.Context, tmp, path string, o Options) error {
	if _, err := os.Stat(path); err == nil {
		release, err := lockOldFile(ctx, path, o)
		if err != nil {
			return err
		}
		defer release()
	}
	// A WAL left beside the old file would be read as part of the new one,
	// so it goes before the new file takes the name.
	for _, p := range []string{path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// errTenantInUse is returned when another process holds a tenant file open.
var errTenantInUse = runmerge.Errorf(runmerge.ECONFLICT,
	"the tenant's file is open in another process (a running server?); "+
		"import through the server's API, or retry once the tenant is idle")

// lockOldFile takes the tenant file at path out of WAL mode and holds an
// exclusive lock on it until release is called. Leaving WAL mode needs
// every other connection to be closed, so it fails, with errTenantInUse,
// when another process uses the file. A file too damaged to open is not
// locked; it is replaced all the same.
func lockOldFile(ctx context.Context, path string, o Options) (release func(), err error) {
	dsn := standaloneDSN(path, o, false)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		if isBusy(err) {
			return nil, errTenantInUse
		}
		return func() {}, nil
	}
	release = func() {
		conn.ExecContext(context.Background(), `ROLLBACK`)
		conn.Close()
		db.Close()
	}
	var mode string
	if err := conn.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		release()
		if isBusy(err) {
			return nil, errTenantInUse
		}
		return func() {}, nil
	}
	if !strings.EqualFold(mode, "delete") {
		release()
		return nil, errTenantInUse
	}
	_, err = conn.ExecContext(ctx, `PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE`)
	if err != nil {
		release()
		if isBusy(err) {
			return nil, errTenantInUse
		}
		return nil, fmt.Errorf("lock tenant file: %w", err)
	}
	return release, nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
