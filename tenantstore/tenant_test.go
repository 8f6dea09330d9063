package tenantstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

var errRefused = errors.New("refused by the test")

// TestWriteGroupCommit queues many writes behind one that holds the writer,
// so that they commit in shared batches, some of them failing in different
// ways, and checks that exactly the failed writes' changes are missing.
func TestWriteGroupCommit(t *testing.T) {
	const writers = 300 // more than maxBatch, so two batches
	p := newTestPool(t, PoolConfig{MaxOpen: 10})
	mustCreate(t, p, "acme")
	db := mustAcquire(t, p, "acme").DB()
	mustWrite(t, db, "CREATE TABLE gc (k TEXT PRIMARY KEY)")
	mustWrite(t, db, "INSERT INTO gc (k) VALUES ('taken')")

	// The first write holds the writer until every other write is queued.
	entered, hold := make(chan struct{}), make(chan struct{})
	first := inBackground(func() (struct{}, error) {
		return struct{}{}, db.Write(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
			close(entered)
			<-hold
			_, err := tx.ExecContext(ctx, "INSERT INTO gc (k) VALUES ('first')")
			return err
		})
	})
	<-entered

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	// Each writer inserts its key and then, by its number: commits a second
	// key; returns an error of its own; breaks a constraint; or has a
	// context cancelled before its turn.
	insert := func(ctx context.Context, tx *sql.Tx, k string) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO gc (k) VALUES (?)", k)
		return err
	}
	write := func(i int) error {
		ctx := context.Background()
		if i%4 == 3 {
			ctx = cancelled
		}
		return db.Write(ctx, func(ctx context.Context, tx *sql.Tx) error {
			if err := insert(ctx, tx, fmt.Sprintf("w%d-a", i)); err != nil {
				return err
			}
			switch i % 4 {
			case 1:
				return errRefused
			case 2:
				return insert(ctx, tx, "taken")
			}
			return insert(ctx, tx, fmt.Sprintf("w%d-b", i))
		})
	}
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() { errs[i] = write(i) })
	}
	if !waitFor(10*time.Second, func() bool {
		db.mu.Lock()
		defer db.mu.Unlock()
		return len(db.queue) == writers
	}) {
		t.Fatal("the writes never all queued")
	}
	close(hold)
	arrives(t, first, "the first write")
	wg.Wait()

	want := []string{"first", "taken"}
	for i, err := range errs {
		switch i % 4 {
		case 0:
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
			want = append(want, fmt.Sprintf("w%d-a", i), fmt.Sprintf("w%d-b", i))
		case 1:
			if !errors.Is(err, errRefused) {
				t.Errorf("writer %d: %v, want %v", i, err, errRefused)
			}
		case 2:
			if !isConstraint(err) {
				t.Errorf("writer %d: %v, want a constraint error", i, err)
			}
		case 3:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("writer %d: %v, want %v", i, err, context.Canceled)
			}
		}
	}
	if got := keys(t, db); !slices.Equal(got, sorted(want)) {
		t.Errorf("the table holds %d keys, want %d: %s", len(got), len(want), diff(got, sorted(want)))
	}
}

// TestWriteAloneFails checks that a write that fails alone in its batch,
// after changing something, leaves nothing behind.
func TestWriteAloneFails(t *testing.T) {
	p := newTestPool(t, PoolConfig{MaxOpen: 10})
	mustCreate(t, p, "acme")
	db := mustAcquire(t, p, "acme").DB()
	mustWrite(t, db, "CREATE TABLE gc (k TEXT PRIMARY KEY)")

	err := db.Write(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO gc (k) VALUES ('half')"); err != nil {
			return err
		}
		return errRefused
	})
	if !errors.Is(err, errRefused) {
		t.Fatalf("write: %v, want %v", err, errRefused)
	}
	if got := keys(t, db); len(got) != 0 {
		t.Errorf("a failed write left %q", got)
	}
	mustWrite(t, db, "INSERT INTO gc (k) VALUES ('after')")
	if got := keys(t, db); !slices.Equal(got, []string{"after"}) {
		t.Errorf("after a failed write, a good one left %q", got)
	}
}

// TestWriteConcurrentFree has writers write at the same time without any
// holding the writer, as requests do, and checks every acknowledged write.
func TestWriteConcurrentFree(t *testing.T) {
	const writers, each = 20, 50
	p := newTestPool(t, PoolConfig{MaxOpen: 10})
	mustCreate(t, p, "acme")
	db := mustAcquire(t, p, "acme").DB()
	mustWrite(t, db, "CREATE TABLE gc (k TEXT PRIMARY KEY)")

	var wg sync.WaitGroup
	var mu sync.Mutex
	var want []string
	for w := range writers {
		wg.Go(func() {
			for n := range each {
				k := fmt.Sprintf("w%d-%d", w, n)
				fail := n%5 == 0
				err := db.Write(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, "INSERT INTO gc (k) VALUES (?)", k); err != nil {
						return err
					}
					if fail {
						return errRefused
					}
					return nil
				})
				switch {
				case fail && !errors.Is(err, errRefused):
					t.Errorf("write %s: %v, want %v", k, err, errRefused)
				case !fail && err != nil:
					t.Errorf("write %s: %v", k, err)
				case !fail:
					mu.Lock()
					want = append(want, k)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if got := keys(t, db); !slices.Equal(got, sorted(want)) {
		t.Errorf("the table holds %d keys, want %d: %s", len(got), len(want), diff(got, sorted(want)))
	}
}

// TestTenantWALStaysSmall writes far more than SQLite's default
// checkpoint size to a tenant, one commit at a time, and checks that its
// WAL file never grew past the tenant's own, smaller bound.
func TestTenantWALStaysSmall(t *testing.T) {
	p := newTestPool(t, PoolConfig{MaxOpen: 10})
	mustCreate(t, p, "acme")
	db := mustAcquire(t, p, "acme").DB()
	mustWrite(t, db, "CREATE TABLE blobs (b BLOB)")

	// Each commit writes two pages or more: 4,000 pages in all, four times
	// SQLite's default checkpoint size.
	for range 2000 {
		mustWrite(t, db, "INSERT INTO blobs (b) VALUES (randomblob(6000))")
	}
	const pageFrame = 4096 + 24 // a WAL frame: one page and its header
	size := fileSize(t, db.path+"-wal")
	// The bound, the commit that crossed it, and the WAL's header.
	if most := int64((tenantAutocheckpointPages+8)*pageFrame + 32); size > most {
		t.Errorf("the WAL is %d bytes, more than %d pages' worth (%d bytes)",
			size, tenantAutocheckpointPages, most)
	}
	if size < tenantAutocheckpointPages*pageFrame/2 {
		t.Errorf("the WAL is %d bytes: the writes did not go through it", size)
	}
}

// keys returns the keys in table gc, in order.
func keys(tb testing.TB, db *DB) []string {
	tb.Helper()
	rows, err := db.r.Query("SELECT k FROM gc ORDER BY k")
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var ks []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			tb.Fatal(err)
		}
		ks = append(ks, k)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return ks
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// diff describes how the sorted lists got and want differ.
func diff(got, want []string) string {
	var extra, missing []string
	for _, k := range got {
		if _, ok := slices.BinarySearch(want, k); !ok {
			extra = append(extra, k)
		}
	}
	for _, k := range want {
		if _, ok := slices.BinarySearch(got, k); !ok {
			missing = append(missing, k)
		}
	}
	return fmt.Sprintf("extra %q, missing %q", extra, missing)
}
