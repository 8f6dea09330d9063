package tenantstore

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/runmerge/runmerge"
)

// The benchmarks of this file measure storage without HTTP, as the figures
// in docs/benchmarks.md were measured:
//
//	go test ./tenantstore -run '^$' -bench 'BulkUpsert|RawInsert' -benchtime 20x
//	go test ./tenantstore -run '^$' -bench ListPage -benchtime 200x -timeout 30m

// BenchmarkBulkUpsert stores 1,000 new people per op with BulkUpsert, the
// path of POST /v1/people/bulk: checks, JSON, index columns, links, search
// text and change events, in one transaction.
func BenchmarkBulkUpsert(b *testing.B) {
	db := benchTenantDB(b)
	c, _ := runmerge.CollectionByName(runmerge.CollectionPeople)
	admin := &runmerge.Principal{Role: runmerge.RoleAdmin}
	b.ResetTimer()
	start, startCPU := time.Now(), cpuUsed()
	for i := range b.N {
		batch := make([]map[string]any, 1000)
		for j := range batch {
			batch[j] = benchPerson(i*1000 + j)
		}
		if _, err := db.BulkUpsert(context.Background(), admin, c, batch, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	reportRows(b, start, startCPU)
}

// BenchmarkCreateConcurrent creates one person per call from 32
// goroutines at once, the path of POST /v1/people without HTTP: the
// writes share commits (DB.Write), so what it measures is the writer's
// cost per record, which bounds the creates per second of one tenant.
func BenchmarkCreateConcurrent(b *testing.B) {
	db := benchTenantDB(b)
	c, _ := runmerge.CollectionByName(runmerge.CollectionPeople)
	admin := &runmerge.Principal{Role: runmerge.RoleAdmin}
	var n atomic.Int64
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start, startCPU := time.Now(), cpuUsed()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.CreateRecord(context.Background(), admin, c, benchPerson(int(n.Add(1))), nil, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "creates/s")
	b.ReportMetric(float64((cpuUsed()-startCPU).Microseconds())/float64(b.N), "cpu-us/create")
}

// BenchmarkBulkUpsertUpdate sends the same 1,000 people per op with
// BulkUpsert, changed each time: every record of every op after the first
// is an update of a record found by its sourceId and remoteId, as a sync
// client's repeated upserts are.
func BenchmarkBulkUpsertUpdate(b *testing.B) {
	db := benchTenantDB(b)
	c, _ := runmerge.CollectionByName(runmerge.CollectionPeople)
	admin := &runmerge.Principal{Role: runmerge.RoleAdmin}
	batch := func(op int) []map[string]any {
		list := make([]map[string]any, 1000)
		for j := range list {
			list[j] = benchPerson(j)
			list[j]["jobTitle"] = fmt.Sprintf("Engineer %d", op)
		}
		return list
	}
	if _, err := db.BulkUpsert(context.Background(), admin, c, batch(-1), nil, nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start, startCPU := time.Now(), cpuUsed()
	for i := range b.N {
		if _, err := db.BulkUpsert(context.Background(), admin, c, batch(i), nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	reportRows(b, start, startCPU)
}

// reportRows reports rows per second of wall time, the figure of the
// targets, and per second of the process's CPU time, which a busy machine
// disturbs less: on a machine shared with other work, the wall time also
// counts the waits for a CPU.
func reportRows(b *testing.B, start time.Time, startCPU time.Duration) {
	b.ReportMetric(float64(b.N*1000)/time.Since(start).Seconds(), "rows/s")
	b.ReportMetric(float64(b.N*1000)/(cpuUsed()-startCPU).Seconds(), "rows/cpu-s")
}

// cpuUsed returns the CPU time the process has used, in user and kernel
// mode, on every thread.
func cpuUsed() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRawInsert inserts 1,000 rows per transaction with one prepared
// statement through the same driver and pragmas as the tenant files: the
// most the driver writes, against which BulkUpsert is read. Each row is a
// person as BulkUpsert stores it: an id, a few index columns and the JSON.
func BenchmarkRawInsert(b *testing.B) {
	path := filepath.Join(b.TempDir(), "raw.db")
	db, err := connect(path, Options{}.withDefaults(), modeCreate)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE records (rid INTEGER PRIMARY KEY,
		id TEXT NOT NULL UNIQUE, collection TEXT NOT NULL, seq INTEGER NOT NULL,
		source_id TEXT, remote_id TEXT, data TEXT NOT NULL, created_at TEXT NOT NULL) STRICT`); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start, startCPU := time.Now(), cpuUsed()
	for i := range b.N {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		st, err := tx.PrepareContext(ctx, `INSERT INTO records
			(id, collection, seq, source_id, remote_id, data, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			b.Fatal(err)
		}
		for j := range 1000 {
			n := i*1000 + j
			data, _ := json.Marshal(benchPerson(n))
			if _, err := st.ExecContext(ctx, uuid.Must(uuid.NewV7()).String(), "people", n,
				"bench", fmt.Sprint(n), string(data), formatTime(runmerge.Now())); err != nil {
				b.Fatal(err)
			}
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	reportRows(b, start, startCPU)
}

func benchPerson(n int) map[string]any {
	return map[string]any{"firstName": "Ada", "lastName": fmt.Sprintf("Lovelace%d", n),
		"email": fmt.Sprintf("ada%d@example.com", n), "type": "Attendee", "status": "Active",
		"sourceId": "bench", "remoteId": fmt.Sprint(n)}
}

// benchTenantDB returns an empty tenant file of its own.
func benchTenantDB(tb testing.TB) *DB {
	tb.Helper()
	pool, err := NewPool(PoolConfig{Dir: tb.TempDir(), MaxOpen: 4})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if err := pool.Create(ctx, "bench"); err != nil {
		tb.Fatal(err)
	}
	lease, err := pool.Acquire(ctx, "bench")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		lease.Release()
		pool.Close(context.Background())
	})
	return lease.DB()
}

// BenchmarkListPage reads a 50-record page with each documented filter of
// each collection from a tenant of 100,000 records, from the first page, a
// cursor in the middle of the filter's matches and one near their end, and
// reports the 50th and 99th percentile of the page's time.
func BenchmarkListPage(b *testing.B) {
	// A benchmark with sub-benchmarks runs once, so the tenant is built once.
	bt := openBigTenant(b)
	ctx := context.Background()
	admin := &runmerge.Principal{Role: runmerge.RoleAdmin}
	for _, fc := range bt.documentedFilters() {
		seqs := matchingSeqs(b, bt, fc.f)
		for _, depth := range []struct {
			name string
			at   float64
		}{{"first", 0}, {"middle", 0.5}, {"end", 0.98}} {
			f := fc.f
			if len(seqs) > 0 && depth.at > 0 {
				f.AfterSeq = seqs[int(float64(len(seqs)-1)*depth.at)]
			}
			b.Run(fmt.Sprintf("%s/%s", fc.name, depth.name), func(b *testing.B) {
				// The page runs on this goroutine's thread (the driver is
				// Go), so the thread's CPU time is the page's own work,
				// without the waits for a CPU that a busy machine adds to
				// the wall time.
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				wall := make([]time.Duration, 0, b.N)
				cpu := make([]time.Duration, 0, b.N)
				for range b.N {
					start, startCPU := time.Now(), threadCPU()
					if _, _, err := bt.db.ListRecords(ctx, admin, f); err != nil {
						b.Fatal(err)
					}
					wall = append(wall, time.Since(start))
					cpu = append(cpu, threadCPU()-startCPU)
				}
				b.ReportMetric(float64(len(seqs)), "matches")
				b.ReportMetric(percentile(wall, 50), "p50-ms")
				b.ReportMetric(percentile(wall, 99), "p99-ms")
				b.ReportMetric(percentile(cpu, 99), "p99-cpu-ms")
			})
		}
	}
}

// matchingSeqs returns the positions of every record f selects, in order.
func matchingSeqs(tb testing.TB, bt *bigTenant, f RecordFilter) []int64 {
	tb.Helper()
	f.Limit = 500
	var seqs []int64
	admin := &runmerge.Principal{Role: runmerge.RoleAdmin}
	for {
		list, more, err := bt.db.ListRecords(context.Background(), admin, f)
		if err != nil {
			tb.Fatal(err)
		}
		for _, r := range list {
			seqs = append(seqs, r.Seq)
		}
		if !more {
			return seqs
		}
		f.AfterSeq = list[len(list)-1].Seq
	}
}

// percentile returns the pth percentile of times, in milliseconds.
func percentile(times []time.Duration, p int) float64 {
	times = slices.Clone(times)
	slices.Sort(times)
	return float64(times[len(times)*p/100].Microseconds()) / 1000
}

// threadCPU returns the CPU time the calling thread has used.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
