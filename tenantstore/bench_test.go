package tenantstore

// Benchmarks of the tenant pool. docs/benchmarks.md has the command that
// runs them and the figures of the last run.

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchTenants is how many tenant files the miss benchmarks spread over, and
// benchMaxOpen the pool's bound there: ten files for every one held open.
const (
	benchTenants = 10_000
	benchMaxOpen = 1_000
)

// benchFiles are the tenant files of the benchmarks, made once per process
// and removed by TestMain.
var benchFiles struct {
	once sync.Once
	dir  string
	ids  []string
	err  error
}

// benchTenantFiles returns a directory holding benchTenants closed tenant
// files and their ids. The first is made by Pool.Create and closed (so
// checkpointed); the others are copies of it, byte for byte what Create
// would make, at a fraction of its cost (Create syncs the file to disk).
func benchTenantFiles(b *testing.B) (dir string, ids []string) {
	b.Helper()
	benchFiles.once.Do(func() {
		benchFiles.dir, benchFiles.ids, benchFiles.err = makeBenchFiles()
	})
	if benchFiles.err != nil {
		b.Fatal(benchFiles.err)
	}
	return benchFiles.dir, benchFiles.ids
}

func makeBenchFiles() (dir string, ids []string, err error) {
	dir, err = os.MkdirTemp("", "runmerge-bench-")
	if err != nil {
		return "", nil, err
	}
	p, err := NewPool(PoolConfig{Dir: dir, MaxOpen: 1})
	if err != nil {
		return dir, nil, err
	}
	ctx := context.Background()
	if err := p.Create(ctx, "template"); err != nil {
		return dir, nil, err
	}
	if err := p.Close(ctx); err != nil {
		return dir, nil, err
	}
	template, err := os.ReadFile(p.Path("template"))
	if err != nil {
		return dir, nil, err
	}
	ids = make([]string, benchTenants)
	for i := range ids {
		ids[i] = fmt.Sprintf("b%05d", i)
		if err := os.WriteFile(p.Path(ids[i]), template, 0o600); err != nil {
			return dir, nil, err
		}
	}
	if err := os.Remove(p.Path("template")); err != nil {
		return dir, nil, err
	}
	// Let the kernel write the new files out now: otherwise its writeback
	// of them runs during whichever benchmark comes first and slows it
	// alone (it made the first acquires of a run twice as slow as the
	// baseline measured after them).
	unix.Sync()
	return dir, ids, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchFiles.dir != "" {
		os.RemoveAll(benchFiles.dir)
	}
	os.Exit(code)
}

// reportPercentiles reports the 50th and 99th percentiles of the operation
// times in lat, which it sorts.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	b.Helper()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(quantileNS(lat, 0.50), "p50-ns")
	b.ReportMetric(quantileNS(lat, 0.99), "p99-ns")
}

// quantileNS returns the q-quantile of the sorted times lat, in ns.
func quantileNS(lat []time.Duration, q float64) float64 {
	return float64(lat[int(q*float64(len(lat)-1))].Nanoseconds())
}

// BenchmarkAcquireOpen leases and releases a tenant that is already open:
// the cost every request pays.
func BenchmarkAcquireOpen(b *testing.B) {
	p := newTestPool(b, PoolConfig{MaxOpen: 10})
	mustCreate(b, p, "acme")
	ctx := context.Background()
	lat := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		l, err := p.Acquire(ctx, "acme")
		if err != nil {
			b.Fatal(err)
		}
		l.Release()
		lat[i] = time.Since(start)
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkAcquireOpenParallel is BenchmarkAcquireOpen from every CPU at
// once, over 100 open tenants: the pool's lock is shared by all of them.
func BenchmarkAcquireOpenParallel(b *testing.B) {
	p := newTestPool(b, PoolConfig{MaxOpen: 100})
	ids := createTenants(b, p, 100)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			l, err := p.Acquire(ctx, ids[i%len(ids)])
			if err != nil {
				b.Error(err)
				return
			}
			l.Release()
		}
	})
}

// BenchmarkAcquireMiss times acquires of tenants that are not open, in a
// full pool of benchMaxOpen over benchTenants files, so that each acquire
// opens a file (and checks its schema version) and evicts another, whose
// close runs in the background.
//
// Its baseline opens files of the same kind with the same driver and DSN,
// runs the same header query and closes them: the least an open can cost.
// "acquire" and "baseline" run back to back, each on its own; "interleaved"
// takes turns between the two in one loop, so that both run under the same
// load, from this process (the pool's closes) and from any other.
func BenchmarkAcquireMiss(b *testing.B) {
	dir, ids := benchTenantFiles(b)
	// The pool takes its tenants in turn from the start of ids, each last
	// used benchTenants acquires before, long since evicted; the baseline
	// takes them from the last quarter, which the pool does not reach in a
	// run of at most half as many acquires.
	pooled := func(i int) string { return ids[(benchMaxOpen+i)%len(ids)] }
	bare := func(i int) string { return ids[len(ids)-1-i%(len(ids)/4)] }
	check := func(b *testing.B) {
		if b.N > len(ids)/2 {
			b.Fatalf("b.N %d would have the pool and the baseline share files; use at most %dx",
				b.N, len(ids)/2)
		}
	}

	b.Run("acquire", func(b *testing.B) {
		check(b)
		acquire := newMissBench(b, dir, ids)
		lat := make([]time.Duration, b.N)
		b.ResetTimer()
		for i := range b.N {
			lat[i] = acquire(pooled(i))
		}
		b.StopTimer()
		reportPercentiles(b, lat)
	})

	b.Run("baseline", func(b *testing.B) {
		check(b)
		lat := make([]time.Duration, b.N)
		for i := range b.N {
			lat[i] = bareOpen(b, dir, bare(i))
		}
		reportPercentiles(b, lat)
	})

	b.Run("interleaved", func(b *testing.B) {
		check(b)
		acquire := newMissBench(b, dir, ids)
		lat, base := make([]time.Duration, b.N), make([]time.Duration, b.N)
		b.ResetTimer()
		for i := range b.N {
			lat[i] = acquire(pooled(i))
			base[i] = bareOpen(b, dir, bare(i))
		}
		b.StopTimer()
		reportPercentiles(b, lat)
		slices.Sort(base)
		b.ReportMetric(quantileNS(base, 0.50), "base-p50-ns")
		b.ReportMetric(quantileNS(base, 0.99), "base-p99-ns")
		b.ReportMetric(quantileNS(lat, 0.50)/quantileNS(base, 0.50), "p50/base-p50")
	})
}

// newMissBench returns a pool of benchMaxOpen filled with the first tenants
// of ids, as in a server that has been up a while, and a function that
// leases and releases tenant id and returns how long the acquire took. It
// checks, when the benchmark ends, that every acquire missed.
func newMissBench(b *testing.B, dir string, ids []string) (acquire func(id string) time.Duration) {
	b.Helper()
	ctx := context.Background()
	p, err := NewPool(PoolConfig{Dir: dir, MaxOpen: benchMaxOpen})
	if err != nil {
		b.Fatal(err)
	}
	for _, id := range ids[:benchMaxOpen] {
		touch(b, p, id)
	}
	before := p.Stats()
	n := 0
	b.Cleanup(func() {
		if misses := p.Stats().Misses - before.Misses; misses != int64(n) {
			b.Errorf("%d of %d acquires missed", misses, n)
		}
		if err := p.Close(ctx); err != nil {
			b.Error(err)
		}
	})
	return func(id string) time.Duration {
		n++
		start := time.Now()
		l, err := p.Acquire(ctx, id)
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		l.Release()
		return d
	}
}

// bareOpen opens tenant id's file with the driver and DSN of the pool's
// writer, reads its header, closes it, and returns how long that took.
func bareOpen(b *testing.B, dir, id string) time.Duration {
	ctx := context.Background()
	path := filepath.Join(dir, id+".db")
	start := time.Now()
	db, err := sql.Open("sqlite", dsn(path, Options{}.withDefaults(), modeWrite))
	if err != nil {
		b.Fatal(err)
	}
	_, err = readHeader(ctx, db)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	d := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkOpenTenants opens benchMaxOpen tenants, each having served a
// write and a read, and reports what they hold: file descriptors and
// resident memory per open tenant. The timed loop acquires them in turn.
func BenchmarkOpenTenants(b *testing.B) {
	dir, ids := benchTenantFiles(b)
	ids = ids[:benchMaxOpen]
	ctx := context.Background()

	runtime.GC()
	fds0, rss0 := countFDs(b), vmRSS(b)
	p, err := NewPool(PoolConfig{Dir: dir, MaxOpen: benchMaxOpen})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	for _, id := range ids {
		l, err := p.Acquire(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		db := l.DB()
		if err := db.Write(ctx, func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(TenantSchemaVersion()))
			return err
		}); err != nil {
			b.Fatal(err)
		}
		var n int
		if err := db.r.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
			b.Fatal(err)
		}
		l.Release()
	}
	runtime.GC()
	fds, rss, total := countFDs(b)-fds0, vmRSS(b)-rss0, vmRSS(b)
	before := p.Stats()

	b.ResetTimer()
	for i := range b.N {
		l, err := p.Acquire(ctx, ids[i%len(ids)])
		if err != nil {
			b.Fatal(err)
		}
		l.Release()
	}
	b.StopTimer()
	if misses := p.Stats().Misses - before.Misses; misses != 0 {
		b.Fatalf("%d acquires of open tenants missed", misses)
	}
	// Reported after ResetTimer, which would discard them.
	b.ReportMetric(float64(fds)/float64(len(ids)), "fds/tenant")
	b.ReportMetric(float64(rss)/float64(len(ids)), "rss-KiB/tenant")
	b.ReportMetric(float64(total)/1024, "rss-MiB")
}

// vmRSS returns the resident memory of the process, in KiB.
func vmRSS(tb testing.TB) int {
	tb.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Skipf("cannot read memory use: %v", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kib, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				tb.Fatalf("VmRSS %q: %v", v, err)
			}
			return kib
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}
