package tenantstore

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runmerge/runmerge"
)

// bigTenant is a tenant file of about 100,000 records in every collection,
// linked to each other, for plan tests and benchmarks. Its fields name
// values that filters select: some common, some rare.
type bigTenant struct {
	db       *DB
	records  int
	ids      map[string][]string // collection → ids in creation order
	bigEvent string              // an event that a tenth of all people link to
}

// bigTenantSizes is how many records of each collection a big tenant holds.
var bigTenantSizes = []struct {
	coll string
	n    int
}{
	{runmerge.CollectionEvents, 2_000},
	{runmerge.CollectionPeople, 60_000},
	{runmerge.CollectionSessions, 10_000},
	{runmerge.CollectionTickets, 20_000},
	{runmerge.CollectionExhibitors, 3_000},
	{runmerge.CollectionSponsors, 2_000},
	{runmerge.CollectionResources, 3_000},
}

var firstNames = strings.Fields(`Ada Grace Linus Alan Barbara Edsger Donald Margaret Ken Dennis
	Frances Radia Tim Vint Bjarne Guido Rob Anita Sophie Niklaus`)

// bigRecord returns the body of record i of coll in a big tenant.
func (bt *bigTenant) bigRecord(coll string, i int) map[string]any {
	events := bt.ids[runmerge.CollectionEvents]
	event := func(k int) string { return events[k%len(events)] }
	src := map[string]any{"sourceId": fmt.Sprintf("src%d", i%10), "remoteId": fmt.Sprintf("%s-%d", coll, i)}
	body := func(m map[string]any) map[string]any {
		for k, v := range src {
			m[k] = v
		}
		return m
	}
	switch coll {
	case runmerge.CollectionEvents:
		statuses := []string{"Upcoming", "Ongoing", "Completed", "Cancelled", "Postponed"}
		return body(map[string]any{"name": fmt.Sprintf("Event %d summit", i), "startDate": "2026-05-01T09:00:00Z",
			"endDate": "2026-05-02T18:00:00Z", "status": statuses[i%5]})
	case runmerge.CollectionPeople:
		types := []string{"Organizer", "Attendee", "Speaker", "Exhibitor", "Sponsor"}
		links := []any{event(i)}
		if i%10 == 0 {
			links = append(links, bt.bigEvent)
		}
		return body(map[string]any{"firstName": firstNames[i%len(firstNames)],
			"lastName": fmt.Sprintf("Person%d", i), "email": fmt.Sprintf("person%d@example.com", i),
			"type": types[i%5], "status": []string{"Active", "Inactive"}[i%2],
			"relationships": map[string]any{"linkedEventIds": links}})
	case runmerge.CollectionSessions:
		return body(map[string]any{"name": fmt.Sprintf("Session %d", i), "startDate": "2026-05-01T09:00:00Z",
			"endDate": "2026-05-01T10:00:00Z", "eventId": event(i),
			"status": []string{"Upcoming", "Ongoing", "Completed", "Cancelled"}[i%4]})
	case runmerge.CollectionTickets:
		people := bt.ids[runmerge.CollectionPeople]
		return body(map[string]any{"ticketType": "Day pass", "price": 10, "currency": "EUR",
			"status": []string{"valid", "used", "void"}[i%3],
			"relationships": map[string]any{"linkedEventIds": []any{event(i)},
				"linkedPersonIds": []any{people[i%len(people)]}}})
	case runmerge.CollectionExhibitors:
		return body(map[string]any{"name": fmt.Sprintf("Exhibitor %d", i),
			"relationships": map[string]any{"linkedEventIds": []any{event(i)}}})
	case runmerge.CollectionSponsors:
		exhibitors := bt.ids[runmerge.CollectionExhibitors]
		return body(map[string]any{"name": fmt.Sprintf("Sponsor %d", i),
			"relationships": map[string]any{"linkedExhibitorIds": []any{exhibitors[i%len(exhibitors)]}}})
	case runmerge.CollectionResources:
		sessions := bt.ids[runmerge.CollectionSessions]
		return body(map[string]any{"name": fmt.Sprintf("Resource %d", i), "resourceType": "Document",
			"url": "https://files.example/r.pdf",
			"relationships": map[string]any{"linkedSessionIds": []any{sessions[i%len(sessions)]},
				"linkedSponsorIds": []any{bt.ids[runmerge.CollectionSponsors][i%2000]}}})
	}
	panic(coll)
}

// openBigTenant makes a new tenant file of about 100,000 records with
// BulkUpsert in batches of 1,000, the write path of the API.
func openBigTenant(tb testing.TB) *bigTenant {
	tb.Helper()
	pool, err := NewPool(PoolConfig{Dir: tb.TempDir(), MaxOpen: 4})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if err := pool.Create(ctx, "big"); err != nil {
		tb.Fatal(err)
	}
	lease, err := pool.Acquire(ctx, "big")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		lease.Release()
		if err := pool.Close(context.Background()); err != nil {
			tb.Errorf("close pool: %v", err)
		}
	})
	bt := &bigTenant{db: lease.DB(), ids: map[string][]string{}}
	admin := &runmerge.Principal{Role: runmerge.RoleAdmin}
	for _, size := range bigTenantSizes {
		c, _ := runmerge.CollectionByName(size.coll)
		for start := 0; start < size.n; start += MaxBulk {
			batch := make([]map[string]any, 0, MaxBulk)
			for i := start; i < start+MaxBulk && i < size.n; i++ {
				batch = append(batch, bt.bigRecord(size.coll, i))
			}
			recs, err := bt.db.BulkUpsert(ctx, admin, c, batch, nil, nil)
			if err != nil {
				tb.Fatalf("bulk %s at %d: %v", size.coll, start, err)
			}
			for _, r := range recs {
				bt.ids[size.coll] = append(bt.ids[size.coll], r.ID)
			}
			if size.coll == runmerge.CollectionEvents && bt.bigEvent == "" {
				bt.bigEvent = recs[0].ID
			}
		}
		bt.records += size.n
	}
	return bt
}

// bigTenantWords are words in the names of every record of a collection of
// a big tenant.
var bigTenantWords = map[string]string{
	runmerge.CollectionEvents: "summit", runmerge.CollectionPeople: "person",
	runmerge.CollectionSessions: "session", runmerge.CollectionExhibitors: "exhibitor",
	runmerge.CollectionSponsors: "sponsor", runmerge.CollectionTickets: "pass",
	runmerge.CollectionResources: "resource",
}

// bigTenantLinks are the links bigRecord makes, each a collection and the
// collection of the records it names; a linked*Id filter finds records on
// either side of them.
var bigTenantLinks = map[[2]string]bool{}

func init() {
	for _, l := range [][2]string{
		{"people", "events"}, {"sessions", "events"}, {"tickets", "events"}, {"tickets", "people"},
		{"exhibitors", "events"}, {"sponsors", "exhibitors"}, {"resources", "sessions"},
		{"resources", "sponsors"},
	} {
		bigTenantLinks[l] = true
		bigTenantLinks[[2]string{l[1], l[0]}] = true
	}
}

// filterCase is one documented list filter on one collection.
type filterCase struct {
	name  string
	index string // an index (or table) the plan must search; a|b for either
	f     RecordFilter
}

// documentedFilters returns each documented list filter of every
// collection, alone, with values that select records of bt.
func (bt *bigTenant) documentedFilters() []filterCase {
	str := func(s string) *string { return &s }
	var out []filterCase
	for _, c := range runmerge.Collections() {
		ids := bt.ids[c.Name]
		add := func(name, index string, f RecordFilter) {
			f.Collection = c
			f.Limit = 50
			out = append(out, filterCase{c.Name + " " + name, index, f})
		}
		add("no filter", "records_live", RecordFilter{})
		add("includeDeleted", "records_all", RecordFilter{IncludeDeleted: true})
		add("sourceRawData", "records_live", RecordFilter{WithRaw: true})
		add("sourceId", "records_source", RecordFilter{SourceID: str("src3")})
		add("remoteId", "records_remote", RecordFilter{RemoteID: str(fmt.Sprintf("%s-%d", c.Name, len(ids)/2))})
		if f, ok := c.Field("status"); ok && f.Filterable {
			v := map[string]string{runmerge.CollectionPeople: "Inactive", runmerge.CollectionTickets: "void"}[c.Name]
			if v == "" {
				v = "Completed"
			}
			add("status", "records_status", RecordFilter{Status: str(v)})
		}
		if f, ok := c.Field("type"); ok && f.Filterable {
			add("type", "records_type", RecordFilter{Type: str("Speaker")})
		}
		for _, key := range runmerge.RelationshipKeys() {
			other := runmerge.RelationshipCollection(key)
			// A seventh of the way in, every link of bigRecord has records
			// on both sides.
			target := bt.ids[other][len(bt.ids[other])/7]
			if other == runmerge.CollectionEvents && c.Name == runmerge.CollectionPeople {
				target = bt.bigEvent
			}
			add("linked "+other, "links", RecordFilter{Links: []LinkFilter{{Collection: other, ID: target}}})
		}
		word := bigTenantWords[c.Name]
		rare := `"` + word + `"* "12"*`
		switch c.Name {
		case runmerge.CollectionPeople:
			rare = `"grace"* "person1"*`
		case runmerge.CollectionTickets:
			rare = `"day"* "pass"*`
		}
		// A search that selects few records runs first, and the list looks
		// its records up by position; a broad one is read in change order.
		add("q", "records_fts|(seq=?)", RecordFilter{Query: rare})
		add("q common word", "records_fts|(seq=?)", RecordFilter{Query: `"` + word + `"*`})
	}
	return out
}

var fullScan = regexp.MustCompile(`\bSCAN (records|r)\b`)

// TestListPlansUseIndexes builds a tenant of 100,000 records and asks
// SQLite, with EXPLAIN QUERY PLAN, how it runs the query of each documented
// list filter, alone, from the first page and from a cursor deep in the
// list: none may scan the records table, and each must search the index
// that serves its filter.
func TestListPlansUseIndexes(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("builds a tenant of 100,000 records, 20 s or more; too slow for -short and -race")
	}
	start := time.Now()
	bt := openBigTenant(t)
	t.Logf("built %d records in %v", bt.records, time.Since(start))
	ctx := context.Background()
	admin := &runmerge.Principal{Role: runmerge.RoleAdmin}

	var midSeq int64
	if err := bt.db.r.QueryRow(`SELECT seq FROM records ORDER BY seq LIMIT 1 OFFSET 50000`).Scan(&midSeq); err != nil {
		t.Fatal(err)
	}

	for _, fc := range bt.documentedFilters() {
		// Each filter also with includeDeleted=true, as sync clients list.
		for _, after := range []int64{0, midSeq} {
			for _, deleted := range []bool{false, true} {
				f, index, name := fc.f, fc.index, fc.name
				if deleted && !f.IncludeDeleted {
					f.IncludeDeleted = true
					name += " includeDeleted"
					if index == "records_live" {
						index = "records_all"
					}
				}
				lp, err := bt.db.narrowFilter(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				query, args := listQuery(admin, f, after, lp)
				plan := explain(t, bt, query, args...)
				if fullScan.MatchString(plan) {
					t.Errorf("%s, after %d: a full scan of records:\n%s", name, after, plan)
				}
				if !slices.ContainsFunc(strings.Split(index, "|"), func(ix string) bool {
					return strings.Contains(plan, ix)
				}) {
					t.Errorf("%s, after %d: the plan does not use %s:\n%s", name, after, index, plan)
				}
			}
		}
		// The filter must also select something where the data has
		// matches, or the plan proves little.
		list, _, err := bt.db.ListRecords(ctx, admin, fc.f)
		if err != nil {
			t.Fatalf("%s: %v", fc.name, err)
		}
		linked := len(fc.f.Links) == 1 && bigTenantLinks[[2]string{fc.f.Collection.Name, fc.f.Links[0].Collection}]
		if len(list) == 0 && (len(fc.f.Links) == 0 || linked) {
			t.Errorf("%s selects no record of the big tenant", fc.name)
		}
	}

	plan := explain(t, bt, updatedBeforeQuery, formatTime(time.Now()))
	if fullScan.MatchString(plan) || !strings.Contains(plan, "records_updated") {
		t.Errorf("updatedAfter: the seek does not use records_updated:\n%s", plan)
	}
	if strings.Contains(plan, "TEMP B-TREE") {
		t.Errorf("updatedAfter: the seek sorts:\n%s", plan)
	}
}

// explain returns SQLite's plan for query, one step a line.
func explain(tb testing.TB, bt *bigTenant, query string, args ...any) string {
	tb.Helper()
	rows, err := bt.db.r.Query("EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		tb.Fatalf("explain %s: %v", query, err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			tb.Fatal(err)
		}
		b.WriteString(detail + "\n")
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return b.String()
}

// TestSearchIndexRebuiltByMigration makes a tenant file as schema version 1
// left it, its search text keyed by row id, and checks that opening it
// migrates the index so that every record is found again by its names and
// e-mail, and by nothing it does not hold.
func TestSearchIndexRebuiltByMigration(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	admin := &runmerge.Principal{Role: runmerge.RoleAdmin}
	pool, err := NewPool(PoolConfig{Dir: dir, MaxOpen: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Create(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	lease, err := pool.Acquire(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string]map[string]any{
		runmerge.CollectionPeople: {"firstName": "Grace", "lastName": "Hopper", "email": "grace@navy.example"},
		runmerge.CollectionEvents: {"name": "Compiler Summit", "startDate": "2026-05-01T09:00:00Z",
			"endDate": "2026-05-01T10:00:00Z"},
		runmerge.CollectionTickets:  {"ticketType": "Backstage", "price": 1, "currency": "EUR", "status": "ok"},
		runmerge.CollectionSponsors: {"name": "Cobol Foundation"},
	}
	ids := map[string]string{}
	for coll, body := range bodies {
		c, _ := runmerge.CollectionByName(coll)
		r, err := lease.DB().CreateRecord(ctx, admin, c, body, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[coll] = r.ID
	}
	// A deleted record must not come back into the index.
	c, _ := runmerge.CollectionByName(runmerge.CollectionPeople)
	gone, err := lease.DB().CreateRecord(ctx, admin, c, map[string]any{"firstName": "Ada",
		"lastName": "Lovelace", "email": "ada@example.com"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.DB().DeleteRecord(ctx, admin, c, gone.ID, nil); err != nil {
		t.Fatal(err)
	}
	lease.Release()
	if err := pool.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// What version 1 wrote: the index keyed by rid, with unrelated words.
	db, err := connect(filepath.Join(dir, "old.db"), Options{}.withDefaults(), modeWrite)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO records_fts (records_fts) VALUES ('delete-all')`,
		`INSERT INTO records_fts (rowid, text) SELECT rid, 'stale words' FROM records`,
		`PRAGMA user_version = 1`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	pool, err = NewPool(PoolConfig{Dir: dir, MaxOpen: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close(ctx)
	lease, err = pool.Acquire(ctx, "old")
	if err != nil {
		t.Fatalf("open a version 1 file: %v", err)
	}
	defer lease.Release()
	for coll, words := range map[string][]string{
		runmerge.CollectionPeople:   {"grace", "hopper", "navy", "grace@navy.example"},
		runmerge.CollectionEvents:   {"compiler", "summit"},
		runmerge.CollectionTickets:  {"backstage"},
		runmerge.CollectionSponsors: {"cobol", "foundation"},
	} {
		c, _ := runmerge.CollectionByName(coll)
		for _, w := range append(words, "stale", "ada") {
			q := `"` + strings.Join(strings.FieldsFunc(w, func(r rune) bool { return r == '@' || r == '.' }), `"* "`) + `"*`
			list, _, err := lease.DB().ListRecords(ctx, admin, RecordFilter{Collection: c, Query: q, Limit: 10})
			if err != nil {
				t.Fatalf("%s q=%s: %v", coll, q, err)
			}
			found := len(list) == 1 && list[0].ID == ids[coll]
			if want := w != "stale" && w != "ada"; found != want || (!want && len(list) > 0) {
				t.Errorf("%s q=%s after migration: %d records, want found=%v", coll, q, len(list), want)
			}
		}
	}
}

// TestTombstonePairFreeAfterMigration makes a tenant file as schema version
// 2 left it, where a sourceId and remoteId pair was unique among all
// records, with a tombstone of that version (its columns cleared), and
// checks that after the migration the pair of a record deleted now is free
// for a new record, while both tombstones stay listed.
func TestTombstonePairFreeAfterMigration(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	admin := &runmerge.Principal{Role: runmerge.RoleAdmin}
	c, _ := runmerge.CollectionByName(runmerge.CollectionPeople)
	person := func(remoteID string) map[string]any {
		return map[string]any{"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com",
			"sourceId": "crm", "remoteId": remoteID}
	}
	pool, err := NewPool(PoolConfig{Dir: dir, MaxOpen: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Create(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	lease, err := pool.Acquire(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	old, err := lease.DB().CreateRecord(ctx, admin, c, person("1"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.DB().DeleteRecord(ctx, admin, c, old.ID, nil); err != nil {
		t.Fatal(err)
	}
	live, err := lease.DB().CreateRecord(ctx, admin, c, person("2"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	lease.Release()
	if err := pool.Close(ctx); err != nil {
		t.Fatal(err)
	}

	db, err := connect(filepath.Join(dir, "old.db"), Options{}.withDefaults(), modeWrite)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE records SET source_id = NULL, remote_id = NULL WHERE deleted_at IS NOT NULL`,
		`DROP INDEX records_source_remote`,
		`CREATE UNIQUE INDEX records_source_remote ON records (source_id, remote_id)
			WHERE source_id IS NOT NULL AND remote_id IS NOT NULL`,
		`PRAGMA user_version = 2`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	pool, err = NewPool(PoolConfig{Dir: dir, MaxOpen: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close(ctx)
	lease, err = pool.Acquire(ctx, "old")
	if err != nil {
		t.Fatalf("open a version 2 file: %v", err)
	}
	defer lease.Release()
	tdb := lease.DB()
	if _, err := tdb.CreateRecord(ctx, admin, c, person("1"), nil, nil); err != nil {
		t.Errorf("the pair of a version 2 tombstone: %v", err)
	}
	if err := tdb.DeleteRecord(ctx, admin, c, live.ID, nil); err != nil {
		t.Fatal(err)
	}
	again, err := tdb.BulkUpsert(ctx, admin, c, []map[string]any{person("2")}, nil, nil)
	if err != nil || again[0].ID == live.ID || again[0].Version != 1 {
		t.Fatalf("bulk over the pair of a record deleted after the migration: %v", err)
	}
	src := "crm"
	list, _, err := tdb.ListRecords(ctx, admin, RecordFilter{Collection: c, SourceID: &src,
		IncludeDeleted: true, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range list {
		got = append(got, fmt.Sprintf("%s deleted=%v", r.ID, r.Deleted()))
	}
	// The version 2 tombstone lost its sourceId; the new one keeps it.
	if len(list) != 3 || list[1].ID != live.ID || !list[1].Deleted() || list[2].ID != again[0].ID {
		t.Errorf("sourceId=crm with includeDeleted: %v", got)
	}
	all, _, err := tdb.ListRecords(ctx, admin, RecordFilter{Collection: c, IncludeDeleted: true, Limit: 10})
	if err != nil || len(all) != 4 || all[0].ID != old.ID || !all[0].Deleted() {
		t.Errorf("every person with includeDeleted: %d records, %v", len(all), err)
	}
}

// TestBulkUpsertWrites checks what one bulk upsert stores: a pair that
// comes twice updates the record the first of them created, and a stored
// record found by its pair is updated; the links, search text and change
// events of each record are as its last write in the bulk left them, and
// a refused bulk stores nothing.
func TestBulkUpsertWrites(t *testing.T) {
	db := benchTenantDB(t)
	ctx := context.Background()
	admin := &runmerge.Principal{Role: runmerge.RoleAdmin}
	events, _ := runmerge.CollectionByName(runmerge.CollectionEvents)
	people, _ := runmerge.CollectionByName(runmerge.CollectionPeople)
	var eventIDs []string
	for i := range 3 {
		e, err := db.CreateRecord(ctx, admin, events, map[string]any{"name": fmt.Sprintf("Expo %d", i),
			"startDate": "2026-05-01T09:00:00Z", "endDate": "2026-05-01T10:00:00Z"}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		eventIDs = append(eventIDs, e.ID)
	}
	person := func(remoteID, name, event string) map[string]any {
		return map[string]any{"firstName": name, "lastName": "Lovelace", "email": "ada@example.com",
			"sourceId": "crm", "remoteId": remoteID,
			"relationships": map[string]any{"linkedEventIds": []any{event}}}
	}
	stored, err := db.CreateRecord(ctx, admin, people, person("s", "Stored", eventIDs[0]), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	last, _, err := db.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}

	out, err := db.BulkUpsert(ctx, admin, people, []map[string]any{
		person("a", "Alpha", eventIDs[0]),
		person("s", "Sigma", eventIDs[1]),
		person("a", "Again", eventIDs[1]),
		{"firstName": "Nopair", "lastName": "X", "email": "x@example.com"},
		person("a", "Third", eventIDs[2]),
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		id      string
		version int64
		name    string
	}
	wants := []want{{out[0].ID, 1, "Alpha"}, {stored.ID, 2, "Sigma"}, {out[0].ID, 2, "Again"},
		{out[3].ID, 1, "Nopair"}, {out[0].ID, 3, "Third"}}
	for i, w := range wants {
		if out[i].ID != w.id || out[i].Version != w.version || !strings.Contains(string(out[i].Data), w.name) {
			t.Errorf("record %d: %s version %d %s, want %s version %d %s", i, out[i].ID,
				out[i].Version, out[i].Data, w.id, w.version, w.name)
		}
		if i > 0 && out[i].Seq <= out[i-1].Seq {
			t.Errorf("record %d: position %d after %d", i, out[i].Seq, out[i-1].Seq)
		}
	}
	if out[3].ID == out[0].ID || out[0].ID == stored.ID {
		t.Errorf("ids %s %s %s", out[0].ID, out[3].ID, stored.ID)
	}

	// Reads, lists by link and search see each record as its last write.
	for id, w := range map[string]want{out[0].ID: {version: 3, name: "Third"}, stored.ID: {version: 2, name: "Sigma"}} {
		r, err := db.GetRecord(ctx, admin, people, id, false)
		if err != nil || r.Version != w.version || !strings.Contains(string(r.Data), w.name) {
			t.Errorf("read %s: %v %v", id, r, err)
		}
	}
	list := func(f RecordFilter) []string {
		t.Helper()
		f.Collection, f.Limit = people, 50
		recs, _, err := db.ListRecords(ctx, admin, f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
		return ids
	}
	for i, wantIDs := range [][]string{{}, {stored.ID}, {out[0].ID}} {
		if got := list(RecordFilter{Links: []LinkFilter{{runmerge.CollectionEvents, eventIDs[i]}}}); !slices.Equal(got, wantIDs) && len(got)+len(wantIDs) > 0 {
			t.Errorf("people linked to event %d: %v, want %v", i, got, wantIDs)
		}
	}
	for q, wantIDs := range map[string][]string{`"third"*`: {out[0].ID}, `"sigma"*`: {stored.ID},
		`"alpha"*`: nil, `"again"*`: nil, `"stored"*`: nil, `"nopair"*`: {out[3].ID}} {
		if got := list(RecordFilter{Query: q}); !slices.Equal(got, wantIDs) {
			t.Errorf("q=%s: %v, want %v", q, got, wantIDs)
		}
	}

	// The index holds no stale text either, which no list would show.
	var stale int
	if err := db.r.QueryRow(`SELECT count(*) FROM records_fts WHERE records_fts MATCH ?`,
		`"stored"* OR "alpha"* OR "again"*`).Scan(&stale); err != nil || stale != 0 {
		t.Errorf("%d stale rows of search text (%v)", stale, err)
	}

	// One change event a record of the bulk, in its order, each showing
	// the record as that write left it.
	changes, err := db.ChangesAfter(ctx, last, 100)
	if err != nil {
		t.Fatal(err)
	}
	types := []string{"person.created", "person.updated", "person.updated", "person.created", "person.updated"}
	if len(changes) != len(types) {
		t.Fatalf("%d change events, want %d", len(changes), len(types))
	}
	for i, ch := range changes {
		var rec struct {
			ID        string `json:"id"`
			Version   int64  `json:"version"`
			FirstName string `json:"firstName"`
		}
		if err := json.Unmarshal(ch.Data, &rec); err != nil {
			t.Fatal(err)
		}
		if ch.Type != types[i] || rec.ID != wants[i].id || rec.Version != wants[i].version ||
			rec.FirstName != wants[i].name {
			t.Errorf("change %d: %s %s", i, ch.Type, ch.Data)
		}
		if wantEvents := out[i].EventIDs; !slices.Equal(ch.EventIDs, wantEvents) && len(wantEvents) > 0 {
			t.Errorf("change %d: events %v, want %v", i, ch.EventIDs, wantEvents)
		}
	}

	// A refused bulk stores nothing, wherever the refused record is.
	before, _, err := db.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string]any{
		person("b", "Bad", "no-such-event"),
		{"firstName": "Bad", "lastName": "X", "email": "x@example.com", "sourceId": "crm",
			"remoteId": "s", "relationships": map[string]any{"linkedSessionIds": []any{eventIDs[0]}}},
	} {
		_, err := db.BulkUpsert(ctx, admin, people, []map[string]any{person("n", "New", eventIDs[0]),
			person("s", "Changed", eventIDs[0]), bad}, nil, nil)
		fields := runmerge.ErrorFields(err)
		if runmerge.ErrorCode(err) != runmerge.EINVALID || len(fields) != 1 ||
			!strings.HasPrefix(fields[0].Pointer, "/records/2/relationships/") {
			t.Errorf("a bulk with a link to nothing: %v %v", err, fields)
		}
	}
	after, _, err := db.LastChange(ctx)
	if err != nil || after != before {
		t.Errorf("refused bulks wrote change events: %v → %v, %v", before, after, err)
	}
	if got := list(RecordFilter{Query: `"new"*`}); len(got) != 0 {
		t.Errorf("a refused bulk stored %v", got)
	}

	// A pair of a record of another collection is a conflict that points
	// at the record.
	if _, err := db.CreateRecord(ctx, admin, events, map[string]any{"name": "E", "sourceId": "crm",
		"remoteId": "e", "startDate": "2026-05-01T09:00:00Z", "endDate": "2026-05-01T10:00:00Z"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	_, err = db.BulkUpsert(ctx, admin, people, []map[string]any{person("z", "Z", eventIDs[0]),
		person("e", "E", eventIDs[0])}, nil, nil)
	if fields := runmerge.ErrorFields(err); runmerge.ErrorCode(err) != runmerge.ECONFLICT ||
		len(fields) != 1 || fields[0].Pointer != "/records/1/remoteId" {
		t.Errorf("a pair of an event: %v %v", err, fields)
	}
}

// TestBulkPlansUseIndexes checks, with EXPLAIN QUERY PLAN, that the
// lookups and the update of a bulk upsert seek an index for each record
// and never scan records or links.
func TestBulkPlansUseIndexes(t *testing.T) {
	db := benchTenantDB(t)
	updateArgs := make([]any, updateRecords.width*rowsPerStatement)
	for i := range updateArgs {
		updateArgs[i] = "x"
	}
	for _, tc := range []struct {
		name, query, index string
		args               []any
	}{
		{"by source", findBySourceQuery, "records_source_remote (source_id=? AND remote_id=?)",
			[]any{true, `[["a","b"]]`}},
		{"links to events", storedEventIDsQuery, "links_owner (owner_id=? AND a_id=? AND b_coll=?)",
			[]any{`["a"]`}},
		{"referenced", findReferencedQuery, "sqlite_autoindex_records_1 (id=?)", []any{`["a"]`}},
		{"update", updateRecords.many, "sqlite_autoindex_records_1 (id=?)", updateArgs},
	} {
		bt := &bigTenant{db: db}
		plan := explain(t, bt, tc.query, tc.args...)
		if regexp.MustCompile(`\bSCAN (records|r|l|links)\b`).MatchString(plan) || !strings.Contains(plan, tc.index) {
			t.Errorf("%s: the plan does not seek %s:\n%s", tc.name, tc.index, plan)
		}
	}
}
