package tenantstore

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/runmerge/runmerge"
)

// waitChanged waits until the catalog records a change of tenant id at or
// after t.
func waitChanged(tb testing.TB, s *Store, id string, t time.Time) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		at, err := s.Catalog.TenantChangedAt(context.Background(), id)
		if err != nil {
			tb.Fatal(err)
		}
		if !at.Before(t.Truncate(time.Millisecond)) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatalf("tenant %s not marked changed since %s", id, t)
}

func TestChangeTracker(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	mustCreateTenant(t, s, "acme")
	mustCreateTenant(t, s, "quiet")
	if at, _ := s.Catalog.TenantChangedAt(ctx, "acme"); !at.IsZero() {
		t.Errorf("new tenant marked changed at %s", at)
	}

	// The first change is marked before the writer is answered.
	before := time.Now()
	mustCreatePerson(t, s, "acme", 1)
	first, _ := s.Catalog.TenantChangedAt(ctx, "acme")
	if first.Before(before.Truncate(time.Millisecond)) {
		t.Fatalf("first change marked at %s, want at or after %s", first, before)
	}
	// Changes that follow at once are marked by the loop, within a second.
	second := time.Now()
	mustCreatePerson(t, s, "acme", 2)
	waitChanged(t, s, "acme", second)

	list, err := s.Catalog.TenantsChangedSince(ctx, before, nil, 10)
	if err != nil || len(list) != 1 || list[0].TenantID != "acme" {
		t.Errorf("changed since %s: %v, %v", before, list, err)
	}
	// Paging goes on after the last tenant of a page.
	if more, err := s.Catalog.TenantsChangedSince(ctx, before, &list[0], 10); err != nil || len(more) != 0 {
		t.Errorf("next page: %v, %v", more, err)
	}
}

func TestChangeTrackerFlushesOnClose(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), Config{DataDir: dir, MaxOpen: 8})
	if err != nil {
		t.Fatal(err)
	}
	mustCreateTenant(t, s, "acme")
	mustCreatePerson(t, s, "acme", 1)
	last := time.Now()
	mustCreatePerson(t, s, "acme", 2) // within a second: left to the loop
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir)
	if at, _ := s.Catalog.TenantChangedAt(context.Background(), "acme"); at.Before(last.Truncate(time.Millisecond)) {
		t.Errorf("change at %s marked at %s after close", last, at)
	}
}

// TestClosedTenantFileIsComplete checks that a tenant file closed by the
// pool has no WAL left beside it, so that it may be copied on its own.
func TestClosedTenantFileIsComplete(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	mustCreateTenant(t, s, "acme")
	for i := range 20 {
		mustCreatePerson(t, s, "acme", i)
	}
	path := s.Pool.Path("acme")
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("open tenant has no WAL to checkpoint: %v", err)
	}
	closeTenant(t, s, "acme")
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		t.Errorf("closed tenant left a WAL of %d bytes", fi.Size())
	}

	// A copy of the file alone holds every record.
	cp := filepath.Join(t.TempDir(), "copy.db")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cp, data, 0o600)
	db := openExport(t, cp)
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM records`).Scan(&n); err != nil || n != 20 {
		t.Errorf("copy holds %d records (%v), want 20", n, err)
	}
}

func TestBackupCycle(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	for _, id := range []string{"acme", "globex", "idle"} {
		mustCreateTenant(t, s, id)
	}
	mustCreatePerson(t, s, "acme", 1)
	mustCreatePerson(t, s, "globex", 1)
	dir := t.TempDir()
	b, err := s.NewBackups(BackupConfig{Dir: dir, Interval: time.Hour, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	cycle := func(want ...string) {
		t.Helper()
		res, err := b.RunCycle(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(res.Snapshots)
		if !slices.Equal(res.Snapshots, want) || len(res.Failed) > 0 {
			t.Fatalf("cycle snapshotted %v (failed %v), want %v", res.Snapshots, res.Failed, want)
		}
	}
	// The first cycle snapshots the tenants that ever changed; the idle
	// tenant has nothing to back up.
	cycle("acme", "globex")
	// Nothing changed: nothing to do, and no tenant file is opened.
	closeTenant(t, s, "acme")
	closeTenant(t, s, "globex")
	opens := s.Pool.Stats().Opens
	cycle()
	if got := s.Pool.Stats().Opens; got != opens {
		t.Errorf("a cycle with nothing to do opened %d tenant files", got-opens)
	}
	// One tenant changes: only it is snapshotted.
	changed := time.Now()
	mustCreatePerson(t, s, "acme", 2)
	waitChanged(t, s, "acme", changed)
	cycle("acme")
	if st := b.Stats(); st.Snapshots != 3 || st.Failures != 0 || st.Cycles != 3 {
		t.Errorf("stats = %+v", st)
	}
	// Keep bounds the snapshots of a tenant.
	changed = time.Now()
	mustCreatePerson(t, s, "acme", 3)
	waitChanged(t, s, "acme", changed)
	cycle("acme")
	snaps, err := ListSnapshots(dir, "acme")
	if err != nil || len(snaps) != 2 {
		t.Fatalf("acme has %d snapshots (%v), want 2", len(snaps), err)
	}
	m, err := ReadManifest(ctx, snaps[1].Path)
	if err != nil || m.Records["people"] != 3 {
		t.Errorf("newest snapshot manifest = %+v, %v", m, err)
	}

	// A restore brings a deleted tenant back as of its newest snapshot.
	if err := s.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	res, used, err := s.RestoreTenant(ctx, dir, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	if used != snaps[1].Path || !res.Created || res.Records["people"] != 3 {
		t.Errorf("restore from %s: %+v", used, res)
	}
	if st, err := s.TenantStats(ctx, "acme"); err != nil || st.Records["people"] != 3 {
		t.Errorf("restored tenant stats = %+v, %v", st, err)
	}
	// An older snapshot can be named.
	name := filepath.Base(snaps[0].Path)
	if _, _, err := s.RestoreTenant(ctx, dir, "acme", name); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.TenantStats(ctx, "acme"); st.Records["people"] != 2 {
		t.Errorf("after restoring %s: %d people, want 2", name, st.Records["people"])
	}
	if _, _, err := s.RestoreTenant(ctx, dir, "nobody", ""); runmerge.ErrorCode(err) != runmerge.ENOTFOUND {
		t.Errorf("restore without a snapshot: %v", err)
	}
}

func TestBackupRetriesFailures(t *testing.T) {
	old := snapshotRetries
	snapshotRetries = []time.Duration{time.Millisecond}
	t.Cleanup(func() { snapshotRetries = old })

	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	mustCreateTenant(t, s, "acme")
	mustCreatePerson(t, s, "acme", 1)
	dir := t.TempDir()
	b, err := s.NewBackups(BackupConfig{Dir: dir, Interval: time.Hour, Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	// A file where the tenant's snapshot directory should be makes every
	// attempt fail.
	if err := os.WriteFile(filepath.Join(dir, "acme"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := b.RunCycle(ctx)
	if err != nil || len(res.Failed) != 1 {
		t.Fatalf("cycle: %+v, %v; want acme failed", res, err)
	}
	if st := b.Stats(); st.Failures != 1 || st.Retries != 1 {
		t.Errorf("stats = %+v, want 1 failure after 1 retry", st)
	}
	// The next cycle tries again while the fault lasts, without acme
	// changing, and succeeds once the fault is gone.
	res, err = b.RunCycle(ctx)
	if err != nil || len(res.Failed) != 1 {
		t.Fatalf("second cycle: %+v, %v; want acme failed again", res, err)
	}
	os.Remove(filepath.Join(dir, "acme"))
	res, err = b.RunCycle(ctx)
	if err != nil || len(res.Snapshots) != 1 {
		t.Errorf("third cycle: %+v, %v; want acme snapshotted", res, err)
	}
	if res, err := b.RunCycle(ctx); err != nil || len(res.Snapshots)+len(res.Failed) != 0 {
		t.Errorf("fourth cycle: %+v, %v; want nothing to do", res, err)
	}
}

func TestBackupSchedulerSpreadsSnapshots(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ids := []string{"a", "b", "c", "d"}
	for i, id := range ids {
		mustCreateTenant(t, s, id)
		mustCreatePerson(t, s, id, i)
	}
	dir := t.TempDir()
	b, err := s.NewBackups(BackupConfig{Dir: dir, Interval: 400 * time.Millisecond, Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	b.Start()
	defer b.Close()
	var taken []time.Time
	deadline := time.Now().Add(5 * time.Second)
	for len(taken) < len(ids) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		taken = taken[:0]
		for _, id := range ids {
			if snaps, _ := ListSnapshots(dir, id); len(snaps) > 0 {
				taken = append(taken, snaps[0].TakenAt)
			}
		}
	}
	if len(taken) != len(ids) {
		t.Fatalf("%d of %d tenants snapshotted", len(taken), len(ids))
	}
	slices.SortFunc(taken, func(a, b time.Time) int { return a.Compare(b) })
	if spread := taken[len(taken)-1].Sub(taken[0]); spread < 200*time.Millisecond {
		t.Errorf("snapshots of one cycle taken within %s, want them spread over the interval", spread)
	}
}
