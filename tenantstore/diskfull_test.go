package tenantstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"modernc.org/sqlite"

	"github.com/runmerge/runmerge"
)

// fillUntilError inserts 8 KiB rows into a fresh WAL-mode file in dir,
// through a writer connection as the store opens one, until an insert
// fails, and returns that error; nil if 10,000 rows fit.
func fillUntilError(tb testing.TB, dir string, pragmas ...string) error {
	tb.Helper()
	db, err := connect(filepath.Join(dir, "fill.db"), Options{}, modeCreate)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	stmts := append([]string{"PRAGMA journal_mode=WAL", "CREATE TABLE t(b BLOB)"}, pragmas...)
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			tb.Fatalf("%s: %v", s, err)
		}
	}
	for range 10_000 {
		if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (randomblob(8192))"); err != nil {
			return err
		}
	}
	return nil
}

// wantDiskFull fails the test unless err, and err wrapped, count as a full
// disk and classify makes it an insufficient_storage error.
func wantDiskFull(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		tb.Fatal("no error")
	}
	if !isDiskFull(err) {
		tb.Errorf("isDiskFull(%v) = false, want true", err)
	}
	if !isDiskFull(fmt.Errorf("write person: %w", err)) {
		tb.Errorf("isDiskFull of the wrapped %v = false, want true", err)
	}
	if code := runmerge.ErrorCode(classify(err)); code != runmerge.EINSUFFICIENTSPACE {
		tb.Errorf("classify(%v) has code %q, want %q", err, code, runmerge.EINSUFFICIENTSPACE)
	}
	if !errors.Is(classify(err), err) {
		tb.Errorf("classify(%v) dropped the cause", err)
	}
}

// TestIsDiskFull checks isDiskFull against errors SQLite really returns:
// SQLITE_FULL from a file at its max_page_count counts, a constraint
// violation, a file that is not a database and errors from elsewhere do
// not.
func TestIsDiskFull(t *testing.T) {
	err := fillUntilError(t, t.TempDir(), "PRAGMA max_page_count=64")
	t.Logf("at max_page_count: %v (code %d)", err, sqliteErrCode(err))
	wantDiskFull(t, err)

	db, err := connect(filepath.Join(t.TempDir(), "u.db"), Options{}, modeCreate)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	db.ExecContext(ctx, "CREATE TABLE u(x UNIQUE)")
	db.ExecContext(ctx, "INSERT INTO u VALUES (1)")
	_, unique := db.ExecContext(ctx, "INSERT INTO u VALUES (1)")

	notDB := filepath.Join(t.TempDir(), "text.db")
	os.WriteFile(notDB, []byte(strings.Repeat("not a database\n", 100)), 0o600)
	ndb, err := connect(notDB, Options{}, modeWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer ndb.Close()
	_, notADatabase := ndb.ExecContext(ctx, "SELECT count(*) FROM sqlite_schema")

	for _, c := range []struct {
		name       string
		err        error
		fromSQLite bool
	}{
		{"unique", unique, true},
		{"not a database", notADatabase, true},
		{"no rows", sql.ErrNoRows, false},
		{"context", context.DeadlineExceeded, false},
		{"nil", nil, false},
	} {
		if c.fromSQLite && sqliteErrCode(c.err) == 0 {
			t.Errorf("%s: %v is not an SQLite error, so the case tests nothing", c.name, c.err)
		}
		if isDiskFull(c.err) {
			t.Errorf("%s: isDiskFull(%v) = true, want false", c.name, c.err)
		}
	}
}

// diskFullChild names the directory a child of
// TestIsDiskFullFileSizeLimit fills.
const diskFullChild = "RUNMERGE_TEST_DISKFULL_DIR"

// TestIsDiskFullFileSizeLimit runs the test binary again under a file-size
// limit (ulimit -f), where a write past the limit fails with EFBIG, which
// SQLite reports as SQLITE_IOERR_WRITE rather than SQLITE_FULL. The store
// must count it as a full disk. The limit applies to the whole process,
// hence the child.
func TestIsDiskFullFileSizeLimit(t *testing.T) {
	if dir := os.Getenv(diskFullChild); dir != "" {
		err := fillUntilError(t, dir)
		fmt.Printf("sqlite-code=%d\n", sqliteErrCode(err))
		wantDiskFull(t, err)
		return
	}
	if runtime.GOOS == "windows" {
		t.Skip("no ulimit on Windows")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash to set ulimit -f")
	}
	dir := t.TempDir()
	// 256 KiB: the file and its WAL stop growing well before 10,000 rows.
	cmd := exec.Command("bash", "-c",
		`ulimit -f 256 && exec "$0" -test.run='^TestIsDiskFullFileSizeLimit$' -test.v`, os.Args[0])
	cmd.Env = append(os.Environ(), diskFullChild+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child under ulimit -f: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "sqlite-code=") {
		t.Fatalf("the child did not fill the file:\n%s", out)
	}
	i := strings.Index(string(out), "sqlite-code=")
	t.Logf("past RLIMIT_FSIZE: %s", strings.Fields(string(out[i:]))[0])
}

// sqliteErrCode returns the extended SQLite result code of err, 0 when err
// is not from SQLite.
func sqliteErrCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}
