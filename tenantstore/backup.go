package tenantstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runmerge/runmerge"
)

// BackupConfig configures scheduled backups.
type BackupConfig struct {
	// Dir holds the snapshots, as Dir/<tenant>/<time>.db, and the
	// scheduler's state, Dir/state.json.
	Dir string

	// Interval is how often each tenant that changed is snapshotted. The
	// snapshots of one cycle are spread over the interval.
	Interval time.Duration

	// Keep is how many snapshots are kept per tenant; older ones are
	// removed once a new one is made.
	Keep int

	Logger *slog.Logger
}

// snapshotTimeFormat names snapshot files; it sorts in time order.
const snapshotTimeFormat = "20060102T150405.000Z"

// snapshotRetries is how often a failed snapshot is tried again within a
// cycle before the cycle gives up on it; the next cycle tries again.
var snapshotRetries = []time.Duration{time.Second, 10 * time.Second}

// backupMargin is how far before the previous cycle's start a cycle looks
// for changed tenants, to cover marks written late (a mark is written at
// most about a second after its commit).
const backupMargin = time.Minute

// Backups takes scheduled snapshots of the tenants that changed since
// their last snapshot. It finds them through the catalog (when each
// tenant last changed) and the snapshots on disk, without opening any
// tenant file that has not changed.
type Backups struct {
	store *Store
	cfg   BackupConfig
	log   *slog.Logger

	stop            chan struct{}
	done            chan struct{}
	started, closed atomic.Bool

	snapshots, failures, retries, skipped atomic.Int64
	lastCycleUnix, lastSuccessUnix        atomic.Int64
	lastCycleNanos, pending               atomic.Int64
	cycles                                atomic.Int64
	mu                                    sync.Mutex // one cycle at a time
}

// BackupStats is a snapshot of the backup scheduler's counters.
type BackupStats struct {
	Cycles      int64         // cycles run
	Snapshots   int64         // snapshots made
	Failures    int64         // snapshots that failed after every retry
	Retries     int64         // snapshot attempts that failed and were retried
	Skipped     int64         // changed tenants found unchanged since their last snapshot
	Pending     int64         // snapshots still to make in the current cycle
	LastCycle   time.Time     // when the last cycle started
	LastSuccess time.Time     // when the last snapshot was made
	CycleTime   time.Duration // how long the last cycle took
}

// NewBackups returns a backup scheduler over s. Start runs it.
func (s *Store) NewBackups(cfg BackupConfig) (*Backups, error) {
	if cfg.Dir == "" {
		return nil, errors.New("backups: no directory")
	}
	if cfg.Interval <= 0 {
		return nil, fmt.Errorf("backups: interval must be positive, got %s", cfg.Interval)
	}
	if cfg.Keep < 1 {
		return nil, fmt.Errorf("backups: keep must be at least 1, got %d", cfg.Keep)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("backups: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = s.log
	}
	b := &Backups{store: s, cfg: cfg, log: cfg.Logger}
	b.stop, b.done = make(chan struct{}), make(chan struct{})
	return b, nil
}

// Start runs a cycle every interval until Close.
func (b *Backups) Start() {
	if b.started.Swap(true) {
		return
	}
	go b.run()
}

func (b *Backups) run() {
	defer close(b.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-b.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		start := time.Now()
		if _, err := b.cycle(ctx, true); err != nil && ctx.Err() == nil {
			b.log.Error("backup cycle", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(b.cfg.Interval))):
		}
	}
}

// Close stops the scheduler, waiting for a snapshot in progress to stop.
// Closing a nil *Backups does nothing.
func (b *Backups) Close() {
	if b == nil || b.closed.Swap(true) {
		return
	}
	close(b.stop)
	if b.started.Load() {
		<-b.done
	}
}

// Stats returns the scheduler's counters.
func (b *Backups) Stats() BackupStats {
	unix := func(v int64) time.Time {
		if v == 0 {
			return time.Time{}
		}
		return time.Unix(0, v)
	}
	return BackupStats{
		Cycles:      b.cycles.Load(),
		Snapshots:   b.snapshots.Load(),
		Failures:    b.failures.Load(),
		Retries:     b.retries.Load(),
		Skipped:     b.skipped.Load(),
		Pending:     b.pending.Load(),
		LastCycle:   unix(b.lastCycleUnix.Load()),
		LastSuccess: unix(b.lastSuccessUnix.Load()),
		CycleTime:   time.Duration(b.lastCycleNanos.Load()),
	}
}

// CycleResult says what one backup cycle did.
type CycleResult struct {
	Snapshots []string          // tenants snapshotted
	Failed    map[string]string // tenant → why its snapshot failed
}

// RunCycle runs one backup cycle now, without spreading its snapshots
// over the interval.
func (b *Backups) RunCycle(ctx context.Context) (*CycleResult, error) {
	return b.cycle(ctx, false)
}

// backupState is what the scheduler keeps between cycles, in state.json.
type backupState struct {
	// Since is when the last cycle that ran to its end began: tenants that
	// changed before it have a snapshot since, but those in Retry.
	Since time.Time `json:"since"`

	// Retry lists the tenants whose snapshot failed in that cycle.
	Retry []string `json:"retry,omitempty"`
}

// cycle snapshots every tenant that changed since its last snapshot. With
// spread, the snapshots are paced evenly over the interval.
func (b *Backups) cycle(ctx context.Context, spread bool) (*CycleResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	start := time.Now()
	b.cycles.Add(1)
	b.lastCycleUnix.Store(start.UnixNano())
	defer func() { b.lastCycleNanos.Store(int64(time.Since(start))) }()

	st, err := b.loadState()
	if err != nil {
		return nil, err
	}
	due, err := b.due(ctx, st)
	if err != nil {
		return nil, err
	}
	res := &CycleResult{Failed: make(map[string]string)}
	b.pending.Store(int64(len(due)))
	defer b.pending.Store(0)
	var pace time.Duration
	if spread && len(due) > 0 {
		pace = b.cfg.Interval / time.Duration(len(due))
	}
	for i, id := range due {
		if pace > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(start.Add(time.Duration(i) * pace))):
			}
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		_, err := b.snapshotWithRetries(ctx, id)
		switch {
		case ctx.Err() != nil:
			// Interrupted: the state stays, so the next cycle looks again.
			return res, ctx.Err()
		case runmerge.ErrorCode(err) == runmerge.ENOTFOUND:
			// Deleted meanwhile: nothing to back up.
		case err != nil:
			res.Failed[id] = err.Error()
		default:
			res.Snapshots = append(res.Snapshots, id)
		}
		b.pending.Add(-1)
	}
	next := backupState{Since: start}
	for id := range res.Failed {
		next.Retry = append(next.Retry, id)
	}
	sort.Strings(next.Retry)
	if err := b.saveState(next); err != nil {
		return res, err
	}
	if len(due) > 0 {
		b.log.Info("backup cycle done", "snapshots", len(res.Snapshots), "failed", len(res.Failed),
			"duration", time.Since(start))
	}
	return res, nil
}

// due returns the tenants whose snapshot failed in the last cycle, and
// those that changed since their last snapshot among the tenants that
// changed since that cycle began (less a margin).
func (b *Backups) due(ctx context.Context, st backupState) ([]string, error) {
	since := st.Since
	if !since.IsZero() {
		since = since.Add(-backupMargin)
	}
	due := slices.Clone(st.Retry)
	retry := make(map[string]bool, len(st.Retry))
	for _, id := range st.Retry {
		retry[id] = true
	}
	var after *TenantChange
	for {
		page, err := b.store.Catalog.TenantsChangedSince(ctx, since, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, tc := range page {
			if retry[tc.TenantID] {
				continue
			}
			last, err := latestSnapshot(b.cfg.Dir, tc.TenantID)
			if err != nil {
				// Try the snapshot anyway: it fails, and is counted and
				// retried, if the fault is real.
				b.log.Warn("list snapshots", "tenant", tc.TenantID, "error", err)
			}
			if last != nil && tc.ChangedAt.Before(last.TakenAt) {
				b.skipped.Add(1)
				continue
			}
			due = append(due, tc.TenantID)
		}
		if len(page) < 1000 {
			return due, nil
		}
		after = &page[len(page)-1]
	}
}

// snapshotWithRetries snapshots tenant id, trying again after a failure.
func (b *Backups) snapshotWithRetries(ctx context.Context, id string) (*Snapshot, error) {
	for attempt := 0; ; attempt++ {
		snap, err := b.store.Snapshot(ctx, b.cfg.Dir, id, b.cfg.Keep)
		if err == nil {
			b.snapshots.Add(1)
			b.lastSuccessUnix.Store(time.Now().UnixNano())
			return snap, nil
		}
		if ctx.Err() != nil || runmerge.ErrorCode(err) == runmerge.ENOTFOUND {
			// A tenant deleted meanwhile needs no snapshot.
			return nil, err
		}
		if attempt == len(snapshotRetries) {
			b.failures.Add(1)
			b.log.Error("backup snapshot failed; the next cycle retries", "tenant", id, "error", err)
			return nil, err
		}
		b.retries.Add(1)
		b.log.Warn("backup snapshot failed; retrying", "tenant", id, "error", err,
			"retry_in", snapshotRetries[attempt])
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(snapshotRetries[attempt]):
		}
	}
}

func (b *Backups) statePath() string { return filepath.Join(b.cfg.Dir, "state.json") }

func (b *Backups) loadState() (backupState, error) {
	var st backupState
	data, err := os.ReadFile(b.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	} else if err != nil {
		return st, fmt.Errorf("read backup state: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		// A damaged state costs one cycle that looks at every tenant that
		// ever changed; say so and carry on.
		b.log.Warn("backup state unreadable; looking at every tenant", "error", err)
		return backupState{}, nil
	}
	return st, nil
}

func (b *Backups) saveState(st backupState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := b.statePath() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o640); err != nil {
		return fmt.Errorf("write backup state: %w", err)
	}
	return os.Rename(tmp, b.statePath())
}

// Snapshot is one backup of a tenant.
type Snapshot struct {
	TenantID string
	Path     string
	TakenAt  time.Time // every change committed before this is in the snapshot
	Size     int64
}

// Snapshot exports tenant id into dir/<id>/<time>.db and removes all but
// the keep newest snapshots of the tenant. The file is made under a
// temporary name and renamed when complete, so a snapshot on disk is never
// partial.
//
// A snapshot reads the tenant file through a connection of its own rather
// than through the pool, so that backing up many tenants does not push
// the tenants requests are using out of the pool.
func (s *Store) Snapshot(ctx context.Context, dir, id string, keep int) (*Snapshot, error) {
	t, err := s.Catalog.Tenant(ctx, id)
	if err != nil {
		return nil, err
	}
	tdir := filepath.Join(dir, id)
	if err := os.MkdirAll(tdir, 0o750); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	taken := time.Now().UTC().Truncate(time.Millisecond)
	name := taken.Format(snapshotTimeFormat) + ".db"
	tmp := filepath.Join(tdir, ".partial-"+name)
	removeTenantFiles(tmp)
	if _, err := exportFile(ctx, s.Pool.Path(id), tmp, s.Pool.cfg.Options, id, t.Name); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	path := filepath.Join(tdir, name)
	if err := os.Rename(tmp, path); err != nil {
		removeTenantFiles(tmp)
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	if err := syncDir(tdir); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	snap := &Snapshot{TenantID: id, Path: path, TakenAt: taken}
	if fi, err := os.Stat(path); err == nil {
		snap.Size = fi.Size()
	}
	if err := pruneSnapshots(dir, id, keep); err != nil {
		s.log.Warn("prune snapshots", "tenant", id, "error", err)
	}
	s.log.Debug("tenant snapshot", "tenant", id, "path", path)
	return snap, nil
}

// exportFile exports the tenant file at src through a connection of its
// own.
func exportFile(ctx context.Context, src, dst string, o Options, id, name string) (*Manifest, error) {
	if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
		return nil, ErrTenantFileMissing
	}
	r, err := connect(src, o, modeRead)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	r.SetMaxOpenConns(1)
	db := &DB{id: id, path: src, r: r}
	return db.export(ctx, dst, name, o)
}

// ListSnapshots returns the snapshots of tenant id in dir, oldest first.
func ListSnapshots(dir, id string) ([]Snapshot, error) {
	if !runmerge.ValidTenantID(id) {
		return nil, ErrTenantFileMissing
	}
	entries, err := os.ReadDir(filepath.Join(dir, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list snapshots of %s: %w", id, err)
	}
	var out []Snapshot
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".db") {
			continue
		}
		taken, err := time.Parse(snapshotTimeFormat, strings.TrimSuffix(name, ".db"))
		if err != nil {
			continue
		}
		snap := Snapshot{TenantID: id, Path: filepath.Join(dir, id, name), TakenAt: taken}
		if fi, err := e.Info(); err == nil {
			snap.Size = fi.Size()
		}
		out = append(out, snap)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TakenAt.Before(out[j].TakenAt) })
	return out, nil
}

// latestSnapshot returns the newest snapshot of tenant id, or nil.
func latestSnapshot(dir, id string) (*Snapshot, error) {
	list, err := ListSnapshots(dir, id)
	if err != nil || len(list) == 0 {
		return nil, err
	}
	return &list[len(list)-1], nil
}

// pruneSnapshots removes all but the keep newest snapshots of tenant id.
func pruneSnapshots(dir, id string, keep int) error {
	list, err := ListSnapshots(dir, id)
	if err != nil {
		return err
	}
	var errs []error
	for len(list) > keep {
		if err := os.Remove(list[0].Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		list = list[1:]
	}
	return errors.Join(errs...)
}

// RestoreTenant replaces tenant id's data with a snapshot from dir, as
// ImportTenant does, creating the tenant if it was deleted. from names the
// snapshot: empty for the newest, a snapshot's file name or time
// (20260501T090000.000Z), or the path of any export file. It returns the
// snapshot used.
func (s *Store) RestoreTenant(ctx context.Context, dir, id, from string) (*ImportResult, string, error) {
	path, err := findSnapshot(dir, id, from)
	if err != nil {
		return nil, "", err
	}
	res, err := s.ImportTenantFile(ctx, id, path)
	return res, path, err
}

// findSnapshot resolves the from of RestoreTenant to a file.
func findSnapshot(dir, id, from string) (string, error) {
	if !runmerge.ValidTenantID(id) {
		return "", runmerge.ValidateTenantID(id, "/id")
	}
	if from == "" {
		last, err := latestSnapshot(dir, id)
		if err != nil {
			return "", err
		}
		if last == nil {
			return "", runmerge.Errorf(runmerge.ENOTFOUND, "no snapshot of tenant %s in %s", id, dir)
		}
		return last.Path, nil
	}
	if !strings.ContainsRune(from, os.PathSeparator) {
		p := filepath.Join(dir, id, strings.TrimSuffix(from, ".db")+".db")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if fi, err := os.Stat(from); err == nil && !fi.IsDir() {
		return from, nil
	}
	return "", runmerge.Errorf(runmerge.ENOTFOUND, "no snapshot %q of tenant %s", from, id)
}
