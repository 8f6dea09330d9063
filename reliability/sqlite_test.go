package reliability

import (
	"database/sql"
	"fmt"
	"testing"
)

// TestSQLiteVersion fails when the bundled SQLite is older than 3.51.3:
// older versions have a bug that can corrupt a WAL-mode database, the mode
// every Runmerge file runs in.
func TestSQLiteVersion(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+t.TempDir()+"/v.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow("SELECT sqlite_version()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	var major, minor, patch int
	if _, err := fmt.Sscanf(v, "%d.%d.%d", &major, &minor, &patch); err != nil {
		t.Fatalf("sqlite_version %q: %v", v, err)
	}
	if got, want := major*1_000_000+minor*1_000+patch, 3_051_003; got < want {
		t.Errorf("bundled SQLite %s, want 3.51.3 or later", v)
	}
	t.Logf("bundled SQLite %s", v)
}
