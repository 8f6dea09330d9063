package tenantstore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runmerge/runmerge"
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
// no caller sees an error, that every acknowledged write and nothing else
// is in its tenant's file, and that the pool keeps no more files open than
// its bound plus what callers hold.
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
	openFiles(t, dir) // skips the test where open files cannot be listed
	p := newTestPool(t, PoolConfig{Dir: dir, MaxOpen: maxOpen})
	start := time.Now()
	ids := createTenants(t, p, tenants)
	t.Logf("created %d tenants in %v", tenants, time.Since(start))

	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()

	var (
		written = make([][]stressRow, workers) // per worker, the writes acknowledged
		errMu   sync.Mutex
		errs    []error
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
			written[w] = append(written[w], stressRow{tenant: i, worker: w, n: n})
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
	want := make([][]stressRow, tenants)
	leases := 0
	for _, rows := range written {
		for _, r := range rows {
			want[r.tenant] = append(want[r.tenant], r)
			leases++
		}
	}
	t.Logf("%d leases in %v: %+v", leases, run, p.Stats())
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
	// The files of tenants nobody wrote to must not have a table for the
	// writes; opening them all would cost as much as creating them, so
	// their size is compared with that of a file never leased.
	check := newTestPool(t, PoolConfig{Dir: dir, MaxOpen: maxOpen})
	mustCreate(t, check, "untouched")
	unlock, err := check.Lock(context.Background(), "untouched")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	created := fileSize(t, check.Path("untouched"))
	for i, id := range ids {
		if len(want[i]) == 0 {
			if size := fileSize(t, p.Path(id)); size != created {
				t.Errorf("tenant %s, never written, has grown from %d to %d bytes", id, created, size)
			}
			continue
		}
		l := mustAcquire(t, check, id)
		got := stressRows(t, l.DB(), i)
		l.Release()
		if !slices.Equal(got, sortRows(want[i])) {
			t.Errorf("tenant %s holds writes %v, callers saw %v succeed", id, got, sortRows(want[i]))
		}
	}
}

// stressRow is one write of TestPoolStress: the n-th attempt of a worker,
// to a tenant given by its index.
type stressRow struct{ tenant, worker, n int }

func sortRows(rows []stressRow) []stressRow {
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b stressRow) int {
		return cmp.Or(cmp.Compare(a.worker, b.worker), cmp.Compare(a.n, b.n))
	})
	return rows
}

// stressRows reads the writes in the file of the tenant with index i.
func stressRows(tb testing.TB, db *DB, i int) []stressRow {
	tb.Helper()
	rows, err := db.r.Query("SELECT worker, n FROM stress ORDER BY worker, n")
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var got []stressRow
	for rows.Next() {
		r := stressRow{tenant: i}
		if err := rows.Scan(&r.worker, &r.n); err != nil {
			tb.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return got
}

// fileSize returns the size of the file at path.
func fileSize(tb testing.TB, path string) int64 {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
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
	err = db.r.QueryRowContext(ctx,
		"SELECT count(*) FROM stress WHERE worker = ? AND n = ?", w, n).Scan(&got)
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

// holdFile opens tenant file path in exclusive locking mode and reads it, so
// that no other connection can read it until release is called. Opens of
// the file wait meanwhile, for up to their busy timeout.
func holdFile(tb testing.TB, path string) (release func()) {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=rw")
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	for _, q := range []string{"PRAGMA locking_mode = EXCLUSIVE", "BEGIN EXCLUSIVE"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			tb.Fatalf("hold %s: %s: %v", path, q, err)
		}
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if _, err := db.ExecContext(ctx, "COMMIT"); err != nil {
				tb.Errorf("release %s: %v", path, err)
			}
			if err := db.Close(); err != nil {
				tb.Errorf("release %s: %v", path, err)
			}
		})
	}
	tb.Cleanup(release)
	return release
}

// closedTenant makes the file of tenant id and leaves it closed: it is
// created through a pool of its own, which is then closed.
func closedTenant(tb testing.TB, dir, id string) {
	tb.Helper()
	p, err := NewPool(PoolConfig{Dir: dir, MaxOpen: 1, Logger: testLogger(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	mustCreate(tb, p, id)
	if err := p.Close(context.Background()); err != nil {
		tb.Fatalf("close pool: %v", err)
	}
}

// TestAcquireCoalesces has 100 callers acquire one tenant whose file is not
// open, while the open is held up, and checks that the file is opened once
// and all of them get it.
func TestAcquireCoalesces(t *testing.T) {
	const callers = 100
	dir := t.TempDir()
	closedTenant(t, dir, "acme")
	p := newTestPool(t, PoolConfig{Dir: dir, MaxOpen: 10})
	release := holdFile(t, p.Path("acme"))

	var (
		started sync.WaitGroup
		done    sync.WaitGroup
		dbs     = make([]*DB, callers)
	)
	started.Add(callers)
	for i := range callers {
		done.Go(func() {
			started.Done()
			l, err := p.Acquire(context.Background(), "acme")
			if err != nil {
				t.Errorf("acquire: %v", err)
				return
			}
			dbs[i] = l.DB()
			l.Release()
		})
	}
	started.Wait()
	if !waitFor(5*time.Second, func() bool { return p.load().opening == 1 }) {
		t.Fatal("the open never started")
	}
	// Give every caller time to find the open in progress and wait for it.
	time.Sleep(100 * time.Millisecond)
	release()
	done.Wait()

	st := p.Stats()
	if st.Opens != 1 || st.Misses != 1 || st.Hits != callers-1 {
		t.Errorf("stats after %d concurrent acquires: %+v; want 1 open, 1 miss, %d hits",
			callers, st, callers-1)
	}
	if st.WaitTime == 0 {
		t.Error("no acquire waited for the open")
	}
	for i, db := range dbs {
		if db != dbs[0] {
			t.Fatalf("caller %d got a different file handle", i)
		}
	}
}

// TestEvictionSparesLeased evicts a leased tenant and checks that its file
// stays open and usable until the lease is released, and closes then.
func TestEvictionSparesLeased(t *testing.T) {
	const maxOpen = 4
	p := newTestPool(t, PoolConfig{MaxOpen: maxOpen})
	others := []string{"b", "c", "d", "e", "f", "g", "h", "i"}
	mustCreate(t, p, "a")
	mustCreate(t, p, others...)
	l := mustAcquire(t, p, "a")
	db := l.DB()
	mustWrite(t, db, "CREATE TABLE t (n INTEGER)")

	for _, id := range others {
		touch(t, p, id)
	}
	if !p.IsOpen("a") || p.load().leased != 1 {
		t.Fatalf("a leased tenant was closed: open %v, load %+v", p.IsOpen("a"), p.load())
	}
	p.mu.Lock()
	draining := p.draining["a"] != nil
	p.mu.Unlock()
	if !draining {
		t.Fatal("the leased tenant was never evicted; the test does not test eviction")
	}
	if st := p.Stats(); st.Open != maxOpen+1 {
		t.Errorf("%d tenants open, want %d (MaxOpen + the leased one)", st.Open, maxOpen+1)
	}

	// The evicted file keeps working, as more evictions go on around it.
	for i, id := range others {
		mustWrite(t, db, "INSERT INTO t (n) VALUES (?)", i)
		touch(t, p, id)
		if got := mustCount(t, db, "SELECT count(*) FROM t"); got != i+1 {
			t.Fatalf("after %d writes, the evicted file has %d rows", i+1, got)
		}
	}
	if !fileOpen(t, p.Path("a")) {
		t.Fatal("the leased file is not open")
	}

	l.Release()
	if !waitFor(5*time.Second, func() bool { return !fileOpen(t, p.Path("a")) }) {
		t.Fatal("the evicted file is still open after its last release")
	}
	if p.IsOpen("a") {
		t.Error("the pool still reports the evicted tenant open")
	}
}

// TestAcquireDrainingReuses acquires a tenant that was evicted while leased
// and checks that the open file is shared, not opened a second time.
func TestAcquireDrainingReuses(t *testing.T) {
	p := newTestPool(t, PoolConfig{MaxOpen: 2})
	mustCreate(t, p, "a", "b", "c")
	l := mustAcquire(t, p, "a")
	touch(t, p, "b")
	touch(t, p, "c")
	opens := p.Stats().Opens

	l2 := mustAcquire(t, p, "a")
	if l2.DB() != l.DB() {
		t.Error("a draining tenant was opened again")
	}
	if got := p.Stats().Opens; got != opens {
		t.Errorf("opens went from %d to %d", opens, got)
	}
	l.Release()
	l2.Release()
	if !p.IsOpen("a") {
		t.Error("the tenant taken back from draining closed on release")
	}
}

// TestIdleClose checks that a tenant nobody uses closes after the idle
// timeout, and that a leased one stays open however long it is held.
func TestIdleClose(t *testing.T) {
	const idle = 50 * time.Millisecond
	p := newTestPool(t, PoolConfig{MaxOpen: 10, IdleTimeout: idle})
	mustCreate(t, p, "unused", "held")
	l := mustAcquire(t, p, "held")

	if !waitFor(5*time.Second, func() bool { return !fileOpen(t, p.Path("unused")) }) {
		t.Fatal("an unused tenant is still open well after the idle timeout")
	}
	if p.IsOpen("unused") || p.Stats().IdleCloses == 0 {
		t.Errorf("after the idle close: open %v, stats %+v", p.IsOpen("unused"), p.Stats())
	}

	time.Sleep(5 * idle)
	if !p.IsOpen("held") || !fileOpen(t, p.Path("held")) {
		t.Fatal("a leased tenant was closed for being idle")
	}
	mustWrite(t, l.DB(), "CREATE TABLE t (n INTEGER)")
	mustCount(t, l.DB(), "SELECT count(*) FROM t")

	l.Release()
	if !waitFor(5*time.Second, func() bool { return !fileOpen(t, p.Path("held")) }) {
		t.Fatal("a released tenant did not close after the idle timeout")
	}
}

// result is what a call made in the background returned.
type result[T any] struct {
	v   T
	err error
}

// inBackground runs f on a goroutine and returns the channel its result
// arrives on.
func inBackground[T any](f func() (T, error)) <-chan result[T] {
	c := make(chan result[T], 1)
	go func() {
		v, err := f()
		c <- result[T]{v, err}
	}()
	return c
}

// pending fails the test if c delivers within d.
func pending[T any](tb testing.TB, c <-chan result[T], d time.Duration, what string) {
	tb.Helper()
	select {
	case r := <-c:
		tb.Fatalf("%s returned early (error %v)", what, r.err)
	case <-time.After(d):
	}
}

// arrives waits for c to deliver and fails the test if it does not, or if
// it delivers an error.
func arrives[T any](tb testing.TB, c <-chan result[T], what string) T {
	tb.Helper()
	select {
	case r := <-c:
		if r.err != nil {
			tb.Fatalf("%s: %v", what, r.err)
		}
		return r.v
	case <-time.After(10 * time.Second):
		tb.Fatalf("%s did not return", what)
	}
	panic("unreachable")
}

// TestLock checks that Lock waits for the leases of a tenant to be released
// and its file to close, and that acquires wait while it is locked.
func TestLock(t *testing.T) {
	p := newTestPool(t, PoolConfig{MaxOpen: 10})
	mustCreate(t, p, "acme")
	l := mustAcquire(t, p, "acme")
	ctx := context.Background()

	locked := inBackground(func() (func(), error) { return p.Lock(ctx, "acme") })
	pending(t, locked, 100*time.Millisecond, "Lock with a lease held")
	mustWrite(t, l.DB(), "CREATE TABLE t (n INTEGER)")
	l.Release()
	unlock := arrives(t, locked, "Lock")
	if fileOpen(t, p.Path("acme")) || p.IsOpen("acme") {
		t.Fatal("Lock returned with the file still open")
	}

	acquired := inBackground(func() (*Lease, error) { return p.Acquire(ctx, "acme") })
	created := inBackground(func() (struct{}, error) { return struct{}{}, p.Create(ctx, "acme") })
	pending(t, acquired, 100*time.Millisecond, "Acquire of a locked tenant")
	pending(t, created, 0, "Create of a locked tenant")
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := p.Acquire(short, "acme"); err != context.DeadlineExceeded {
		t.Errorf("acquire of a locked tenant with a deadline: %v, want %v",
			err, context.DeadlineExceeded)
	}
	if fileOpen(t, p.Path("acme")) {
		t.Fatal("the locked tenant's file was opened")
	}

	unlock()
	l2 := arrives(t, acquired, "Acquire after unlock")
	defer l2.Release()
	arrives(t, created, "Create after unlock")
	if got := mustCount(t, l2.DB(), "SELECT count(*) FROM t"); got != 0 {
		t.Errorf("the table has %d rows, want 0", got)
	}
}

// TestLockWaitsForOpen locks a tenant while its file is being opened and
// checks that Lock also waits for the lease that open hands out.
func TestLockWaitsForOpen(t *testing.T) {
	dir := t.TempDir()
	closedTenant(t, dir, "acme")
	p := newTestPool(t, PoolConfig{Dir: dir, MaxOpen: 10})
	release := holdFile(t, p.Path("acme"))
	ctx := context.Background()

	acquired := inBackground(func() (*Lease, error) { return p.Acquire(ctx, "acme") })
	if !waitFor(5*time.Second, func() bool { return p.load().opening == 1 }) {
		t.Fatal("the open never started")
	}
	locked := inBackground(func() (func(), error) { return p.Lock(ctx, "acme") })
	pending(t, locked, 50*time.Millisecond, "Lock during an open")
	release()
	l := arrives(t, acquired, "Acquire")
	defer l.Release()
	pending(t, locked, 100*time.Millisecond, "Lock with the opener's lease held")
	mustWrite(t, l.DB(), "CREATE TABLE t (n INTEGER)")
	l.Release()
	unlock := arrives(t, locked, "Lock")
	defer unlock()
	if fileOpen(t, p.Path("acme")) {
		t.Error("Lock returned with the file still open")
	}
}

// TestCloseWaitsForLeases checks that Close waits for leased tenants and
// that afterwards no file is open and acquires fail.
func TestCloseWaitsForLeases(t *testing.T) {
	dir := t.TempDir()
	p := newTestPool(t, PoolConfig{Dir: dir, MaxOpen: 10})
	mustCreate(t, p, "a", "b")
	l := mustAcquire(t, p, "a")
	ctx := context.Background()

	closed := inBackground(func() (struct{}, error) { return struct{}{}, p.Close(ctx) })
	pending(t, closed, 100*time.Millisecond, "Close with a lease held")
	if _, err := p.Acquire(ctx, "b"); err != ErrPoolClosed {
		t.Errorf("acquire during close: %v, want %v", err, ErrPoolClosed)
	}
	mustWrite(t, l.DB(), "CREATE TABLE t (n INTEGER)")
	l.Release()
	arrives(t, closed, "Close")
	if files := openFiles(t, dir); len(files) > 0 {
		t.Errorf("files open after close: %v", files)
	}
}

// TestCreateRefusesBadIDs passes ids that must never become a file name to
// Create and Acquire, and checks that they fail without touching the disk.
func TestCreateRefusesBadIDs(t *testing.T) {
	bad := []string{
		"", ".", "..", "../x", "../../x", "a/b", "/x", "./x", `a\b`, "x.db", "a.b",
		"A", "Acme", "é", "acmé", "a\x00b", "\x00", "a\n", "-a", " a", "a ", "a_b",
		strings.Repeat("a", 64), strings.Repeat("a", 300),
	}
	dir := t.TempDir()
	p := newTestPool(t, PoolConfig{Dir: filepath.Join(dir, "tenants"), MaxOpen: 10})
	ctx := context.Background()
	for _, id := range bad {
		err := p.Create(ctx, id)
		if code := runmerge.ErrorCode(err); code != runmerge.EINVALID {
			t.Errorf("create %q: %v, want code %s", id, err, runmerge.EINVALID)
		}
		if _, err := p.Acquire(ctx, id); err != ErrTenantFileMissing {
			t.Errorf("acquire %q: %v, want %v", id, err, ErrTenantFileMissing)
		}
	}
	if files := filesUnder(t, dir); len(files) > 0 {
		t.Errorf("bad ids made files: %q", files)
	}

	// The longest id allowed works, so the refusals above are the rule's.
	longest := strings.Repeat("a", 63)
	mustCreate(t, p, longest)
	// An open file has its -wal and -shm beside it.
	for _, f := range filesUnder(t, dir) {
		if !strings.HasPrefix(f, filepath.Join("tenants", longest+".db")) {
			t.Errorf("creating %q made %s", longest, f)
		}
	}
}

// filesUnder lists every file (not directory) under dir, relative to it.
func filesUnder(tb testing.TB, dir string) []string {
	tb.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		files = append(files, rel)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return files
}

// FuzzTenantPath checks that an id either is refused by Create before any
// file is made, or names a file directly inside the pool's directory.
func FuzzTenantPath(f *testing.F) {
	for _, id := range []string{"acme", "../x", "a/b", "x.db", "", strings.Repeat("a", 64), "a\x00"} {
		f.Add(id)
	}
	dir := f.TempDir()
	p := newTestPool(f, PoolConfig{Dir: dir, MaxOpen: 1})
	f.Fuzz(func(t *testing.T, id string) {
		if !runmerge.ValidTenantID(id) {
			if err := p.Create(context.Background(), id); err == nil {
				t.Fatalf("create %q succeeded", id)
			}
			return
		}
		path := p.Path(id)
		if filepath.Dir(path) != filepath.Clean(dir) || filepath.Base(path) != id+".db" {
			t.Fatalf("id %q names %s, outside %s", id, path, dir)
		}
	})
}
