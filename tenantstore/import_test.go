package tenantstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/schema"
)

// probeMigrationSet returns the tenant migrations with one more, a test
// migration that adds the table migrate_probe, so that files made by this
// build are one version old.
func probeMigrationSet(tb testing.TB) *migrationSet {
	tb.Helper()
	fsys := fstest.MapFS{}
	entries, err := fs.ReadDir(schema.FS, "tenant")
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		data, err := fs.ReadFile(schema.FS, "tenant/"+e.Name())
		if err != nil {
			tb.Fatal(err)
		}
		fsys["tenant/"+e.Name()] = &fstest.MapFile{Data: data}
	}
	name := fmt.Sprintf("tenant/%04d_probe.sql", len(entries)+1)
	fsys[name] = &fstest.MapFile{Data: []byte(`CREATE TABLE migrate_probe (x INTEGER) STRICT;`)}
	set, err := loadMigrations(fsys, "tenant", tenantApplicationID)
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

// useTenantMigrations makes set the tenant migrations of this build until
// the test ends.
func useTenantMigrations(tb testing.TB, set *migrationSet) {
	tb.Helper()
	old := tenantMigrations
	tenantMigrations = set
	tb.Cleanup(func() { tenantMigrations = old })
}

// fileHash returns the SHA-256 of the file at path and of its WAL, if any.
func fileHash(tb testing.TB, path string) string {
	tb.Helper()
	h := sha256.New()
	for _, p := range []string{path, path + "-wal"} {
		data, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			tb.Fatal(err)
		}
		h.Write(data)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// closeTenant closes tenant id's file in the pool, checkpointing it.
func closeTenant(tb testing.TB, s *Store, id string) {
	tb.Helper()
	unlock, err := s.Pool.Lock(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	unlock()
}

// fillTenant gives tenant id an event, a session linked to it, people
// linked to both, and a tombstone.
func fillTenant(tb testing.TB, s *Store, id string) {
	tb.Helper()
	ctx := context.Background()
	l, err := s.Pool.Acquire(ctx, id)
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Release()
	db := l.DB()
	coll := func(name string) *runmerge.Collection {
		c, _ := runmerge.CollectionByName(name)
		return c
	}
	ev, err := db.CreateRecord(ctx, platformAdmin, coll("events"), map[string]any{
		"name": "Gophercon", "startDate": "2026-05-01T09:00:00Z", "endDate": "2026-05-03T18:00:00Z",
		"sourceRawData": map[string]any{"legacy": 1},
	}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	se, err := db.CreateRecord(ctx, platformAdmin, coll("sessions"), map[string]any{
		"name": "Keynote", "startDate": "2026-05-01T09:00:00Z", "endDate": "2026-05-01T10:00:00Z",
		"eventId": ev.ID,
	}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range 3 {
		_, err := db.CreateRecord(ctx, platformAdmin, coll("people"), map[string]any{
			"firstName": "Grace", "lastName": fmt.Sprint(i), "email": fmt.Sprintf("g%d@example.com", i),
			"relationships": map[string]any{"linkedEventIds": []any{ev.ID}, "linkedSessionIds": []any{se.ID}},
		}, nil, nil)
		if err != nil {
			tb.Fatal(err)
		}
	}
	gone, err := db.CreateRecord(ctx, platformAdmin, coll("sponsors"), map[string]any{"name": "Gone"}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.DeleteRecord(ctx, platformAdmin, coll("sponsors"), gone.ID, nil); err != nil {
		tb.Fatal(err)
	}
}

// mustExport exports tenant id of s into a new file and returns its path.
func mustExport(tb testing.TB, s *Store, id string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), id+".db")
	if _, err := s.ExportTenant(context.Background(), id, path); err != nil {
		tb.Fatal(err)
	}
	return path
}

// dumpTenant returns every row of the records, links and changes tables of
// tenant id, in a stable order, with the change events' tenant ids left out.
func dumpTenant(tb testing.TB, s *Store, id string) []string {
	tb.Helper()
	ctx := context.Background()
	l, err := s.Pool.Acquire(ctx, id)
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Release()
	var out []string
	for _, q := range []string{
		`SELECT id, collection, seq, coalesce(source_id, ''), coalesce(remote_id, ''), data,
			coalesce(raw_data, ''), version, created_at, updated_at, coalesce(deleted_at, '') FROM records ORDER BY rid`,
		`SELECT a_id, b_coll, b_id, owner_id, '', '', '', '', '', '', '' FROM links ORDER BY 1, 2, 3, 4`,
		`SELECT seq, id, event_type, record_id, event_ids, at, json_remove(data, '$.tenantId'), '', '', '', ''
			FROM changes ORDER BY seq`,
		`SELECT rowid, '', '', '', '', '', '', '', '', '', '' FROM records_fts WHERE records_fts MATCH 'grace'`,
	} {
		rows, err := l.DB().r.QueryContext(ctx, q)
		if err != nil {
			tb.Fatal(err)
		}
		for rows.Next() {
			v := make([]any, 11)
			p := make([]any, 11)
			for i := range v {
				p[i] = &v[i]
			}
			if err := rows.Scan(p...); err != nil {
				tb.Fatal(err)
			}
			out = append(out, fmt.Sprint(v...))
		}
		rows.Close()
	}
	return out
}

func TestImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := openTestStore(t, t.TempDir())
	mustCreateTenant(t, src, "acme")
	fillTenant(t, src, "acme")
	path := mustExport(t, src, "acme")

	dst := openTestStore(t, t.TempDir())
	res, err := dst.ImportTenantFile(ctx, "acme-copy", path)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Manifest == nil || res.Manifest.TenantID != "acme" || res.Records["people"] != 3 {
		t.Errorf("import result = %+v", res)
	}
	want, got := dumpTenant(t, src, "acme"), dumpTenant(t, dst, "acme-copy")
	if fmt.Sprint(want) != fmt.Sprint(got) {
		t.Errorf("imported tenant differs:\n got %v\nwant %v", got, want)
	}

	tn, err := dst.Catalog.Tenant(ctx, "acme-copy")
	if err != nil || tn.Name != "Tenant acme" || tn.Status != runmerge.TenantActive {
		t.Errorf("catalog tenant = %+v, %v", tn, err)
	}
	for _, c := range []string{"events", "people", "sessions", "sponsors"} {
		ids, err := dst.Catalog.TenantsWithRecords(ctx, c, "", 10)
		if err != nil || len(ids) != 1 || ids[0] != "acme-copy" {
			t.Errorf("tenants with %s = %v, %v", c, ids, err)
		}
	}
	ts, err := dst.Catalog.TenantSchemaOf(ctx, "acme-copy")
	if err != nil || ts.Version != TenantSchemaVersion() || ts.MigrateError != "" {
		t.Errorf("catalog schema = %+v, %v", ts, err)
	}
	if at, _ := dst.Catalog.TenantChangedAt(ctx, "acme-copy"); at.IsZero() {
		t.Errorf("import did not mark the tenant changed")
	}

	// The change events now name their new tenant.
	l, _ := dst.Pool.Acquire(ctx, "acme-copy")
	var wrong int
	l.DB().r.QueryRow(`SELECT count(*) FROM changes WHERE json_extract(data, '$.tenantId') <> 'acme-copy'`).Scan(&wrong)
	var tables int
	l.DB().r.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name LIKE 'runmerge_export%'`).Scan(&tables)
	l.Release()
	if wrong != 0 || tables != 0 {
		t.Errorf("%d change events name another tenant; %d manifest tables left", wrong, tables)
	}

	// Importing again over the tenant replaces it, and waits for a lease.
	lease, _ := dst.Pool.Acquire(ctx, "acme-copy")
	done := make(chan error)
	go func() {
		_, err := dst.ImportTenantFile(ctx, "acme-copy", path)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("import did not wait for the lease: %v", err)
	default:
	}
	lease.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := dumpTenant(t, dst, "acme-copy"); fmt.Sprint(want) != fmt.Sprint(got) {
		t.Errorf("re-imported tenant differs")
	}
}

func TestImportMigratesOlderFile(t *testing.T) {
	src := openTestStore(t, t.TempDir())
	mustCreateTenant(t, src, "acme")
	fillTenant(t, src, "acme")
	path := mustExport(t, src, "acme")

	set := probeMigrationSet(t)
	useTenantMigrations(t, set)
	dst := openTestStore(t, t.TempDir())
	res, err := dst.ImportTenantFile(context.Background(), "acme", path)
	if err != nil {
		t.Fatal(err)
	}
	if res.FromVersion != set.latest()-1 || res.SchemaVersion != set.latest() {
		t.Errorf("import from version %d to %d, want %d to %d", res.FromVersion, res.SchemaVersion,
			set.latest()-1, set.latest())
	}
	l, err := dst.Pool.Acquire(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if n := mustCount(t, l.DB(), `SELECT count(*) FROM migrate_probe`); n != 0 {
		t.Errorf("probe table has %d rows", n)
	}
}

// refusedUploads returns files that an import must refuse, by name.
func refusedUploads(t *testing.T, export string) map[string][]byte {
	t.Helper()
	good, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	edit := func(name, script string) []byte {
		p := filepath.Join(dir, name+".db")
		if err := os.WriteFile(p, good, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("sqlite", "file:"+p+"?_pragma=journal_mode(DELETE)")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(script); err != nil {
			t.Fatal(err)
		}
		db.Close()
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	other := func() []byte {
		p := filepath.Join(dir, "other.db")
		db, _ := sql.Open("sqlite", "file:"+p)
		if _, err := db.Exec(`CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hello')`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		data, _ := os.ReadFile(p)
		return data
	}
	random := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	// A damaged page in the middle: the header and length are fine, the
	// contents are not.
	damaged := bytes.Clone(good)
	page := len(damaged) / 4096 / 2 * 4096
	for i := page + 8; i < page+4096; i++ {
		damaged[i] = byte(rng.Uint32())
	}
	return map[string][]byte{
		"random":            random,
		"random with magic": append([]byte(sqliteMagic), random[16:]...),
		"empty":             {},
		"truncated":         good[:len(good)/2],
		"cut mid-page":      good[:len(good)-100],
		"cut at a page":     good[:len(good)/2/4096*4096],
		"padded":            append(bytes.Clone(good), make([]byte, 4096)...),
		"header only":       good[:100],
		"other app":         other(),
		"future version":    edit("future", fmt.Sprintf(`PRAGMA user_version = %d`, TenantSchemaVersion()+1)),
		"wrong app id":      edit("appid", `PRAGMA application_id = 1234`),
		"extra trigger": edit("trigger", `CREATE TRIGGER evil AFTER INSERT ON records
			BEGIN DELETE FROM records; END`),
		"missing index": edit("index", `DROP INDEX records_updated`),
		"malformed record": edit("json", `UPDATE records SET data = '{"name": "unfinished'
			WHERE rid = (SELECT min(rid) FROM records)`),
		"malformed change": edit("change", `UPDATE changes SET event_ids = 'nope' WHERE seq = 1`),
		"damaged page":     damaged,
	}
}

func TestImportRefusals(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	mustCreateTenant(t, s, "acme")
	fillTenant(t, s, "acme")
	export := mustExport(t, s, "acme")
	closeTenant(t, s, "acme")
	before := fileHash(t, s.Pool.Path("acme"))

	for name, data := range refusedUploads(t, export) {
		t.Run(name, func(t *testing.T) {
			for _, id := range []string{"acme", "newcomer"} {
				_, err := s.ImportTenant(ctx, id, bytes.NewReader(data))
				if runmerge.ErrorCode(err) != runmerge.EINVALID {
					t.Errorf("import into %s: %v, want a validation error", id, err)
				} else if id == "acme" {
					t.Log(runmerge.ErrorMessage(err))
				}
			}
			if after := fileHash(t, s.Pool.Path("acme")); after != before {
				t.Errorf("tenant file changed")
			}
			if _, err := s.Catalog.Tenant(ctx, "newcomer"); runmerge.ErrorCode(err) != runmerge.ENOTFOUND {
				t.Errorf("refused import created the tenant: %v", err)
			}
			if _, err := os.Stat(s.Pool.Path("newcomer")); err == nil {
				t.Errorf("refused import left a file")
			}
		})
	}
	entries, _ := os.ReadDir(filepath.Join(filepath.Dir(s.Catalog.Path()), "tmp"))
	if len(entries) != 0 {
		t.Errorf("imports left %d temporary files", len(entries))
	}
}

func TestImportRefusesFileOpenElsewhere(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	mustCreateTenant(t, s, "acme")
	fillTenant(t, s, "acme")
	export := mustExport(t, s, "acme")
	closeTenant(t, s, "acme")

	// Another process, as far as SQLite can tell: a connection of its own.
	o := Options{BusyTimeout: 100 * time.Millisecond}.withDefaults()
	other, err := connect(s.Pool.Path("acme"), o, modeRead)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readHeader(ctx, other); err != nil {
		t.Fatal(err)
	}
	s.Pool.cfg.Options.BusyTimeout = 100 * time.Millisecond
	_, err = s.ImportTenantFile(ctx, "acme", export)
	if runmerge.ErrorCode(err) != runmerge.ECONFLICT {
		t.Errorf("import beside another connection: %v, want a conflict", err)
	}
	other.Close()
	if _, err := s.ImportTenantFile(ctx, "acme", export); err != nil {
		t.Errorf("import once the other connection closed: %v", err)
	}
}

// FuzzImport imports damaged exports: every one is imported or refused
// with a validation error, never anything else. The seed is an export
// rewritten with 512-byte pages, which keeps it small enough to fuzz.
func FuzzImport(f *testing.F) {
	s := openTestStore(f, f.TempDir())
	mustCreateTenant(f, s, "acme")
	fillTenant(f, s, "acme")
	path := mustExport(f, s, "acme")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA page_size = 512; VACUUM`); err != nil {
		f.Fatal(err)
	}
	db.Close()
	export, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(export, 0, byte(0))
	f.Add(export, len(export)/2, byte(0xff))
	f.Add(export[:len(export)/2], 100, byte(1))
	f.Fuzz(func(t *testing.T, data []byte, at int, b byte) {
		if at >= 0 && at < len(data) {
			data = bytes.Clone(data)
			data[at] ^= b
		}
		_, err := s.ImportTenant(context.Background(), "fuzz", bytes.NewReader(data))
		if err != nil && runmerge.ErrorCode(err) != runmerge.EINVALID {
			t.Fatalf("import: %v, want success or a validation error", err)
		}
	})
}
