package tenantstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"modernc.org/sqlite"

	"github.com/runmerge/runmerge"
)

// statements counts what connections of the "sqlite-counting" driver run:
// every query, exec, prepare and transaction begun. Setting a connection's
// pragmas from its DSN is part of opening it, and not counted.
var statements atomic.Int64

func init() {
	sql.Register("sqlite-counting", countingDriver{})
}

type countingDriver struct{}

func (countingDriver) Open(name string) (driver.Conn, error) {
	c, err := (&sqlite.Driver{}).Open(name)
	if err != nil {
		return nil, err
	}
	return countingConn{c}, nil
}

type countingConn struct{ driver.Conn }

func (c countingConn) Prepare(query string) (driver.Stmt, error) {
	statements.Add(1)
	return c.Conn.Prepare(query)
}

func (c countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	statements.Add(1)
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

func (c countingConn) QueryContext(
	ctx context.Context, query string, args []driver.NamedValue,
) (driver.Rows, error) {
	statements.Add(1)
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
}

func (c countingConn) ExecContext(
	ctx context.Context, query string, args []driver.NamedValue,
) (driver.Result, error) {
	statements.Add(1)
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
}

func (c countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	statements.Add(1)
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

// countStatements returns how many statements f runs on a writer handle of
// the tenant file at path, opened as connect opens it.
func countStatements(tb testing.TB, path string, mode connMode, f func(db *sql.DB)) int64 {
	tb.Helper()
	db, err := sql.Open("sqlite-counting", dsn(path, Options{}.withDefaults(), mode))
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// Open the connection first, so that f is charged for its statements
	// only.
	if err := db.PingContext(context.Background()); err != nil {
		tb.Fatal(err)
	}
	before := statements.Load()
	f(db)
	return statements.Load() - before
}

// TestMigrateCurrentFileCostsOneQuery checks that bringing a file that is
// already current to the current schema reads its header and does nothing
// else: no transaction, no write.
func TestMigrateCurrentFileCostsOneQuery(t *testing.T) {
	dir := t.TempDir()
	closedTenant(t, dir, "acme")
	path := dir + "/acme.db"
	ctx := context.Background()

	n := countStatements(t, path, modeWrite, func(db *sql.DB) {
		before, err := tenantMigrations.migrate(ctx, db)
		if err != nil || before != TenantSchemaVersion() {
			t.Fatalf("migrate a current file: version %d, error %v", before, err)
		}
	})
	if n != 1 {
		t.Errorf("migrating a current file ran %d statements, want 1", n)
	}

	// The counter sees a real migration, so the 1 above is not for want of
	// counting.
	n = countStatements(t, dir+"/new.db", modeCreate, func(db *sql.DB) {
		if _, err := tenantMigrations.migrate(ctx, db); err != nil {
			t.Fatalf("migrate a new file: %v", err)
		}
	})
	if n < 3 {
		t.Errorf("migrating a new file ran %d statements, "+
			"want a header read, a begin and the migrations", n)
	}
}

// TestOpenCurrentFileTakesNoWriteLock opens a current tenant file while
// another connection holds its write lock: the open only reads, so it must
// not wait for the lock.
func TestOpenCurrentFileTakesNoWriteLock(t *testing.T) {
	dir := t.TempDir()
	closedTenant(t, dir, "acme")
	other := rawOpen(t, dir+"/acme.db")
	if _, err := other.Exec("BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer other.Exec("ROLLBACK")

	o := Options{BusyTimeout: 10 * time.Millisecond}
	p := newTestPool(t, PoolConfig{Dir: dir, MaxOpen: 10, Options: o})
	start := time.Now()
	l := mustAcquire(t, p, "acme")
	if d := time.Since(start); d > time.Second {
		t.Errorf("opening a current file took %v", d)
	}
	l.Release()
}

// rawOpen opens path with no pragmas of the store's, on one connection,
// closed when the test ends.
func rawOpen(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=rwc")
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	tb.Cleanup(func() { db.Close() })
	return db
}

// rawExec runs statements on the file at path with a connection of its own.
func rawExec(tb testing.TB, path string, stmts ...string) {
	tb.Helper()
	db := rawOpen(tb, path)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			tb.Fatalf("%s: %s: %v", path, s, err)
		}
	}
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
}

// TestOpenRefusesForeignFiles puts files that are not Runmerge tenant files,
// or are from a newer Runmerge, where tenant files go, and checks that the
// pool refuses them with a validation error and leaves them as they were.
func TestOpenRefusesForeignFiles(t *testing.T) {
	newer := TenantSchemaVersion() + 1
	tests := []struct {
		name  string
		setup []string
		want  string // in the error message
	}{
		{"other application", []string{"PRAGMA application_id = 1234", "CREATE TABLE x (a)"},
			"not a Runmerge tenant file"},
		{"catalog", []string{fmt.Sprintf("PRAGMA application_id = %d", catalogApplicationID),
			"CREATE TABLE x (a)"},
			"not a Runmerge tenant file"},
		{"plain database", []string{"CREATE TABLE x (a)"}, "not a Runmerge tenant file"},
		{"newer schema", nil, "newer than this server knows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := dir + "/acme.db"
			if tt.setup == nil {
				closedTenant(t, dir, "acme")
				rawExec(t, path, fmt.Sprintf("PRAGMA user_version = %d", newer))
			} else {
				rawExec(t, path, tt.setup...)
			}
			before := fileHeaderOf(t, path)

			p := newTestPool(t, PoolConfig{Dir: dir, MaxOpen: 10})
			ctx := context.Background()
			for _, op := range []struct {
				name string
				do   func() error
			}{
				{"acquire", func() error {
					l, err := p.Acquire(ctx, "acme")
					if err == nil {
						l.Release()
					}
					return err
				}},
				{"create", func() error { return p.Create(ctx, "acme") }},
			} {
				err := op.do()
				code := runmerge.ErrorCode(err)
				if code != runmerge.EINVALID || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: %v, want a %s error saying %q",
						op.name, err, runmerge.EINVALID, tt.want)
				}
			}
			if p.IsOpen("acme") {
				t.Error("the refused file is open in the pool")
			}
			if files := filesUnder(t, dir); len(files) != 1 {
				t.Errorf("files beside the refused one: %q", files)
			}
			if after := fileHeaderOf(t, path); after != before {
				t.Errorf("the refused file changed: header %+v, was %+v", after, before)
			}
		})
	}
}

// TestOpenRefusesGarbage puts bytes that are not an SQLite database where a
// tenant file goes: opening it fails, and the bytes stay as they were.
func TestOpenRefusesGarbage(t *testing.T) {
	dir := t.TempDir()
	garbage := []byte(strings.Repeat("not a database ", 500))
	if err := os.WriteFile(dir+"/acme.db", garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	p := newTestPool(t, PoolConfig{Dir: dir, MaxOpen: 10})
	if l, err := p.Acquire(context.Background(), "acme"); err == nil {
		l.Release()
		t.Fatal("a file of garbage opened as a tenant")
	}
	got, err := os.ReadFile(dir + "/acme.db")
	if err != nil || string(got) != string(garbage) {
		t.Errorf("the file changed (read error %v)", err)
	}
}

// fileHeaderOf reads the header of the database at path without the
// store's code.
func fileHeaderOf(tb testing.TB, path string) fileHeader {
	tb.Helper()
	db := rawOpen(tb, path)
	defer db.Close()
	h, err := readHeader(context.Background(), db)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// TestLoadMigrationsRefusesGaps checks that migrations must be numbered 1,
// 2, 3… and named NNNN_description.sql.
func TestLoadMigrationsRefusesGaps(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("CREATE TABLE x (a);")}
	tests := []struct {
		name  string
		files []string
		ok    bool
	}{
		{"in order", []string{"0001_a.sql", "0002_b.sql"}, true},
		{"other files ignored", []string{"0001_a.sql", "README.md"}, true},
		{"gap", []string{"0001_a.sql", "0003_c.sql"}, false},
		{"not from one", []string{"0002_b.sql"}, false},
		{"twice the same number", []string{"0001_a.sql", "0001_b.sql"}, false},
		{"no number", []string{"init.sql"}, false},
		{"zero", []string{"0000_a.sql"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range tt.files {
				fsys["m/"+f] = file
			}
			_, err := loadMigrations(fsys, "m", 1)
			if (err == nil) != tt.ok {
				t.Errorf("load %v: error %v, want ok %v", tt.files, err, tt.ok)
			}
		})
	}
}
