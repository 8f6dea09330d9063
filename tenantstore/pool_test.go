package tenantstore

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// poolLoad is what the pool holds at one moment, read under its lock.
type poolLoad struct {
	leased  int // leases held, in the LRU or draining
	opening int // opens in progress, each for an acquire that will hold a lease
	closing int // closes in progress, files no longer in the pool
}

func (p *Pool) load() poolLoad {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := poolLoad{leased: len(p.draining), opening: len(p.opening)}
	for _, e := range p.lru.Values() {
		if e.refs > 0 {
			l.leased++
		}
	}
	for _, n := range p.closing {
		l.closing += n
	}
	return l
}

// TestPoolStress has 200 callers lease 2,000 tenants at random through a
// pool of 50, each lease writing a row and reading it back, and checks that
// no caller sees an error, that no write is lost, and that the pool keeps
// no more files open than its bound plus what callers hold.
func TestPoolStress(t *testing.T) {
	const (
		workers = 200
		maxOpen = 50
	)
	tenants, run := 2000, 3*time.Second
	if testing.Short() {
		tenants, run = 500, 500*time.Millisecond
	}
	dir := t.TempDir()
	p := newTestPool(t, PoolConfig{Dir: dir, MaxOpen: maxOpen})
	start := time.Now()
	ids := createTenants(t, p, tenants)
	t.Logf("created %d tenants in %v", tenants, time.Since(start))

	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()

	var (
		written = make([]atomic.Int64, tenants) // writes acknowledged per tenant
		errMu   sync.Mutex
		errs    []error
		leases  atomic.Int64
	)
	fail := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		errs = append(errs, err)
	}
	work := func(w int) {
		rng := rand.New(rand.NewPCG(uint64(w), 1))
		for n := 0; ctx.Err() == nil; n++ {
			i := rng.IntN(tenants)
			if err := stressOnce(p, ids[i], w, n); err != nil {
				fail(err)
				continue
			}
			written[i].Add(1)
			leases.Add(1)
		}
	}

	var samples []poolSample
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for ctx.Err() == nil {
			samples = append(samples, samplePool(t, p, dir))
			time.Sleep(10 * time.Millisecond)
		}
	}()

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { work(w) })
	}
	wg.Wait()
	<-sampled

	for i, err := range errs {
		if i == 10 {
			t.Errorf("… and %d more errors", len(errs)-i)
			break
		}
		t.Error(err)
	}
	st := p.Stats()
	t.Logf("%d leases in %v: %+v", leases.Load(), run, st)
	checkSamples(t, samples, maxOpen)

	closeCtx, cancelClose := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelClose()
	if err := p.Close(closeCtx); err != nil {
		t.Fatalf("close pool: %v", err)
	}
	if files := openFiles(t, dir); len(files) > 0 {
		t.Errorf("after close, %d files under the data directory are open: %v", len(files), files)
	}

	// Every acknowledged write, and nothing else, is in its tenant's file.
	check := newTestPool(t, PoolConfig{Dir: dir, MaxOpen: maxOpen})
	for i, id := range ids {
		want := written[i].Load()
		if want == 0 {
			continue
		}
		l := mustAcquire(t, check, id)
		got := mustCount(t, l.DB(), "SELECT count(*) FROM stress")
		l.Release()
		if int64(got) != want {
			t.Errorf("tenant %s has %d writes, callers saw %d succeed", id, got, want)
		}
	}
}

// stressOnce leases tenant id, writes row (w, n) and reads it back.
func stressOnce(p *Pool, id string, w, n int) error {
	ctx := context.Background()
	l, err := p.Acquire(ctx, id)
	if err != nil {
		return fmt.Errorf("acquire %s: %w", id, err)
	}
	defer l.Release()
	db := l.DB()
	err = db.Write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// The table is made by the first write, so that creating the
		// tenants costs no more than Pool.Create.
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS stress (
			worker INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (worker, n))`)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO stress (worker, n) VALUES (?, ?)", w, n)
		return err
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", id, err)
	}
	var got int
	err = db.r.QueryRowContext(ctx, "SELECT count(*) FROM stress WHERE worker = ? AND n = ?", w, n).Scan(&got)
	if err != nil {
		return fmt.Errorf("read %s: %w", id, err)
	}
	if got != 1 {
		return fmt.Errorf("read %s: write (%d, %d) not found after it committed", id, w, n)
	}
	return nil
}

// poolSample is the number of tenant files open at one moment beside what
// the pool was holding then.
type poolSample struct {
	files  int      // distinct tenant .db files with a descriptor open
	before poolLoad // the pool just before the descriptors were listed
	after  poolLoad // and just after
}

func samplePool(tb testing.TB, p *Pool, dir string) poolSample {
	tb.Helper()
	var s poolSample
	s.before = p.load()
	s.files = openTenantFiles(tb, dir)
	s.after = p.load()
	return s
}

// scanSlack allows for leases taken and files opened while /proc/self/fd is
// being listed, which the pool's load before and after the listing misses.
const scanSlack = 2

// checkSamples fails the test if a sample shows more tenant files open than
// the pool may hold: MaxOpen, plus the files leased at that moment, plus the
// opens and closes in progress, which the pool bounds by maxFileOps.
func checkSamples(tb testing.TB, samples []poolSample, maxOpen int) {
	tb.Helper()
	if len(samples) == 0 {
		tb.Fatal("no samples of open files")
	}
	var worst poolSample
	excess := math.MinInt
	for _, s := range samples {
		leased := max(s.before.leased, s.after.leased)
		if e := s.files - maxOpen - leased; e > excess {
			excess, worst = e, s
		}
	}
	tb.Logf("%d samples of open tenant files; worst: %d open, pool before %+v, after %+v: "+
		"%d over MaxOpen + leased", len(samples), worst.files, worst.before, worst.after, excess)
	if excess > maxFileOps+scanSlack {
		tb.Errorf("%d tenant files open, %d over MaxOpen (%d) + leased; the bound allows %d",
			worst.files, excess, maxOpen, maxFileOps+scanSlack)
	}
}
