package tenantstore

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"time"
)

// markEvery is how often, at most, the catalog is written on the commit
// path for one tenant's changes. Commits in between are noted in memory and
// written by the tracker's loop within markEvery/4.
const markEvery = time.Second

// changeTracker keeps the catalog's tenants.changed_at up to date, so that
// work across tenants (backups, and any replication that comes later) can
// find the tenants changed since a given moment without opening a file.
//
// changed_at is written at or after each commit, never before, so a
// snapshot of a tenant taken at time S holds every change of a tenant
// whose changed_at is earlier than S. The first commit of a tenant after a
// quiet second writes the catalog at once, on the committing goroutine;
// commits that follow within the second are written together by the loop.
// A crash can lose only those trailing marks.
type changeTracker struct {
	catalog *Catalog
	log     *slog.Logger

	mu       sync.Mutex
	markedAt map[string]time.Time // tenants marked within markEvery, when
	pending  map[string]bool      // tenants changed since their last mark

	stop chan struct{}
	done chan struct{}
}

func newChangeTracker(catalog *Catalog, log *slog.Logger) *changeTracker {
	t := &changeTracker{
		catalog:  catalog,
		log:      log,
		markedAt: make(map[string]time.Time),
		pending:  make(map[string]bool),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go t.loop()
	return t
}

// changed notes a committed change to tenant id.
func (t *changeTracker) changed(id string) {
	now := time.Now()
	t.mu.Lock()
	if last, ok := t.markedAt[id]; ok && now.Sub(last) < markEvery {
		t.pending[id] = true
		t.mu.Unlock()
		return
	}
	t.markedAt[id] = now
	t.mu.Unlock()

	if err := t.catalog.MarkTenantsChanged(context.Background(), []string{id}, now); err != nil {
		t.log.Warn("mark tenant changed; will retry", "tenant", id, "error", err)
		t.mu.Lock()
		t.pending[id] = true
		t.mu.Unlock()
	}
}

func (t *changeTracker) loop() {
	defer close(t.done)
	tick := time.NewTicker(markEvery / 4)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			t.flush()
			return
		case <-tick.C:
			t.flush()
		}
	}
}

// flush writes the pending marks, and forgets marks older than markEvery,
// so that the next commit of those tenants writes at once again.
func (t *changeTracker) flush() {
	now := time.Now()
	t.mu.Lock()
	ids := make([]string, 0, len(t.pending))
	for id := range t.pending {
		ids = append(ids, id)
		t.markedAt[id] = now
	}
	clear(t.pending)
	for id, at := range t.markedAt {
		if now.Sub(at) >= markEvery {
			delete(t.markedAt, id)
		}
	}
	t.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	if err := t.catalog.MarkTenantsChanged(context.Background(), ids, now); err != nil {
		t.log.Warn("mark tenants changed; will retry", "tenants", len(ids), "error", err)
		t.mu.Lock()
		for _, id := range ids {
			t.pending[id] = true
		}
		t.mu.Unlock()
	}
}

// close writes the marks still pending and stops the loop.
func (t *changeTracker) close() error {
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	<-t.done
	return nil
}

// tenantChanged notes a change to tenant id made other than by a record
// commit, such as an import.
func (s *Store) tenantChanged(id string) {
	if s.changes != nil {
		s.changes.changed(id)
	}
}

// MarkTenantsChanged records that tenants ids changed at time at. A mark
// never moves changed_at back, whichever process writes it.
func (c *Catalog) MarkTenantsChanged(ctx context.Context, ids []string, at time.Time) error {
	tx, err := c.w.BeginTx(ctx, nil)
	if err != nil {
		return wrapErr(err, "mark tenants changed")
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `UPDATE tenants SET changed_at = max(coalesce(changed_at, ''), ?)
		WHERE id = ?`)
	if err != nil {
		return wrapErr(err, "mark tenants changed")
	}
	defer stmt.Close()
	for _, id := range ids {
		if _, err := stmt.ExecContext(ctx, formatTime(at), id); err != nil {
			return wrapErr(err, "mark tenant %s changed", id)
		}
	}
	return wrapErr(tx.Commit(), "mark tenants changed")
}

// TenantChange is a tenant and when its records last changed.
type TenantChange struct {
	TenantID  string
	ChangedAt time.Time
}

// TenantsChangedSince returns up to limit tenants whose records changed at
// or after since, in order of that time and then id, starting after the
// tenant after (the last one of the previous page; nil for the first).
// Its cost is the tenants it returns, not the tenants there are.
func (c *Catalog) TenantsChangedSince(ctx context.Context, since time.Time, after *TenantChange,
	limit int) ([]TenantChange, error) {
	var rows *sql.Rows
	var err error
	if after == nil {
		rows, err = c.r.QueryContext(ctx, `SELECT id, changed_at FROM tenants
			WHERE changed_at >= ? ORDER BY changed_at, id LIMIT ?`, formatTime(since), limit)
	} else {
		rows, err = c.r.QueryContext(ctx, `SELECT id, changed_at FROM tenants
			WHERE changed_at >= ? AND (changed_at, id) > (?, ?) ORDER BY changed_at, id LIMIT ?`,
			formatTime(since), formatTime(after.ChangedAt), after.TenantID, limit)
	}
	if err != nil {
		return nil, wrapErr(err, "list changed tenants")
	}
	defer rows.Close()
	var out []TenantChange
	for rows.Next() {
		var tc TenantChange
		var at string
		if err := rows.Scan(&tc.TenantID, &at); err != nil {
			return nil, wrapErr(err, "list changed tenants")
		}
		tc.ChangedAt = parseTime(at)
		out = append(out, tc)
	}
	return out, wrapErr(rows.Err(), "list changed tenants")
}

// TenantChangedAt returns when tenant id's records last changed, or the
// zero time when they never did (or the tenant does not exist).
func (c *Catalog) TenantChangedAt(ctx context.Context, id string) (time.Time, error) {
	var at sql.NullString
	err := c.r.QueryRowContext(ctx, `SELECT changed_at FROM tenants WHERE id = ?`, id).Scan(&at)
	if err == sql.ErrNoRows || !at.Valid {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, wrapErr(err, "read tenant %s", id)
	}
	return parseTime(at.String), nil
}
