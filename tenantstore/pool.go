package tenantstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/runmerge/runmerge"
)

// PoolConfig configures a Pool.
type PoolConfig struct {
	Dir         string        // the directory that holds the tenant files
	MaxOpen     int           // the most tenant files held open when none is leased
	IdleTimeout time.Duration // a tenant unused this long is closed; 0 never
	Options     Options
	Logger      *slog.Logger

	// OnChange, when set, is called after every commit that changed records
	// of a tenant's collection, on the committing request's goroutine.
	OnChange func(tenantID, collection string)
}

// Pool holds tenant files open, up to MaxOpen of them, closing the least
// recently used when it needs room.
//
// A caller leases a tenant with Acquire and gives it back with Release.
// Eviction never closes a file that is leased: an evicted tenant drains, and
// closes on its last release. Closing (with its checkpoint) runs on a
// goroutine of its own, never under the pool's lock or on the path of the
// request that caused the eviction. Concurrent acquires of a tenant that is
// not open share one open.
type Pool struct {
	cfg PoolConfig
	log *slog.Logger

	mu       sync.Mutex
	lru      *simplelru.LRU[string, *entry]
	draining map[string]*entry    // evicted, still leased
	opening  map[string]*openCall // opens in progress
	locked   map[string]chan struct{}
	closing  map[string]int // closes in progress per tenant
	changed  chan struct{}  // closed and replaced whenever a close finishes
	closed   bool

	// fileOps holds a token for every open in progress and for every close
	// that an open's eviction started; see maxFileOps. evictSlot is set
	// while an open adds its file to the LRU, so that the close of the
	// tenant it evicts takes over the open's token.
	fileOps   chan struct{}
	evictSlot bool

	closers sync.WaitGroup
	stop    chan struct{}
	janitor sync.WaitGroup

	stats poolCounters
}

// entry is one open tenant file.
type entry struct {
	db         *DB
	refs       int
	evicted    bool
	acquiredAt time.Time // last acquire; the LRU order
	releasedAt time.Time // last release
}

// openCall is an open in progress, which later acquires of the same tenant
// wait for instead of opening the file again.
type openCall struct {
	done chan struct{}
	err  error
}

// poolCounters are the pool's running totals, read by Stats.
type poolCounters struct {
	hits, misses, evictions, idleCloses, opens, openErrors, closeErrors atomic.Int64
	openNanos, waitNanos                                                atomic.Int64
}

// PoolStats is a snapshot of the pool's counters.
type PoolStats struct {
	Open        int           // tenant files open now, leased or not
	Leased      int           // of those, the ones leased right now
	Hits        int64         // acquires that found the tenant open
	Misses      int64         // acquires that had to open the tenant
	Evictions   int64         // tenants closed to make room
	IdleCloses  int64         // tenants closed for being idle
	Opens       int64         // files opened
	OpenErrors  int64         // opens that failed
	CloseErrors int64         // closes that failed
	OpenTime    time.Duration // total time spent opening files
	WaitTime    time.Duration // total time acquires spent waiting for another's open or a close
}

// maxFileOps bounds the opens in progress together with the closes their
// evictions started. A close costs a checkpoint and its fsyncs; when the
// disk falls behind the rate at which misses open files, evicted files
// would otherwise pile up waiting to close, each holding descriptors and
// memory, beyond any bound MaxOpen sets. An acquire that has to open a file
// while this many are in progress waits for one of them to finish.
const maxFileOps = 8

// ErrTenantFileMissing is returned by Acquire for a tenant with no file.
var ErrTenantFileMissing = runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")

// ErrPoolClosed is returned by Acquire once the pool is closing.
var ErrPoolClosed = runmerge.Errorf(runmerge.EUNAVAILABLE, "the server is shutting down")

// NewPool returns an empty pool over cfg.Dir, creating the directory if needed.
func NewPool(cfg PoolConfig) (*Pool, error) {
	if cfg.MaxOpen <= 0 {
		return nil, fmt.Errorf("pool: max open must be positive, got %d", cfg.MaxOpen)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	cfg.Options = cfg.Options.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pool{
		cfg:      cfg,
		log:      cfg.Logger,
		draining: make(map[string]*entry),
		opening:  make(map[string]*openCall),
		locked:   make(map[string]chan struct{}),
		closing:  make(map[string]int),
		changed:  make(chan struct{}),
		fileOps:  make(chan struct{}, maxFileOps),
		stop:     make(chan struct{}),
	}
	lru, err := simplelru.NewLRU(cfg.MaxOpen, p.onEvict)
	if err != nil {
		return nil, err
	}
	p.lru = lru
	if cfg.IdleTimeout > 0 {
		p.janitor.Add(1)
		go p.closeIdle()
	}
	return p, nil
}

// Path returns the file of tenant id. The id must already be valid.
func (p *Pool) Path(id string) string {
	return filepath.Join(p.cfg.Dir, id+".db")
}

// Lease is a tenant file on loan from the pool. Release it exactly once.
type Lease struct {
	pool     *Pool
	entry    *entry
	released atomic.Bool
}

// DB returns the leased tenant file.
func (l *Lease) DB() *DB { return l.entry.db }

// Release gives the lease back. Releasing twice is a no-op.
func (l *Lease) Release() {
	if l.released.Swap(true) {
		return
	}
	l.pool.release(l.entry)
}

// Acquire leases tenant id, opening its file if it is not open. It fails with
// ErrTenantFileMissing when the tenant has no file: Acquire never creates
// one (Create does).
func (p *Pool) Acquire(ctx context.Context, id string) (*Lease, error) {
	if !runmerge.ValidTenantID(id) {
		return nil, ErrTenantFileMissing
	}
	return p.acquire(ctx, id, false)
}

// Create makes tenant id's file, migrated to the current schema, and leaves
// it open in the pool. Creating a tenant whose file exists opens it.
func (p *Pool) Create(ctx context.Context, id string) error {
	if !runmerge.ValidTenantID(id) {
		return runmerge.ValidateTenantID(id, "/id")
	}
	l, err := p.acquire(ctx, id, true)
	if err != nil {
		return err
	}
	l.Release()
	return nil
}

func (p *Pool) acquire(ctx context.Context, id string, create bool) (*Lease, error) {
	// waited is the time spent waiting for another's open or a close, or
	// for a token.
	var waited time.Duration
	defer func() { p.stats.waitNanos.Add(int64(waited)) }()
	// token says whether this acquire holds a token of p.fileOps. It is
	// kept only on the way to opening the file, and handed to open.
	token := false
	defer func() {
		if token {
			<-p.fileOps
		}
	}()
	drop := func() {
		if token {
			<-p.fileOps
			token = false
		}
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrPoolClosed
		}
		if wait := p.locked[id]; wait != nil {
			drop()
			p.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		if e, ok := p.lru.Get(id); ok {
			e.refs++
			e.acquiredAt = time.Now()
			p.mu.Unlock()
			p.stats.hits.Add(1)
			return &Lease{pool: p, entry: e}, nil
		}
		if e := p.draining[id]; e != nil {
			// Evicted but still leased: take it back rather than open the
			// file a second time.
			delete(p.draining, id)
			e.evicted = false
			e.refs++
			e.acquiredAt = time.Now()
			p.add(id, e)
			p.mu.Unlock()
			p.stats.hits.Add(1)
			return &Lease{pool: p, entry: e}, nil
		}
		if c := p.opening[id]; c != nil {
			drop()
			wait := c.done
			p.mu.Unlock()
			start := time.Now()
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			waited += time.Since(start)
			continue
		}
		if p.closing[id] > 0 {
			// Open the file again only once its last close is done, so
			// that the close's checkpoint does not contend with the new
			// handle.
			drop()
			wait := p.changed
			p.mu.Unlock()
			start := time.Now()
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			waited += time.Since(start)
			continue
		}
		if !token {
			select {
			case p.fileOps <- struct{}{}:
				token = true
			default:
				// Too many files opening or closing: wait for a token,
				// then look again, since the tenant may be open by then.
				p.mu.Unlock()
				start := time.Now()
				select {
				case p.fileOps <- struct{}{}:
					token = true
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				waited += time.Since(start)
				continue
			}
		}

		c := &openCall{done: make(chan struct{})}
		p.opening[id] = c
		p.mu.Unlock()
		token = false
		return p.open(ctx, id, create, c)
	}
}

// open opens tenant id's file for the acquire that registered c, outside the
// pool's lock, and hands the first lease to that acquire. The caller holds a
// token of p.fileOps, which open gives back, or hands to the close of the
// tenant its file evicts.
func (p *Pool) open(ctx context.Context, id string, create bool, c *openCall) (*Lease, error) {
	p.stats.misses.Add(1)
	start := time.Now()
	db, err := openTenant(context.WithoutCancel(ctx), id, p.Path(id), p.cfg.Options, create, p.cfg.OnChange)
	p.stats.openNanos.Add(int64(time.Since(start)))

	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.opening, id)
	c.err = err
	close(c.done)
	p.evictSlot = true
	defer func() {
		if p.evictSlot {
			p.evictSlot = false
			<-p.fileOps
		}
	}()
	if err != nil {
		if errors.Is(err, errNoFile) {
			return nil, ErrTenantFileMissing
		}
		p.stats.openErrors.Add(1)
		return nil, err
	}
	p.stats.opens.Add(1)
	if p.closed {
		p.startClose(&entry{db: db})
		return nil, ErrPoolClosed
	}
	e := &entry{db: db, refs: 1, acquiredAt: time.Now()}
	p.add(id, e)
	return &Lease{pool: p, entry: e}, nil
}

// onEvict is called by the LRU, under p.mu, when an entry leaves it.
func (p *Pool) onEvict(id string, e *entry) {
	e.evicted = true
	if e.refs > 0 {
		p.draining[id] = e
		return
	}
	p.startClose(e)
}

func (p *Pool) release(e *entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.refs--
	e.releasedAt = time.Now()
	if e.refs == 0 && e.evicted {
		if p.draining[e.db.id] == e {
			delete(p.draining, e.db.id)
		}
		p.startClose(e)
	}
}

// startClose closes e's file on a goroutine of its own. Call with p.mu held.
func (p *Pool) startClose(e *entry) {
	id := e.db.id
	token := p.evictSlot
	p.evictSlot = false
	p.closing[id]++
	p.closers.Add(1)
	go func() {
		defer p.closers.Done()
		if err := e.db.close(); err != nil {
			p.stats.closeErrors.Add(1)
			p.log.Error("close tenant file", "tenant", id, "error", err)
		}
		p.mu.Lock()
		if p.closing[id]--; p.closing[id] == 0 {
			delete(p.closing, id)
		}
		if token {
			<-p.fileOps
		}
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}()
}

// add puts e in the LRU, evicting the least recently used tenant when the
// pool is full. Call with p.mu held.
func (p *Pool) add(id string, e *entry) {
	if p.lru.Add(id, e) {
		p.stats.evictions.Add(1)
	}
}

// Lock closes tenant id and keeps it closed until unlock is called: acquires
// of id wait meanwhile. It waits for every lease of id to be released and
// every file handle of it to close, so that the caller may then delete or
// replace the file.
func (p *Pool) Lock(ctx context.Context, id string) (unlock func(), err error) {
	p.mu.Lock()
	for p.locked[id] != nil {
		wait := p.locked[id]
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		p.mu.Lock()
	}
	release := make(chan struct{})
	p.locked[id] = release
	p.lru.Remove(id)
	p.mu.Unlock()

	unlock = func() {
		p.mu.Lock()
		delete(p.locked, id)
		close(release)
		p.mu.Unlock()
	}
	for {
		p.mu.Lock()
		// An open that was in progress when the lock was taken may have
		// finished since and leased the file to its caller; take the file
		// back out before looking, so that it counts as draining.
		p.lru.Remove(id)
		quiet := p.draining[id] == nil && p.opening[id] == nil && p.closing[id] == 0
		changed := p.changed
		p.mu.Unlock()
		if quiet {
			return unlock, nil
		}
		select {
		case <-changed:
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			unlock()
			return nil, ctx.Err()
		}
	}
}

// IsOpen reports whether tenant id's file is open now.
func (p *Pool) IsOpen(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lru.Contains(id) || p.draining[id] != nil
}

// Stats returns a snapshot of the pool's counters.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	open, leased := p.lru.Len()+len(p.draining), len(p.draining)
	for _, e := range p.lru.Values() {
		if e.refs > 0 {
			leased++
		}
	}
	p.mu.Unlock()
	return PoolStats{
		Open:        open,
		Leased:      leased,
		Hits:        p.stats.hits.Load(),
		Misses:      p.stats.misses.Load(),
		Evictions:   p.stats.evictions.Load(),
		IdleCloses:  p.stats.idleCloses.Load(),
		Opens:       p.stats.opens.Load(),
		OpenErrors:  p.stats.openErrors.Load(),
		CloseErrors: p.stats.closeErrors.Load(),
		OpenTime:    time.Duration(p.stats.openNanos.Load()),
		WaitTime:    time.Duration(p.stats.waitNanos.Load()),
	}
}

// closeIdle closes tenants nobody has used for the idle timeout. The LRU is
// ordered by last acquire, so the walk stops at the first tenant acquired
// within the timeout: its cost is the tenants it closes, not the tenants open.
func (p *Pool) closeIdle() {
	defer p.janitor.Done()
	every := p.cfg.IdleTimeout / 4
	if every < 10*time.Millisecond {
		every = 10 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.closeIdleOnce(now)
		}
	}
}

func (p *Pool) closeIdleOnce(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := p.lru.Len(); n > 0; n-- {
		id, e, ok := p.lru.GetOldest()
		if !ok || now.Sub(e.acquiredAt) < p.cfg.IdleTimeout {
			return
		}
		if e.refs > 0 {
			// Leased for longer than the timeout (a stream, say): it is not
			// idle. Move it to the front and keep walking.
			p.lru.Get(id)
			continue
		}
		if now.Sub(e.releasedAt) < p.cfg.IdleTimeout {
			p.lru.Get(id)
			continue
		}
		p.lru.Remove(id)
		p.stats.idleCloses.Add(1)
	}
}

// Close closes every tenant file, waiting for leased ones to be released
// (or ctx to end), and returns the errors of any close that failed.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.stop)
	p.lru.Purge()
	p.mu.Unlock()
	p.janitor.Wait()

	// An open in progress hands its file to a close of its own when it
	// finds the pool closed; wait for it too, so that no file is left open
	// and no close starts after closers.Wait.
	for {
		p.mu.Lock()
		n, opening, changed := len(p.draining), len(p.opening), p.changed
		p.mu.Unlock()
		if n == 0 && opening == 0 {
			break
		}
		select {
		case <-changed:
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("close pool: %d tenants still leased: %w", n, ctx.Err())
		}
	}
	p.closers.Wait()
	if n := p.stats.closeErrors.Load(); n > 0 {
		return fmt.Errorf("close pool: %d tenant files failed to close cleanly", n)
	}
	return nil
}
