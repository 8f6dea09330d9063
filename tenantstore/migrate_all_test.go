package tenantstore

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runmerge/runmerge"
)

// copyTenants makes n small tenants t00000, t00001… quickly: one is
// created and given a record, and its closed file is copied for the rest,
// which are recorded in the catalog in one transaction.
func copyTenants(tb testing.TB, s *Store, n int) []string {
	tb.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%05d", i)
	}
	mustCreateTenant(tb, s, ids[0])
	mustCreatePerson(tb, s, ids[0], 1)
	closeTenant(tb, s, ids[0])
	data, err := os.ReadFile(s.Pool.Path(ids[0]))
	if err != nil {
		tb.Fatal(err)
	}
	tx, err := s.Catalog.w.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	now := formatTime(runmerge.Now())
	for _, id := range ids[1:] {
		if err := os.WriteFile(s.Pool.Path(id), data, 0o640); err != nil {
			tb.Fatal(err)
		}
		_, err := tx.Exec(`INSERT INTO tenants (id, name, status, created_at, updated_at)
			VALUES (?, ?, 'active', ?, ?)`, id, id, now, now)
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	return ids
}

// schemaVersions counts the tenants at each schema version, as their files
// and as the catalog say.
func schemaVersions(tb testing.TB, s *Store, ids []string) (files, catalog map[int]int) {
	tb.Helper()
	ctx := context.Background()
	files, catalog = map[int]int{}, map[int]int{}
	for _, id := range ids {
		db, err := connect(s.Pool.Path(id), s.Pool.cfg.Options, modeRead)
		if err != nil {
			tb.Fatal(err)
		}
		h, err := readHeader(ctx, db)
		db.Close()
		if err != nil {
			tb.Fatal(err)
		}
		files[h.userVersion]++
		ts, err := s.Catalog.TenantSchemaOf(ctx, id)
		if err != nil {
			tb.Fatal(err)
		}
		if ts.MigrateError != "" {
			tb.Errorf("tenant %s: migrate error %q", id, ts.MigrateError)
		}
		catalog[ts.Version]++
	}
	return files, catalog
}

// TestMigrateAllResumes migrates 2,000 tenants one version up, interrupts
// the run part way, and runs it again: every tenant ends at the new
// version, in its file and in the catalog, and the second run does only
// what the first left.
func TestMigrateAllResumes(t *testing.T) {
	const n = 2000
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	ids := copyTenants(t, s, n)
	set := probeMigrationSet(t)

	// Interrupt the first run after a quarter of the tenants.
	runCtx, cancel := context.WithCancel(ctx)
	var seen atomic.Int64
	first, err := s.migrateAll(runCtx, set, MigrateOptions{Parallel: 8, Progress: func(done, total int) {
		if total != n {
			t.Errorf("progress total %d, want %d", total, n)
		}
		if seen.Add(1) == n/4 {
			cancel()
		}
	}})
	if err == nil {
		t.Fatal("interrupted run returned no error")
	}
	if first.Migrated < n/4 || first.Migrated >= n || len(first.Failed) != 0 {
		t.Fatalf("first run: %d migrated, %d failed; want at least %d of %d and no failures",
			first.Migrated, len(first.Failed), n/4, n)
	}

	second, err := s.migrateAll(ctx, set, MigrateOptions{Parallel: 8})
	if err != nil {
		t.Fatal(err)
	}
	if second.Migrated+first.Migrated != n || second.Total > n-first.Migrated {
		t.Errorf("second run looked at %d and migrated %d after the first migrated %d; want %d in all",
			second.Total, second.Migrated, first.Migrated, n)
	}
	files, catalog := schemaVersions(t, s, ids)
	if files[set.latest()] != n || catalog[set.latest()] != n {
		t.Errorf("versions: files %v, catalog %v; want all %d at %d", files, catalog, n, set.latest())
	}

	third, err := s.migrateAll(ctx, set, MigrateOptions{})
	if err != nil || third.Total != 0 {
		t.Errorf("third run looked at %d tenants (%v), want none", third.Total, err)
	}
}

func TestMigrateAllRecordsErrors(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	ids := copyTenants(t, s, 4)
	os.Remove(s.Pool.Path(ids[1]))
	os.WriteFile(s.Pool.Path(ids[2]), []byte("not a database at all, not even close to one"), 0o640)

	// ids[0] was created through the store, which records its version;
	// the copies are not recorded yet.
	sum, err := s.MigrateAll(ctx, MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Total != 3 || sum.Current != 1 || len(sum.Failed) != 2 {
		t.Errorf("summary = %+v, want 3 looked at: 1 current and 2 failed", sum)
	}
	for _, id := range ids[1:3] {
		ts, err := s.Catalog.TenantSchemaOf(ctx, id)
		if err != nil || ts.MigrateError == "" {
			t.Errorf("tenant %s: catalog = %+v, %v; want an error recorded", id, ts, err)
		}
	}
	for _, id := range []string{ids[0], ids[3]} {
		ts, _ := s.Catalog.TenantSchemaOf(ctx, id)
		if ts.Version != TenantSchemaVersion() || ts.MigrateError != "" {
			t.Errorf("tenant %s: catalog = %+v", id, ts)
		}
	}

	// Failed tenants are looked at again on the next run.
	again, err := s.MigrateAll(ctx, MigrateOptions{})
	if err != nil || again.Total != 2 {
		t.Errorf("second run looked at %d tenants (%v), want 2", again.Total, err)
	}
}

// TestMigrateAllRate measures how fast small tenants are migrated. It
// runs with RUNMERGE_BENCH_MIGRATE=N (tenants; 10000 in the figures of
// docs/benchmarks.md) and fails below 500 tenants/s.
func TestMigrateAllRate(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("RUNMERGE_BENCH_MIGRATE"))
	if n == 0 {
		t.Skip("set RUNMERGE_BENCH_MIGRATE=10000 to measure")
	}
	s := openTestStore(t, t.TempDir())
	copyTenants(t, s, n)
	set := probeMigrationSet(t)
	parallel, _ := strconv.Atoi(os.Getenv("RUNMERGE_BENCH_MIGRATE_PARALLEL"))
	cpu0 := cpuTime()
	start := time.Now()
	sum, err := s.migrateAll(context.Background(), set, MigrateOptions{Parallel: parallel})
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	if err != nil {
		t.Fatal(err)
	}
	rate := float64(sum.Migrated) / elapsed.Seconds()
	t.Logf("migrated %d tenants in %s: %.0f tenants/s; %.0f µs of CPU per tenant", sum.Migrated,
		elapsed.Round(time.Millisecond), rate, float64(cpu.Microseconds())/float64(sum.Migrated))
	if sum.Migrated != n || rate < 500 {
		t.Errorf("migrated %d of %d at %.0f tenants/s, want all at 500/s or more", sum.Migrated, n, rate)
	}
}

// cpuTime returns the CPU time, user and system, the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
