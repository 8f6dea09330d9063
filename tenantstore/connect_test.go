package tenantstore

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"testing"
	"time"
)

// connPragmas is what one connection says of its settings.
type connPragmas struct {
	busyTimeout int
	journalMode string
	synchronous int
	foreignKeys int
	queryOnly   int
}

func readPragmas(tb testing.TB, c *sql.Conn) connPragmas {
	tb.Helper()
	var p connPragmas
	err := c.QueryRowContext(context.Background(), `SELECT
		(SELECT timeout FROM pragma_busy_timeout),
		(SELECT journal_mode FROM pragma_journal_mode),
		(SELECT synchronous FROM pragma_synchronous),
		(SELECT foreign_keys FROM pragma_foreign_keys),
		(SELECT query_only FROM pragma_query_only)`).Scan(
		&p.busyTimeout, &p.journalMode, &p.synchronous, &p.foreignKeys, &p.queryOnly)
	if err != nil {
		tb.Fatalf("read pragmas: %v", err)
	}
	return p
}

// TestConnectionPragmas checks the settings of every connection to a tenant
// file, the writer and each reader, for each synchronous level.
func TestConnectionPragmas(t *testing.T) {
	levels := map[string]int{"": 1, "OFF": 0, "normal": 1, "NORMAL": 1, "FULL": 2, "EXTRA": 3}
	const readers = 3
	for level, want := range levels {
		t.Run("synchronous="+level, func(t *testing.T) {
			o := Options{Synchronous: level, BusyTimeout: 1234 * time.Millisecond, Readers: readers}
			p := newTestPool(t, PoolConfig{MaxOpen: 10, Options: o})
			mustCreate(t, p, "acme")
			db := mustAcquire(t, p, "acme").DB()
			ctx := context.Background()

			conns := []*sql.Conn{mustConn(t, db.w)}
			// Held at once, the readers are as many connections.
			for range readers {
				conns = append(conns, mustConn(t, db.r))
			}
			for i, c := range conns {
				got := readPragmas(t, c)
				wantQueryOnly := 1
				if i == 0 {
					wantQueryOnly = 0
				}
				if got != (connPragmas{1234, "wal", want, 1, wantQueryOnly}) {
					t.Errorf("connection %d (0 is the writer): %+v", i, got)
				}
			}
			if st := db.r.Stats(); st.OpenConnections != readers {
				t.Errorf("%d reader connections open, want %d", st.OpenConnections, readers)
			}

			var appID int32
			var version int
			err := conns[0].QueryRowContext(ctx, `SELECT
				(SELECT application_id FROM pragma_application_id),
				(SELECT user_version FROM pragma_user_version)`).Scan(&appID, &version)
			if err != nil {
				t.Fatal(err)
			}
			if appID != tenantApplicationID || version != TenantSchemaVersion() {
				t.Errorf("file has application_id %#x, user_version %d; want %#x, %d",
					appID, version, tenantApplicationID, TenantSchemaVersion())
			}
		})
	}
}

// mustConn takes one connection of db for the rest of the test.
func mustConn(tb testing.TB, db *sql.DB) *sql.Conn {
	tb.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// TestReadersCannotWrite checks that a reader connection refuses writes.
func TestReadersCannotWrite(t *testing.T) {
	p := newTestPool(t, PoolConfig{MaxOpen: 10})
	mustCreate(t, p, "acme")
	db := mustAcquire(t, p, "acme").DB()
	if _, err := db.r.Exec("CREATE TABLE t (n INTEGER)"); err == nil {
		t.Error("a reader created a table")
	}
}

// minSQLiteVersion is the oldest SQLite the store is meant to run on.
const minSQLiteVersion = "3.51.3"

// TestSQLiteVersion checks the version of SQLite the driver carries.
func TestSQLiteVersion(t *testing.T) {
	p := newTestPool(t, PoolConfig{MaxOpen: 10})
	mustCreate(t, p, "acme")
	db := mustAcquire(t, p, "acme").DB()
	var v string
	if err := db.r.QueryRow("SELECT sqlite_version()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if compareVersions(v, minSQLiteVersion) < 0 {
		t.Errorf("SQLite %s, want at least %s", v, minSQLiteVersion)
	}
	t.Logf("SQLite %s", v)
}

// compareVersions compares dotted version numbers a and b numerically,
// returning -1, 0 or +1.
func compareVersions(a, b string) int {
	x, y := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(x), len(y)) {
		var m, n int
		if i < len(x) {
			m, _ = strconv.Atoi(x[i])
		}
		if i < len(y) {
			n, _ = strconv.Atoi(y[i])
		}
		if m != n {
			if m < n {
				return -1
			}
			return 1
		}
	}
	return 0
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"3.51.3", "3.51.3", 0},
		{"3.51.10", "3.51.3", 1},
		{"3.9.0", "3.51.3", -1},
		{"4.0", "3.51.3", 1},
		{"3.51", "3.51.3", -1},
	}
	for _, tt := range tests {
		if got := compareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestCatalogPragmas checks that the catalog, which shares connect and
// migrate with the tenant files, is in WAL mode and marked as a catalog.
func TestCatalogPragmas(t *testing.T) {
	c, err := OpenCatalog(context.Background(), t.TempDir(), Options{BusyTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}) // after the connections taken below are back
	for i, db := range []*sql.DB{c.w, c.r} {
		got := readPragmas(t, mustConn(t, db))
		if got.journalMode != "wal" || got.busyTimeout != 1000 || got.foreignKeys != 1 {
			t.Errorf("catalog connection %d (0 is the writer): %+v", i, got)
		}
	}
	var appID int32
	if err := c.r.QueryRow("PRAGMA application_id").Scan(&appID); err != nil {
		t.Fatal(err)
	}
	if appID != catalogApplicationID {
		t.Errorf("catalog application_id %#x, want %#x", appID, catalogApplicationID)
	}
}
