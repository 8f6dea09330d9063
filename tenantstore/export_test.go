package tenantstore

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runmerge/runmerge"
)

// platformAdmin is the principal of the tests that write records.
var platformAdmin = &runmerge.Principal{Role: runmerge.RoleAdmin}

// openTestStore opens a store on a new data directory and closes it when
// the test ends.
func openTestStore(tb testing.TB, dir string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), Config{DataDir: dir, MaxOpen: 64})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// mustCreateTenant creates tenant id in s.
func mustCreateTenant(tb testing.TB, s *Store, id string) {
	tb.Helper()
	if _, err := s.CreateTenant(context.Background(), id, "Tenant "+id); err != nil {
		tb.Fatal(err)
	}
}

// mustCreatePerson creates a person in tenant id and returns it.
func mustCreatePerson(tb testing.TB, s *Store, id string, n int) *runmerge.Record {
	tb.Helper()
	r, err := createPerson(s, id, n, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// createPerson creates a person numbered n in tenant id, with extra fields.
func createPerson(s *Store, id string, n int, extra map[string]any) (*runmerge.Record, error) {
	ctx := context.Background()
	l, err := s.Pool.Acquire(ctx, id)
	if err != nil {
		return nil, err
	}
	defer l.Release()
	c, _ := runmerge.CollectionByName(runmerge.CollectionPeople)
	body := map[string]any{
		"firstName": "Ada", "lastName": fmt.Sprintf("Person %d", n),
		"email": fmt.Sprintf("p%d@example.com", n), "sourceId": "test", "remoteId": fmt.Sprint(n),
	}
	for k, v := range extra {
		body[k] = v
	}
	return l.DB().CreateRecord(ctx, platformAdmin, c, body, nil, nil)
}

// openExport opens an export file read-only for inspection.
func openExport(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", standaloneDSN(path, Options{}.withDefaults(), true))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestExportTenant(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	mustCreateTenant(t, s, "acme")
	var last *runmerge.Record
	for i := range 5 {
		last = mustCreatePerson(t, s, "acme", i)
	}
	l, _ := s.Pool.Acquire(context.Background(), "acme")
	c, _ := runmerge.CollectionByName(runmerge.CollectionPeople)
	if err := l.DB().DeleteRecord(context.Background(), platformAdmin, c, last.ID, nil); err != nil {
		t.Fatal(err)
	}
	l.Release()

	path := filepath.Join(t.TempDir(), "acme.db")
	m, err := s.ExportTenant(context.Background(), "acme", path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Records["people"] != 4 || m.Tombstones["people"] != 1 || m.LastChange != 6 {
		t.Errorf("manifest = %+v, want 4 people, 1 tombstone, last change 6", m)
	}
	if m.SchemaVersion != TenantSchemaVersion() || m.TenantID != "acme" || m.TenantName != "Tenant acme" {
		t.Errorf("manifest = %+v", m)
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		t.Errorf("export left a WAL file beside it")
	}

	got, err := ReadManifest(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastChange != m.LastChange || got.Records["people"] != 4 || !got.ExportedAt.Equal(m.ExportedAt) {
		t.Errorf("ReadManifest = %+v, want %+v", got, m)
	}

	db := openExport(t, path)
	var mode string
	var appID, version int
	db.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	db.QueryRow(`PRAGMA application_id`).Scan(&appID)
	db.QueryRow(`PRAGMA user_version`).Scan(&version)
	if mode != "delete" || appID != tenantApplicationID || version != TenantSchemaVersion() {
		t.Errorf("export journal_mode %s, application_id %x, user_version %d", mode, appID, version)
	}
	var hits int
	db.QueryRow(`SELECT count(*) FROM records_fts WHERE records_fts MATCH 'ada'`).Scan(&hits)
	if hits != 4 {
		t.Errorf("search in export found %d, want 4", hits)
	}

	// The export's name must be free.
	if _, err := s.ExportTenant(context.Background(), "acme", path); err == nil {
		t.Errorf("export over an existing file succeeded")
	}
	if _, err := s.ExportTenant(context.Background(), "nobody", filepath.Join(t.TempDir(), "x.db")); runmerge.ErrorCode(err) != runmerge.ENOTFOUND {
		t.Errorf("export of a missing tenant: %v", err)
	}
}

// TestExportWhileWriting takes 100 exports while writers run at full
// speed: three update a record of their own over and over, one creates
// records numbered 0, 1, 2… Each writer waits for its write to commit
// before making the next, so an export consistent as of one moment holds a
// prefix of each writer's history: the creator's records 0..k-1 and no
// others, and of each updated record, version v with exactly the change
// events of versions 1..v. Across writers, the change positions in the
// file run 1..LastChange without a gap.
func TestExportWhileWriting(t *testing.T) {
	const updaters = 3
	exports := 100
	if raceEnabled {
		// The race detector slows SQLite tenfold; fewer rounds still show
		// any race between export and writers.
		exports = 15
	}
	s := openTestStore(t, t.TempDir())
	mustCreateTenant(t, s, "acme")
	people, _ := runmerge.CollectionByName(runmerge.CollectionPeople)
	counters := make([]string, updaters)
	for w := range counters {
		counters[w] = mustCreatePerson(t, s, "acme", -1-w).ID
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var written atomic.Int64
	errs := make(chan error, updaters+1)
	write := func(fn func(n int) error) {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			if err := fn(n); err != nil {
				errs <- err
				return
			}
			written.Add(1)
		}
	}
	wg.Add(updaters + 1)
	for w := range updaters {
		go write(func(n int) error {
			l, err := s.Pool.Acquire(context.Background(), "acme")
			if err != nil {
				return err
			}
			defer l.Release()
			_, err = l.DB().UpdateRecord(context.Background(), platformAdmin, people, counters[w],
				map[string]any{"jobTitle": fmt.Sprint(n)}, nil)
			return err
		})
	}
	go write(func(n int) error {
		_, err := createPerson(s, "acme", n, map[string]any{"company": "creator"})
		return err
	})

	out := t.TempDir()
	for i := range exports {
		path := filepath.Join(out, fmt.Sprintf("e%d.db", i))
		m, err := s.ExportTenant(context.Background(), "acme", path)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		checkExportPrefix(t, path, m, counters)
		os.Remove(path)
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d exports while writers made %d changes", exports, written.Load())
}

// checkExportPrefix checks that the export at path passes integrity_check,
// matches its manifest, and holds a prefix of each writer's history.
func checkExportPrefix(t *testing.T, path string, m *Manifest, counters []string) {
	t.Helper()
	ctx := context.Background()
	db := openExport(t, path)
	defer db.Close()
	if err := integrityCheck(ctx, db); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	got, err := readManifest(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	live, dead, err := countRecords(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range runmerge.CollectionNames {
		if live[c] != m.Records[c] || dead[c] != m.Tombstones[c] || got.Records[c] != m.Records[c] {
			t.Fatalf("%s: %s has %d records, %d tombstones; manifest says %d, %d (in file %d)",
				path, c, live[c], dead[c], m.Records[c], m.Tombstones[c], got.Records[c])
		}
	}

	var maxSeq, changes, maxChange int64
	db.QueryRow(`SELECT coalesce(max(seq), 0) FROM records`).Scan(&maxSeq)
	db.QueryRow(`SELECT count(*), coalesce(max(seq), 0) FROM changes`).Scan(&changes, &maxChange)
	if maxSeq != m.LastChange || changes != m.LastChange || maxChange != m.LastChange {
		t.Fatalf("%s: last record change %d, %d change events up to %d; manifest's last change is %d",
			path, maxSeq, changes, maxChange, m.LastChange)
	}

	var n, lo, hi sql.NullInt64
	err = db.QueryRow(`SELECT count(*), min(CAST(remote_id AS INTEGER)), max(CAST(remote_id AS INTEGER))
		FROM records WHERE json_extract(data, '$.company') = 'creator'`).Scan(&n, &lo, &hi)
	if err != nil {
		t.Fatal(err)
	}
	if n.Int64 > 0 && (lo.Int64 != 0 || hi.Int64 != n.Int64-1) {
		t.Fatalf("%s: created records %d..%d, %d of them: not a prefix", path, lo.Int64, hi.Int64, n.Int64)
	}

	for _, id := range counters {
		var version, events, maxVersion int64
		var title sql.NullString
		db.QueryRow(`SELECT version, json_extract(data, '$.jobTitle') FROM records WHERE id = ?`, id).
			Scan(&version, &title)
		db.QueryRow(`SELECT count(*), max(json_extract(data, '$.version')) FROM changes WHERE record_id = ?`, id).
			Scan(&events, &maxVersion)
		wantTitle := fmt.Sprint(version - 2)
		if events != version || maxVersion != version || (version > 1 && title.String != wantTitle) {
			t.Fatalf("%s: record at version %d (title %q) with %d change events up to version %d",
				path, version, title.String, events, maxVersion)
		}
	}
}

// TestExportLargeTenantUnderWrites measures the export of a big tenant
// while a writer goes on, and the writer's latency with and without the
// export. It runs with RUNMERGE_BENCH_EXPORT_MB=N (the tenant's size in
// MB; 100 in the figures of docs/benchmarks.md) and fails when the export
// takes 5 s or more, or the writes' p99 during it is 3 times that without.
func TestExportLargeTenantUnderWrites(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("RUNMERGE_BENCH_EXPORT_MB"))
	if mb == 0 {
		t.Skip("set RUNMERGE_BENCH_EXPORT_MB=100 to measure")
	}
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	mustCreateTenant(t, s, "big")
	start := time.Now()
	n := fillBigTenant(t, s, "big", int64(mb)<<20)
	size := tenantFileSize(s, "big")
	t.Logf("tenant of %d records, %.1f MB, built in %s", n, float64(size)/1e6, time.Since(start).Round(time.Second))

	// A writer at a steady 200 writes/s, so that its latencies measure
	// waiting, not throughput.
	type sample struct {
		at  time.Time
		dur time.Duration
	}
	var mu sync.Mutex
	var samples []sample
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			t0 := time.Now()
			if _, err := createPerson(s, "big", 10_000_000+i, nil); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			samples = append(samples, sample{t0, time.Since(t0)})
			mu.Unlock()
		}
	}()
	p99 := func(from, to time.Time) (time.Duration, int) {
		mu.Lock()
		defer mu.Unlock()
		var ds []time.Duration
		for _, s := range samples {
			if !s.at.Before(from) && s.at.Before(to) {
				ds = append(ds, s.dur)
			}
		}
		slices.Sort(ds)
		if len(ds) == 0 {
			return 0, 0
		}
		return ds[len(ds)*99/100], len(ds)
	}

	time.Sleep(500 * time.Millisecond) // warm up
	baseFrom := time.Now()
	time.Sleep(5 * time.Second)
	baseTo := time.Now()

	path := filepath.Join(t.TempDir(), "big.db")
	exportFrom := time.Now()
	m, err := s.ExportTenant(ctx, "big", path)
	exportTo := time.Now()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	took := exportTo.Sub(exportFrom)
	base, nBase := p99(baseFrom, baseTo)
	during, nDuring := p99(exportFrom, exportTo)
	t.Logf("export of %.1f MB (%d records) in %s; write p99 %s without (%d writes), %s during (%d writes)",
		float64(fi.Size())/1e6, m.Records["people"], took.Round(time.Millisecond),
		base.Round(10*time.Microsecond), nBase, during.Round(10*time.Microsecond), nDuring)
	if took >= 5*time.Second {
		t.Errorf("export took %s, want under 5s", took)
	}
	if during >= 3*base {
		t.Errorf("write p99 during the export %s, want under 3× %s", during, base)
	}
}

// tenantFileSize is the size of tenant id's file and its WAL.
func tenantFileSize(s *Store, id string) int64 {
	var n int64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(s.Pool.Path(id) + suffix); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// fillBigTenant adds people in bulk to tenant id until its file holds
// about size bytes, and returns how many it added.
func fillBigTenant(t *testing.T, s *Store, id string, size int64) int {
	t.Helper()
	ctx := context.Background()
	people, _ := runmerge.CollectionByName(runmerge.CollectionPeople)
	bio := strings.Repeat("Speaks about distributed systems, databases and the craft of software. ", 4)
	n := 0
	for tenantFileSize(s, id) < size {
		bodies := make([]map[string]any, 1000)
		for i := range bodies {
			bodies[i] = map[string]any{
				"firstName": "Ada", "lastName": fmt.Sprintf("Lovelace %d", n),
				"email": fmt.Sprintf("ada%d@example.com", n), "company": "Analytical Engines",
				"jobTitle": "Engineer", "industry": "Software", "type": "Attendee", "status": "Active",
				"sourceId": "bench", "remoteId": fmt.Sprint(n),
				"address":       map[string]any{"addressLine1": "12 St James's Square", "city": "London", "country": "GB"},
				"sourceRawData": map[string]any{"bio": bio},
			}
			n++
		}
		l, err := s.Pool.Acquire(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.DB().BulkUpsert(ctx, platformAdmin, people, bodies, nil, nil)
		l.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestExportOpensInSQLiteShell opens an export with the sqlite3 shell of
// the machine, when there is one: the tables, the manifest and the records
// read, and integrity_check passes. The search index needs SQLite 3.43 or
// later to be queried; older shells read everything else.
func TestExportOpensInSQLiteShell(t *testing.T) {
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("no sqlite3 shell on this machine")
	}
	s := openTestStore(t, t.TempDir())
	mustCreateTenant(t, s, "acme")
	fillTenant(t, s, "acme")
	path := mustExport(t, s, "acme")
	for q, want := range map[string]string{
		".tables":                "runmerge_export_counts",
		"PRAGMA integrity_check": "ok",
		"SELECT tenant_id, schema_version FROM runmerge_export":                          "acme|" + strconv.Itoa(TenantSchemaVersion()),
		"SELECT records FROM runmerge_export_counts WHERE collection = 'people'":         "3",
		"SELECT count(*) FROM records WHERE json_extract(data, '$.firstName') = 'Grace'": "3",
		".dump": "CREATE TABLE records",
	} {
		out, err := exec.Command(shell, "-readonly", path, q).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("sqlite3 %q: %v\n%s", q, err, out)
		}
	}
	version, _ := exec.Command(shell, "--version").Output()
	t.Logf("sqlite3 %s", strings.TrimSpace(string(version)))
}
