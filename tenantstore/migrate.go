package tenantstore

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/schema"
)

// migration is one numbered SQL file of the schema package.
type migration struct {
	version int
	name    string
	sql     string
}

// migrationSet is the ordered migrations of one kind of file.
type migrationSet struct {
	kind          string // "catalog" or "tenant"
	applicationID int32
	migrations    []migration
}

// latest returns the version a file has once every migration is applied.
func (s *migrationSet) latest() int {
	if len(s.migrations) == 0 {
		return 0
	}
	return s.migrations[len(s.migrations)-1].version
}

var (
	catalogMigrations = mustLoadMigrations("catalog", catalogApplicationID)
	tenantMigrations  = mustLoadMigrations("tenant", tenantApplicationID)
)

// TenantSchemaVersion is the schema version of tenant files this build writes.
func TenantSchemaVersion() int { return tenantMigrations.latest() }

func mustLoadMigrations(kind string, appID int32) *migrationSet {
	s, err := loadMigrations(schema.FS, kind, appID)
	if err != nil {
		panic(err)
	}
	return s
}

// loadMigrations reads the migrations under dir of fsys. Their numbers must
// run 1, 2, 3… without gaps, so that a missing file cannot go unnoticed.
func loadMigrations(fsys fs.FS, dir string, appID int32) (*migrationSet, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read %s migrations: %w", dir, err)
	}
	set := &migrationSet{kind: dir, applicationID: appID}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s/%s: name must start with a positive number and '_'", dir, e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		set.migrations = append(set.migrations, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(set.migrations, func(i, j int) bool { return set.migrations[i].version < set.migrations[j].version })
	for i, m := range set.migrations {
		if m.version != i+1 {
			return nil, fmt.Errorf("%s migrations: expected number %d, found %s", dir, i+1, m.name)
		}
	}
	return set, nil
}

// fileHeader is what a file says about itself.
type fileHeader struct {
	applicationID int32
	userVersion   int
	tables        int
	journalMode   string // "wal" for every file the store has opened before
}

func readHeader(ctx context.Context, q querier) (fileHeader, error) {
	var h fileHeader
	err := q.QueryRowContext(ctx, `SELECT
		(SELECT application_id FROM pragma_application_id),
		(SELECT user_version FROM pragma_user_version),
		(SELECT count(*) FROM sqlite_schema),
		(SELECT journal_mode FROM pragma_journal_mode)`).Scan(
		&h.applicationID, &h.userVersion, &h.tables, &h.journalMode)
	return h, err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// checkHeader refuses a file that belongs to another application or was
// written by a newer server. An empty file (no tables, no application id)
// is a new file.
func (s *migrationSet) checkHeader(h fileHeader) error {
	switch {
	case h.applicationID == 0 && h.userVersion == 0 && h.tables == 0:
		return nil
	case h.applicationID != s.applicationID:
		return runmerge.Errorf(runmerge.EINVALID, "not a Runmerge %s file", s.kind)
	case h.userVersion > s.latest():
		return runmerge.Errorf(runmerge.EINVALID,
			"%s file has schema version %d, newer than this server knows (%d)", s.kind, h.userVersion, s.latest())
	}
	return nil
}

// current reports whether a file with header h needs nothing done: it is
// ours, in WAL mode and at the latest version.
func (s *migrationSet) current(h fileHeader) bool {
	return h.applicationID == s.applicationID && h.userVersion == s.latest() && h.journalMode == "wal"
}

// migrate brings the file behind db (the writer handle) to the latest
// version, in WAL mode. A file that is already current costs one query. It
// returns the version the file had before.
func (s *migrationSet) migrate(ctx context.Context, db *sql.DB) (int, error) {
	h, err := readHeader(ctx, db)
	if err != nil {
		return 0, fmt.Errorf("read %s header: %w", s.kind, err)
	}
	if err := s.checkHeader(h); err != nil {
		return h.userVersion, err
	}
	if h.journalMode != "wal" {
		if err := setWAL(ctx, db); err != nil {
			return h.userVersion, fmt.Errorf("%s file: %w", s.kind, err)
		}
	}
	if h.userVersion == s.latest() {
		return h.userVersion, nil
	}

	// BEGIN IMMEDIATE (the writer's transaction mode) takes the write lock
	// before the version is read again, so two processes opening the same
	// file cannot both apply a migration.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return h.userVersion, fmt.Errorf("begin %s migration: %w", s.kind, err)
	}
	defer tx.Rollback()
	if h, err = readHeader(ctx, tx); err != nil {
		return 0, fmt.Errorf("read %s header: %w", s.kind, err)
	}
	if err := s.checkHeader(h); err != nil {
		return h.userVersion, err
	}
	for _, m := range s.migrations[h.userVersion:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return h.userVersion, fmt.Errorf("apply %s migration %s: %w", s.kind, m.name, err)
		}
	}
	// PRAGMA arguments cannot be bound, so the numbers are formatted here;
	// both come from this build, never from input.
	pragmas := fmt.Sprintf("PRAGMA application_id = %d; PRAGMA user_version = %d",
		s.applicationID, s.latest())
	if _, err := tx.ExecContext(ctx, pragmas); err != nil {
		return h.userVersion, fmt.Errorf("stamp %s file: %w", s.kind, err)
	}
	return h.userVersion, tx.Commit()
}

// setWAL puts the file behind db in WAL mode, which it keeps from then on.
func setWAL(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return fmt.Errorf("set WAL mode: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("set WAL mode: file stays in %s mode", mode)
	}
	return nil
}

// txQuerier lets readHeader run inside a transaction.
var _ querier = (*sql.Tx)(nil)
