package tenantstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/runmerge/runmerge"
)

// DefaultMemoryLimitMiB is the server's default soft limit on SQLite's
// memory, in MiB (sqlite.memory_limit_mib): low enough that a server
// holding a thousand open tenants under steady load reaches it within a
// minute and stays flat from then on (the soak in docs/benchmarks.md).
const DefaultMemoryLimitMiB = 128

// Config configures a Store.
type Config struct {
	DataDir     string        // holds catalog.db and tenants/
	MaxOpen     int           // tenant files held open at most (when none is leased)
	IdleTimeout time.Duration // close a tenant file unused this long; 0 never
	// MemoryLimit, when above 0, is a soft limit in bytes on the memory of
	// SQLite in the whole process (see SQLiteMemory): near it, connections
	// reuse their cached pages rather than take more.
	MemoryLimit int64
	Options     Options
	Logger      *slog.Logger
}

// Store is the catalog and the pool of tenant files of one data directory.
type Store struct {
	Catalog *Catalog
	Pool    *Pool
	log     *slog.Logger

	// marked holds "tenant/collection" pairs known to be recorded in the
	// catalog's tenant_collections, so that only the first change of a
	// collection in a tenant costs a catalog write.
	marked sync.Map

	mu          sync.RWMutex
	subscribers []func(tenantID string)

	// changes keeps the catalog's note of when each tenant last changed.
	changes *changeTracker
}

// Open opens the data directory, creating and migrating what is missing.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MemoryLimit > 0 {
		setSQLiteMemoryLimit(cfg.MemoryLimit)
	}
	cat, err := OpenCatalog(ctx, cfg.DataDir, cfg.Options)
	if err != nil {
		return nil, err
	}
	s := &Store{Catalog: cat, log: cfg.Logger}
	s.Pool, err = NewPool(PoolConfig{
		Dir:         filepath.Join(cfg.DataDir, "tenants"),
		MaxOpen:     cfg.MaxOpen,
		IdleTimeout: cfg.IdleTimeout,
		Options:     cfg.Options,
		Logger:      cfg.Logger,
		OnChange:    s.recordsChanged,
	})
	if err != nil {
		cat.Close()
		return nil, err
	}
	s.changes = newChangeTracker(cat, cfg.Logger)
	s.Subscribe(s.changes.changed)
	return s, nil
}

// Subscribe registers fn to be called, on the committing goroutine, after
// every commit that changed a tenant's records. fn must return quickly.
func (s *Store) Subscribe(fn func(tenantID string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subscribers = append(s.subscribers, fn)
}

// recordsChanged is told of every commit that changed records.
func (s *Store) recordsChanged(tenantID, collection string) {
	pair := tenantID + "/" + collection
	if _, ok := s.marked.Load(pair); !ok {
		// The catalog must know before the writer is answered, or a list
		// across tenants right after might skip this tenant.
		if err := s.Catalog.MarkTenantCollection(context.Background(), tenantID, collection); err != nil {
			s.log.Error("record tenant collection", "tenant", tenantID, "collection", collection, "error", err)
		} else {
			s.marked.Store(pair, true)
		}
	}
	s.mu.RLock()
	subs := s.subscribers
	s.mu.RUnlock()
	for _, fn := range subs {
		fn(tenantID)
	}
}

// Close closes every tenant file and then the catalog, reporting every
// failure rather than stopping at the first.
func (s *Store) Close(ctx context.Context) error {
	return errors.Join(s.Pool.Close(ctx), s.changes.close(), s.Catalog.Close())
}

// CreateTenant records a new tenant in the catalog and makes its file.
func (s *Store) CreateTenant(ctx context.Context, id, name string) (*runmerge.Tenant, error) {
	if err := runmerge.ValidateTenantID(id, "/id"); err != nil {
		return nil, err
	}
	now := runmerge.Now()
	t := &runmerge.Tenant{ID: id, Name: name, Status: runmerge.TenantActive, CreatedAt: now, UpdatedAt: now}
	if err := s.Catalog.CreateTenant(ctx, t); err != nil {
		return nil, err
	}
	if err := s.removeStaleFile(ctx, id); err != nil {
		return nil, errors.Join(err, s.Catalog.DeleteTenant(context.WithoutCancel(ctx), id))
	}
	if err := s.Pool.Create(ctx, id); err != nil {
		// Without its file the tenant is unusable: take it back out of the
		// catalog so that the id can be tried again.
		return nil, errors.Join(fmt.Errorf("create tenant file %s: %w", id, err),
			s.Catalog.DeleteTenant(context.WithoutCancel(ctx), id))
	}
	if err := s.Catalog.SetTenantSchemaVersion(ctx, id, TenantSchemaVersion(), ""); err != nil {
		s.log.Warn("record tenant schema version", "tenant", id, "error", err)
	}
	s.log.Info("tenant created", "tenant", id)
	return t, nil
}

// removeStaleFile deletes a file left under a new tenant's id, which can
// only be the remains of a deleted tenant whose removal was cut short (the
// catalog row goes first). A new tenant must never start with old data.
func (s *Store) removeStaleFile(ctx context.Context, id string) error {
	if _, err := os.Stat(s.Pool.Path(id)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	unlock, err := s.Pool.Lock(context.WithoutCancel(ctx), id)
	if err != nil {
		return err
	}
	defer unlock()
	s.log.Warn("removing the file of a deleted tenant before reusing its id", "tenant", id)
	if err := removeTenantFiles(s.Pool.Path(id)); err != nil {
		return fmt.Errorf("remove stale file of tenant %s: %w", id, err)
	}
	return nil
}

// DeleteTenant removes tenant id from the catalog (its keys with it), waits
// for requests still using its file, and deletes the file.
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	if !runmerge.ValidTenantID(id) {
		return runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")
	}
	if err := s.Catalog.DeleteTenant(ctx, id); err != nil {
		return err
	}
	unlock, err := s.Pool.Lock(context.WithoutCancel(ctx), id)
	if err != nil {
		return fmt.Errorf("delete tenant %s: %w", id, err)
	}
	defer unlock()
	for _, c := range runmerge.CollectionNames {
		s.marked.Delete(id + "/" + c)
	}
	if err := removeTenantFiles(s.Pool.Path(id)); err != nil {
		return fmt.Errorf("delete tenant %s: %w", id, err)
	}
	s.log.Info("tenant deleted", "tenant", id)
	return nil
}

// removeTenantFiles removes a tenant file and its WAL and shared-memory files.
func removeTenantFiles(path string) error {
	var errs []error
	for _, p := range []string{path + "-wal", path + "-shm", path} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// TenantStats describes tenant id's file. It opens the file if need be.
func (s *Store) TenantStats(ctx context.Context, id string) (*runmerge.TenantStats, error) {
	st := &runmerge.TenantStats{Records: make(map[string]int64), Open: s.Pool.IsOpen(id)}
	for _, c := range runmerge.CollectionNames {
		st.Records[c] = 0
	}
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(s.Pool.Path(id) + suffix); err == nil {
			st.FileSizeBytes += fi.Size()
		}
	}

	l, err := s.Pool.Acquire(ctx, id)
	if err != nil {
		return nil, err
	}
	defer l.Release()
	rows, err := l.DB().r.QueryContext(ctx,
		`SELECT collection, count(*) FROM records WHERE deleted_at IS NULL GROUP BY collection`)
	if err != nil {
		return nil, fmt.Errorf("tenant %s stats: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		var n int64
		if err := rows.Scan(&c, &n); err != nil {
			return nil, fmt.Errorf("tenant %s stats: %w", id, err)
		}
		st.Records[c] = n
	}
	return st, rows.Err()
}
