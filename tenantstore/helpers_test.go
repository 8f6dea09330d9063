package tenantstore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTestPool returns a pool over cfg.Dir (a new temporary directory when
// empty) that the test closes when it ends, failing if the close does.
func newTestPool(tb testing.TB, cfg PoolConfig) *Pool {
	tb.Helper()
	if cfg.Dir == "" {
		cfg.Dir = tb.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	p, err := NewPool(cfg)
	if err != nil {
		tb.Fatalf("new pool: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			tb.Errorf("close pool: %v", err)
		}
	})
	return p
}

// mustCreate makes the files of tenants ids.
func mustCreate(tb testing.TB, p *Pool, ids ...string) {
	tb.Helper()
	for _, id := range ids {
		if err := p.Create(context.Background(), id); err != nil {
			tb.Fatalf("create tenant %s: %v", id, err)
		}
	}
}

// createTenants makes n tenant files named t0000, t0001… with Pool.Create,
// one worker per CPU, and returns their ids.
func createTenants(tb testing.TB, p *Pool, n int) []string {
	tb.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%04d", i)
	}
	next := make(chan string)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for id := range next {
				if err := p.Create(context.Background(), id); err != nil {
					errs <- fmt.Errorf("create tenant %s: %w", id, err)
				}
			}
		})
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return ids
}

// mustAcquire leases tenant id and releases it when the test ends, unless
// the test has released it already.
func mustAcquire(tb testing.TB, p *Pool, id string) *Lease {
	tb.Helper()
	l, err := p.Acquire(context.Background(), id)
	if err != nil {
		tb.Fatalf("acquire %s: %v", id, err)
	}
	tb.Cleanup(l.Release)
	return l
}

// touch acquires tenant id and releases it at once.
func touch(tb testing.TB, p *Pool, id string) {
	tb.Helper()
	l, err := p.Acquire(context.Background(), id)
	if err != nil {
		tb.Fatalf("acquire %s: %v", id, err)
	}
	l.Release()
}

// mustWrite runs one statement through db's writer.
func mustWrite(tb testing.TB, db *DB, query string, args ...any) {
	tb.Helper()
	err := db.Write(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	})
	if err != nil {
		tb.Fatalf("write %q: %v", query, err)
	}
}

// mustCount returns the single integer query returns through db's readers.
func mustCount(tb testing.TB, db *DB, query string, args ...any) int {
	tb.Helper()
	var n int
	if err := db.r.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		tb.Fatalf("read %q: %v", query, err)
	}
	return n
}

// openFiles returns, for every file under dir that this process holds open,
// the number of descriptors it holds on it. It reads /proc/self/fd, so it
// skips the test where there is no such directory.
func openFiles(tb testing.TB, dir string) map[string]int {
	tb.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Skipf("cannot list open files: %v", err)
	}
	// The kernel reports resolved paths.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	prefix := filepath.Clean(dir) + string(filepath.Separator)
	files := make(map[string]int)
	for _, fd := range fds {
		// A descriptor may close between the listing and the readlink;
		// it is then simply not open any more.
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, prefix) {
			files[target]++
		}
	}
	return files
}

// openTenantFiles counts the main database files (not -wal or -shm) under
// dir that are open, however many descriptors each has.
func openTenantFiles(tb testing.TB, dir string) int {
	tb.Helper()
	n := 0
	for f := range openFiles(tb, dir) {
		if strings.HasSuffix(f, ".db") {
			n++
		}
	}
	return n
}

// countFDs returns how many descriptors the process has open.
func countFDs(tb testing.TB) int {
	tb.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Skipf("cannot list open files: %v", err)
	}
	return len(fds)
}

// waitFor polls cond until it holds or d has passed, and reports whether it
// held.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fileOpen reports whether this process holds any descriptor on path.
func fileOpen(tb testing.TB, path string) bool {
	tb.Helper()
	return openFiles(tb, filepath.Dir(path))[path] > 0
}

// testLogger returns a logger that writes to the test's log and fails the
// test on every record at level Error: the pool logs only what went wrong.
func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(&testHandler{tb: tb})
}

type testHandler struct {
	tb    testing.TB
	attrs []slog.Attr
}

func (h *testHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *testHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	each := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		each(a)
	}
	r.Attrs(each)
	if r.Level >= slog.LevelError {
		h.tb.Errorf("pool logged an error: %s", b.String())
	} else {
		h.tb.Logf("pool log: %s", b.String())
	}
	return nil
}

func (h *testHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &testHandler{tb: h.tb, attrs: append(slices.Clip(h.attrs), attrs...)}
}

func (h *testHandler) WithGroup(string) slog.Handler { return h }
