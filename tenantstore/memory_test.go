package tenantstore

import (
	"context"
	"fmt"
	"testing"
)

// TestSQLiteMemoryLimit checks that SQLite's memory is counted and that the
// soft limit holds it: tenants whose page caches could together take far
// more than the limit stay near it, and every read still succeeds.
func TestSQLiteMemoryLimit(t *testing.T) {
	const limit = 8 << 20
	ctx := context.Background()
	s, err := Open(ctx, Config{DataDir: t.TempDir(), MaxOpen: 64, MemoryLimit: limit,
		Options: Options{CacheKiB: 4096}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		s.Close(ctx)
		setSQLiteMemoryLimit(0)
	}()
	if SQLiteMemory() <= 0 {
		t.Fatal("SQLite memory is not counted")
	}

	// 16 tenants of about 2 MiB each, every page read once: their caches
	// could hold 32 MiB, four times the limit.
	var peak int64
	for i := range 16 {
		id := fmt.Sprintf("m%d", i)
		if err := s.Pool.Create(ctx, id); err != nil {
			t.Fatal(err)
		}
		l, err := s.Pool.Acquire(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		db := l.DB()
		if _, err := db.w.ExecContext(ctx, `CREATE TABLE filler (b BLOB);
			WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
			INSERT INTO filler SELECT randomblob(1000) FROM n`); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM filler WHERE length(b) = 1000`).Scan(&n); err != nil || n != 2000 {
			t.Fatalf("read back %d rows: %v", n, err)
		}
		peak = max(peak, SQLiteMemory())
		l.Release()
	}
	if peak > 2*limit {
		t.Errorf("SQLite memory peaked at %d MiB with a limit of %d MiB", peak>>20, limit>>20)
	}
	t.Logf("SQLite memory peak %.1f MiB, limit %d MiB", float64(peak)/(1<<20), limit>>20)
}
