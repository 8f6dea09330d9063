package tenantstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/runmerge/runmerge"
)

// MaxBulk is the most records one bulk upsert may carry.
const MaxBulk = 1000

// RecordFilter selects a page of a collection's records, in change order.
// With IncludeDeleted, a tombstone matches every filter but Query that its
// record matched when it was deleted; Query never matches a tombstone.
type RecordFilter struct {
	Collection     *runmerge.Collection
	AfterSeq       int64      // the cursor: only records after this position
	UpdatedAfter   *time.Time // only records changed after this time
	SourceID       *string
	RemoteID       *string
	Status         *string
	Type           *string
	Links          []LinkFilter // every link must hold
	Query          string       // full-text search over names and e-mail
	IncludeDeleted bool         // tombstones too
	WithRaw        bool         // load sourceRawData
	Limit          int
}

// LinkFilter keeps records linked, from either side, to record ID of
// collection Collection.
type LinkFilter struct {
	Collection string
	ID         string
}

// Idempotency identifies a POST sent with an Idempotency-Key: the API key
// that sent it, the client's key, and a hash of the request.
type Idempotency struct {
	KeyID       string
	Key         string
	RequestHash string
}

// SavedResponse is the first response to an idempotent request.
type SavedResponse struct {
	RequestHash string
	Status      int
	Headers     map[string]string
	Body        []byte
}

const recordColumns = `rid, id, seq, data, version, created_at, updated_at, deleted_at`

// updatedBeforeQuery finds the position of the last record changed before a
// time. Rows in (updated_at, seq) order are in seq order, so the last index
// entry before the time holds the largest seq: one seek, where max(seq)
// would read every entry before the time.
const updatedBeforeQuery = `SELECT seq FROM records WHERE updated_at < ?
	ORDER BY updated_at DESC, seq DESC LIMIT 1`

// ListRecords returns up to f.Limit records of f.Collection in change order,
// and whether more follow. For an event manager (p with RoleEventManager)
// only the records within its reach are listed.
func (db *DB) ListRecords(
	ctx context.Context, p *runmerge.Principal, f RecordFilter,
) ([]*runmerge.Record, bool, error) {
	after := f.AfterSeq
	if f.UpdatedAfter != nil {
		// updated_at never decreases as seq grows, so "changed at or after
		// T" is "positioned after the last record changed before T". T
		// itself is included: times have millisecond precision, and a write
		// that commits after a client's read may carry the same time as the
		// last record the client saw, so a client that resumes from that
		// time would miss it if T were left out. It sees that one twice
		// instead, as API.md allows.
		var s sql.NullInt64
		err := cachedDB{db.rstmts}.QueryRowContext(ctx, updatedBeforeQuery,
			formatTime(*f.UpdatedAfter)).Scan(&s)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, false, fmt.Errorf("list %s: %w", f.Collection.Name, err)
		}
		after = max(after, s.Int64)
	}

	plan, err := db.narrowFilter(ctx, f)
	if err != nil {
		return nil, false, fmt.Errorf("list %s: %w", f.Collection.Name, err)
	}
	query, args := listQuery(p, f, after, plan)

	rows, err := cachedDB{db.rstmts}.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, false, fmt.Errorf("list %s: %w", f.Collection.Name, err)
	}
	defer rows.Close()
	var list []*runmerge.Record
	for rows.Next() {
		r, err := scanRecord(rows, f.Collection.Name, true)
		if err != nil {
			return nil, false, fmt.Errorf("list %s: %w", f.Collection.Name, err)
		}
		r.TenantID = db.id
		list = append(list, r)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("list %s: %w", f.Collection.Name, err)
	}
	more := len(list) > f.Limit
	if more {
		list = list[:f.Limit]
	}
	return list, more, nil
}

// smallSet is the most records a link or search filter may select for a
// list to fetch them one by one and sort them. A filter that selects more
// is tested on each record as the list walks the collection in change
// order, which stops at the end of the page: with many matches, the end
// comes soon.
const smallSet = 1000

// noDriver is a listPlan's driver when no filter selects few records.
const noDriver = -1

// listPlan says how a list query finds its records: driver is the filter
// that selects at most smallSet records, i for RecordFilter.Links[i] and
// len(Links) for the search, or noDriver. hits holds the records the search
// selects, as a JSON array of their seqs, when it is the driver, so that
// the search runs once.
type listPlan struct {
	driver int
	hits   string
}

// narrowFilter finds which link or search filter of f selects at most
// smallSet records, so that its list is best driven by that set.
func (db *DB) narrowFilter(ctx context.Context, f RecordFilter) (listPlan, error) {
	q := cachedDB{db.rstmts}
	for i, l := range f.Links {
		var n int
		err := q.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM links
			WHERE a_id = ? AND b_coll = ? LIMIT ?)`, l.ID, f.Collection.Name, smallSet+1).Scan(&n)
		if err != nil {
			return listPlan{driver: noDriver}, err
		} else if n <= smallSet {
			return listPlan{driver: i}, nil
		}
	}
	if f.Query != "" {
		var n int
		var hits string
		err := q.QueryRowContext(ctx, `SELECT count(*), json_group_array(rowid) FROM (SELECT rowid
			FROM records_fts WHERE records_fts MATCH ? LIMIT ?)`, f.Query, smallSet+1).Scan(&n, &hits)
		if err != nil {
			return listPlan{driver: noDriver}, err
		} else if n <= smallSet {
			return listPlan{driver: len(f.Links), hits: hits}, nil
		}
	}
	return listPlan{driver: noDriver}, nil
}

// listQuery builds the query of a page of ListRecords: the records of
// f.Collection positioned after seq after that pass f's filters and p's
// reach, in change order, one more than f.Limit. plan is what narrowFilter
// says: the query fetches the few records of its driver and sorts them, or
// with noDriver it walks the collection in change order and tests each
// record.
func listQuery(p *runmerge.Principal, f RecordFilter, after int64, plan listPlan) (string, []any) {
	driver := plan.driver
	var b strings.Builder
	args := []any{f.Collection.Name, after}
	b.WriteString(`SELECT ` + recordColumns)
	if f.WithRaw {
		b.WriteString(`, raw_data`)
	} else {
		b.WriteString(`, NULL`)
	}
	// A broad search is read from the full-text index in change order (its
	// rowids are positions in it) and stops at the end of the page.
	streamSearch := f.Query != "" && driver == noDriver
	switch {
	case streamSearch:
		b.WriteString(` FROM records_fts JOIN records r ON r.seq = records_fts.rowid
			WHERE records_fts MATCH ? AND records_fts.rowid > ? AND r.collection = ?`)
		args = []any{f.Query, after, f.Collection.Name}
	case driver != noDriver:
		// The unary + keeps SQLite from walking an index of the collection
		// in change order, which it would pick to spare the sort.
		b.WriteString(` FROM records r WHERE +collection = ? AND +seq > ?`)
	default:
		b.WriteString(` FROM records r WHERE collection = ? AND seq > ?`)
	}
	// A tombstone keeps the filter columns and the links to it that the
	// record had, so that a filtered sync learns of the deletion; only its
	// search text is gone (see recordTx.delete).
	if !f.IncludeDeleted {
		b.WriteString(` AND deleted_at IS NULL`)
	}
	for _, c := range []struct {
		col string
		v   *string
	}{{"source_id", f.SourceID}, {"remote_id", f.RemoteID}, {"status", f.Status}, {"type", f.Type}} {
		if c.v != nil {
			b.WriteString(` AND ` + c.col + ` = ?`)
			args = append(args, *c.v)
		}
	}
	for i, l := range f.Links {
		if i == driver {
			b.WriteString(` AND id IN (SELECT b_id FROM links WHERE a_id = ? AND b_coll = ?)`)
		} else {
			// One index seek per record walked, rather than reading every
			// link first.
			b.WriteString(` AND EXISTS (SELECT 1 FROM links
				WHERE a_id = ? AND b_coll = ? AND b_id = r.id)`)
		}
		args = append(args, l.ID, f.Collection.Name)
	}
	if f.Query != "" && !streamSearch {
		if driver == len(f.Links) {
			b.WriteString(` AND seq IN (SELECT value FROM json_each(?))`)
			args = append(args, plan.hits)
		} else {
			// Not the driver: a test of each record fetched.
			b.WriteString(` AND +seq IN (SELECT rowid FROM records_fts WHERE records_fts MATCH ?)`)
			args = append(args, f.Query)
		}
	}
	if p.Role == runmerge.RoleEventManager {
		scope, sargs := scopeClause(f.Collection.Name, p.EventIDs)
		b.WriteString(scope)
		args = append(args, sargs...)
	}
	if streamSearch {
		b.WriteString(` ORDER BY records_fts.rowid LIMIT ?`)
	} else {
		b.WriteString(` ORDER BY seq LIMIT ?`)
	}
	args = append(args, f.Limit+1)
	return b.String(), args
}

// scopeClause limits a list to an event manager's reach: its events, and
// records that link themselves to one of them.
func scopeClause(collection string, eventIDs []string) (string, []any) {
	if len(eventIDs) == 0 {
		return ` AND 0`, nil
	}
	marks := strings.TrimSuffix(strings.Repeat("?,", len(eventIDs)), ",")
	args := make([]any, 0, len(eventIDs)+1)
	for _, id := range eventIDs {
		args = append(args, id)
	}
	if collection == runmerge.CollectionEvents {
		return ` AND id IN (` + marks + `)`, args
	}
	args = append(args, collection)
	return ` AND id IN (SELECT b_id FROM links WHERE a_id IN (` + marks + `) AND b_coll = ? AND owner_id = b_id)`, args
}

type scanner interface{ Scan(...any) error }

func scanRecord(s scanner, collection string, withRawColumn bool) (*runmerge.Record, error) {
	r := &runmerge.Record{Collection: collection}
	var rid int64
	var data, created, updated string
	var deleted, raw sql.NullString
	dest := []any{&rid, &r.ID, &r.Seq, &data, &r.Version, &created, &updated, &deleted}
	if withRawColumn {
		dest = append(dest, &raw)
	}
	if err := s.Scan(dest...); err != nil {
		return nil, err
	}
	r.Data = json.RawMessage(data)
	r.CreatedAt, r.UpdatedAt = parseTime(created), parseTime(updated)
	r.DeletedAt = parseTimePtr(deleted)
	if raw.Valid {
		r.RawData = json.RawMessage(raw.String)
	}
	return r, nil
}

// GetRecord returns record id of collection c, if it is live and within p's
// reach; otherwise an ENOTFOUND error.
func (db *DB) GetRecord(
	ctx context.Context, p *runmerge.Principal, c *runmerge.Collection, id string, withRaw bool,
) (*runmerge.Record, error) {
	q := cachedDB{db.rstmts}
	r, err := getRecordRow(ctx, q, db.id, c.Name, id, withRaw)
	if err != nil {
		return nil, err
	}
	// Only an event manager's reach depends on the events a record links
	// to; for other keys the query that finds them would be wasted.
	if p != nil && p.Role == runmerge.RoleEventManager {
		if err := loadEventIDs(ctx, q, r); err != nil {
			return nil, err
		}
	}
	if err := authorize(p, runmerge.ActionRecordRead, target(db.id, c, r)); err != nil {
		return nil, err
	}
	return r, nil
}

// authorize asks the policy, and answers for a record outside p's reach
// exactly as for one that does not exist.
func authorize(p *runmerge.Principal, action runmerge.Action, t runmerge.Target) error {
	err := runmerge.Authorize(p, action, t)
	if runmerge.ErrorCode(err) == runmerge.ENOTFOUND {
		return errRecordNotFound
	}
	return err
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

var errRecordNotFound = runmerge.Errorf(runmerge.ENOTFOUND, "record not found")

// getRecord loads a live record with the events it links to.
func getRecord(
	ctx context.Context, q queryer, tenantID, collection, id string, withRaw bool,
) (*runmerge.Record, error) {
	r, err := getRecordRow(ctx, q, tenantID, collection, id, withRaw)
	if err != nil {
		return nil, err
	}
	return r, loadEventIDs(ctx, q, r)
}

// getRecordRow loads a live record without the events it links to.
func getRecordRow(
	ctx context.Context, q queryer, tenantID, collection, id string, withRaw bool,
) (*runmerge.Record, error) {
	raw := `NULL`
	if withRaw {
		raw = `raw_data`
	}
	row := q.QueryRowContext(ctx, `SELECT `+recordColumns+`, `+raw+`
		FROM records WHERE id = ? AND collection = ? AND deleted_at IS NULL`, id, collection)
	r, err := scanRecord(row, collection, true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errRecordNotFound
	} else if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", collection, id, err)
	}
	r.TenantID = tenantID
	return r, nil
}

// loadEventIDs sets r.EventIDs: the events r links to, or r itself for an
// event.
func loadEventIDs(ctx context.Context, q queryer, r *runmerge.Record) error {
	if r.Collection == runmerge.CollectionEvents {
		r.EventIDs = []string{r.ID}
		return nil
	}
	rows, err := q.QueryContext(ctx, `SELECT b_id FROM links
		WHERE a_id = ? AND b_coll = 'events' AND owner_id = a_id`, r.ID)
	if err != nil {
		return fmt.Errorf("read %s %s links: %w", r.Collection, r.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return err
		}
		r.EventIDs = append(r.EventIDs, e)
	}
	return rows.Err()
}

// target describes record r for the policy.
func target(tenantID string, c *runmerge.Collection, r *runmerge.Record) runmerge.Target {
	return runmerge.Target{TenantID: tenantID, Collection: c.Name, EventIDs: r.EventIDs}
}

// writeTarget describes a write for the policy: record cur (nil for a
// create) of collection c, linking to events before and to d's after.
func writeTarget(
	tenantID string, c *runmerge.Collection, cur *runmerge.Record, before []string, d *draft, id string,
) runmerge.Target {
	t := runmerge.Target{TenantID: tenantID, Collection: c.Name, EventIDs: d.eventIDs(c, id),
		Links: &runmerge.EventLinks{Before: before, After: linkedEvents(c, d.index)}}
	if cur != nil {
		t.EventIDs = cur.EventIDs
	}
	return t
}

// linkedEvents returns the events a record links to: its eventId and
// relationships.linkedEventIds, which for an event are only the latter.
func linkedEvents(c *runmerge.Collection, ix runmerge.Index) []string {
	if c.Name == runmerge.CollectionEvents {
		return ix.Links["linkedEventIds"]
	}
	return ix.EventIDs
}

// draft is a record body checked and split into what storage keeps.
type draft struct {
	doc   map[string]any // client fields without sourceRawData
	raw   any            // sourceRawData, or nil
	index runmerge.Index

	// What encode makes of doc and raw: the stored JSON, as bytes and as
	// text, and the stored sourceRawData, a string, or nil when there is
	// none.
	data    json.RawMessage
	text    string
	rawData any
}

// prepare checks body as a whole record of c: field names, defaults on
// create, and every rule. prefix locates the body in the request.
func prepare(
	c *runmerge.Collection, body map[string]any, prefix string, create bool,
) (*draft, error) {
	if create {
		c.ApplyDefaults(body)
	}
	if err := c.Validate(body, prefix); err != nil {
		return nil, err
	}
	c.NormalizeTimes(body)
	d := &draft{doc: make(map[string]any, len(body)), index: c.Index(body)}
	for k, v := range body {
		if k == "sourceRawData" {
			d.raw = v
			continue
		}
		if v != nil {
			d.doc[k] = v
		}
	}
	return d, nil
}

// eventIDs returns the events a draft of collection c links to, for the
// policy; id is the record's own id.
func (d *draft) eventIDs(c *runmerge.Collection, id string) []string {
	if c.Name == runmerge.CollectionEvents {
		return []string{id}
	}
	return d.index.EventIDs
}

// CreateRecord checks body and stores it as a new record of c, with its
// change event, in one transaction. With idem set, the response is saved
// in the same transaction for replays.
func (db *DB) CreateRecord(
	ctx context.Context, p *runmerge.Principal, c *runmerge.Collection, body map[string]any, idem *Idempotency, render func(*runmerge.Record) SavedResponse,
) (*runmerge.Record, error) {
	if err := c.CheckBody(body, ""); err != nil {
		return nil, err
	}
	d, err := prepare(c, body, "", true)
	if err != nil {
		return nil, err
	}
	id := uuid.Must(uuid.NewV7()).String()
	if err := authorize(p, runmerge.ActionRecordCreate, writeTarget(db.id, c, nil, nil, d, id)); err != nil {
		return nil, err
	}
	// Encoded here rather than in insert: the tenant's one writer is the
	// bottleneck of concurrent creates, and this work needs no transaction.
	if err := d.encode(); err != nil {
		return nil, err
	}

	var rec *runmerge.Record
	err = db.Write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		w := db.recordTx(tx)
		if err := w.checkLinks(ctx, d, ""); err != nil {
			return err
		}
		r, err := w.insert(ctx, c, id, d)
		if err != nil {
			return err
		}
		if idem != nil {
			if err := saveResponse(ctx, w.tx, idem, render(r)); err != nil {
				return err
			}
		}
		rec = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	db.changed(c.Name)
	return rec, nil
}

// UpdateRecord applies an RFC 7396 merge patch to record id of c. With
// ifMatch set, the record's version must equal it (EPRECONDITION otherwise).
func (db *DB) UpdateRecord(
	ctx context.Context, p *runmerge.Principal, c *runmerge.Collection, id string, patch map[string]any, ifMatch *int64,
) (*runmerge.Record, error) {
	if err := c.CheckBody(patch, ""); err != nil {
		return nil, err
	}
	var rec *runmerge.Record
	err := db.Write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		w := db.recordTx(tx)
		cur, err := getRecord(ctx, w.tx, db.id, c.Name, id, true)
		if err != nil {
			return err
		}
		if err := authorize(p, runmerge.ActionRecordUpdate, target(db.id, c, cur)); err != nil {
			return err
		}
		if ifMatch != nil && *ifMatch != cur.Version {
			return staleVersion(*ifMatch, cur)
		}
		doc, err := currentDocument(cur)
		if err != nil {
			return err
		}
		before := linkedEvents(c, c.Index(doc))
		d, err := prepare(c, runmerge.MergePatch(doc, patch), "", false)
		if err != nil {
			return err
		}
		// Now that the change is known: an event manager may not move the
		// record out of its reach, nor link it to events of others.
		if err := authorize(p, runmerge.ActionRecordUpdate, writeTarget(db.id, c, cur, before, d, id)); err != nil {
			return err
		}
		if err := w.checkLinks(ctx, d, ""); err != nil {
			return err
		}
		rec, err = w.update(ctx, c, cur, d)
		return err
	})
	if err != nil {
		return nil, err
	}
	db.changed(c.Name)
	return rec, nil
}

// staleVersion is the error for an If-Match that names an old version.
func staleVersion(ifMatch int64, cur *runmerge.Record) error {
	return runmerge.Errorf(runmerge.EPRECONDITION,
		"the record has changed since version %d; it is at version %d", ifMatch, cur.Version)
}

// currentDocument decodes a stored record's client fields, sourceRawData
// included, as a merge patch's target.
func currentDocument(r *runmerge.Record) (map[string]any, error) {
	doc, err := decodeDocument(r.Data)
	if err != nil {
		return nil, fmt.Errorf("decode record %s: %w", r.ID, err)
	}
	if len(r.RawData) > 0 {
		raw, err := decodeDocument(r.RawData)
		if err != nil {
			return nil, fmt.Errorf("decode record %s raw data: %w", r.ID, err)
		}
		doc["sourceRawData"] = raw
	}
	return doc, nil
}

func decodeDocument(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if doc == nil {
		doc = map[string]any{}
	}
	return doc, nil
}

// DeleteRecord turns record id of c into a tombstone.
func (db *DB) DeleteRecord(
	ctx context.Context, p *runmerge.Principal, c *runmerge.Collection, id string, ifMatch *int64,
) error {
	err := db.Write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		w := db.recordTx(tx)
		cur, err := getRecord(ctx, w.tx, db.id, c.Name, id, false)
		if err != nil {
			return err
		}
		if err := authorize(p, runmerge.ActionRecordDelete, target(db.id, c, cur)); err != nil {
			return err
		}
		if ifMatch != nil && *ifMatch != cur.Version {
			return staleVersion(*ifMatch, cur)
		}
		return w.delete(ctx, c, cur)
	})
	if err == nil {
		db.changed(c.Name)
	}
	return err
}

// BulkUpsert stores records of c in one transaction, all or nothing: a
// record whose sourceId and remoteId pair exists is replaced, any other is
// created. Errors point into the request, as /records/3/email.
func (db *DB) BulkUpsert(
	ctx context.Context, p *runmerge.Principal, c *runmerge.Collection, bodies []map[string]any, idem *Idempotency, render func([]*runmerge.Record) SavedResponse,
) ([]*runmerge.Record, error) {
	drafts := make([]*draft, len(bodies))
	var fieldErrs []runmerge.FieldError
	var firstErr error
	for i, body := range bodies {
		prefix := "/records/" + strconv.Itoa(i)
		err := c.CheckBody(body, prefix)
		if err == nil {
			drafts[i], err = prepare(c, body, prefix, true)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			fieldErrs = append(fieldErrs, runmerge.ErrorFields(err)...)
		}
	}
	if firstErr != nil {
		return nil, &runmerge.Error{Code: runmerge.ErrorCode(firstErr), Message: runmerge.ErrorMessage(firstErr), Fields: fieldErrs}
	}

	// The documents are encoded here, before the transaction, which holds
	// the tenant's only writer.
	for _, d := range drafts {
		if err := d.encode(); err != nil {
			return nil, err
		}
	}

	var out []*runmerge.Record
	err := db.Write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		w := db.recordTx(tx)
		var err error
		if out, err = w.bulkUpsert(ctx, p, c, drafts); err != nil {
			return err
		}
		if idem != nil {
			return saveResponse(ctx, w.tx, idem, render(out))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	db.changed(c.Name)
	return out, nil
}

// recordTx is the record writes of one transaction.
type recordTx struct {
	tx       sqlRunner
	tenantID string

	// clk is the change clock of the transaction, which the writes that
	// share a commit share too (see txClock).
	clk *txClock

	// known, when not nil, holds the collection of every live record the
	// writes link to, by id, and "" for ids of no live record: a bulk looks
	// them up at once rather than one by one in checkLinks.
	known map[string]string
}

// recordTx returns the record writes of tx, a transaction of db's writer.
func (db *DB) recordTx(tx *sql.Tx) *recordTx {
	return &recordTx{tx: cachedTx{tx, db.wstmts}, tenantID: db.id, clk: &db.clk}
}

// txClock is the change clock as one write transaction sees it: the next
// position in the change order and the time of the last change. The
// transaction's first change reads it from change_seq, and the committer
// writes it back once, just before the commit (flush), so that the
// writes of a shared commit (DB.Write) cost the clock two statements in
// all rather than two each, and a bulk of 1,000 records two, not 2,000.
//
// It is read and written in plain statements rather than one UPDATE ...
// RETURNING: SQLite runs a RETURNING statement under a statement
// savepoint, and a savepoint makes the full-text index flush what it holds
// in memory to disk, which for a bulk of 1,000 records meant 1,000 tiny
// index segments and merges, a quarter of the bulk's time. Record writes
// avoid RETURNING for the same reason, and write several rows in one
// statement only before they write search text (see bulkSearchText).
type txClock struct {
	read   bool
	next   int64
	lastAt string
}

// clock takes the next position in the change order and the time of the
// change, which never goes backwards.
func (w *recordTx) clock(ctx context.Context) (int64, time.Time, error) {
	now, err := w.tick(ctx)
	if err != nil {
		return 0, time.Time{}, err
	}
	seq := w.clk.next
	w.clk.next++
	return seq, now, nil
}

// tick reads the change clock, unless the transaction has, and moves its
// time to now. It returns the time, leaving w.clk.next, the next position,
// to take.
func (w *recordTx) tick(ctx context.Context) (time.Time, error) {
	if !w.clk.read {
		err := w.tx.QueryRowContext(ctx, `SELECT next, last_at FROM change_seq WHERE id = 1`).
			Scan(&w.clk.next, &w.clk.lastAt)
		if err != nil {
			return time.Time{}, fmt.Errorf("read change clock: %w", err)
		}
		w.clk.read = true
	}
	w.clk.lastAt = max(formatTime(runmerge.Now()), w.clk.lastAt) // one format: text order is time order
	return parseTime(w.clk.lastAt), nil
}

// flush writes the change clock back, if the transaction read
// it. The committer calls it after the last write of the transaction.
func (c *txClock) flush(ctx context.Context, tx sqlRunner) error {
	if !c.read {
		return nil
	}
	_, err := tx.ExecContext(ctx, `UPDATE change_seq SET next = ?, last_at = ? WHERE id = 1`,
		c.next, c.lastAt)
	if err != nil {
		return fmt.Errorf("advance change clock: %w", err)
	}
	return nil
}

// checkLinks refuses links to records that do not exist in the tenant, or
// exist in another collection than the link names.
func (w *recordTx) checkLinks(ctx context.Context, d *draft, prefix string) error {
	var errs []runmerge.FieldError
	check := func(pointer, collection, id string) error {
		coll, err := w.collectionOf(ctx, id)
		if err == nil && coll != collection {
			errs = append(errs, runmerge.FieldError{Pointer: pointer, Code: "unknown_reference",
				Detail: "no " + strings.TrimSuffix(collection, "s") + " with this id in the tenant"})
		}
		return err
	}
	if d.index.EventID != "" {
		if err := check(prefix+"/eventId", runmerge.CollectionEvents, d.index.EventID); err != nil {
			return err
		}
	}
	for _, key := range relationshipKeys {
		for i, id := range relationshipIDs(d.doc, key) {
			pointer := prefix + "/relationships/" + key + "/" + strconv.Itoa(i)
			if err := check(pointer, runmerge.RelationshipCollection(key), id); err != nil {
				return err
			}
		}
	}
	if len(errs) > 0 {
		return &runmerge.Error{Code: runmerge.EINVALID, Message: "the body links to records that do not exist", Fields: errs}
	}
	return nil
}

// collectionOf returns the collection of live record id, or "" when there
// is none.
func (w *recordTx) collectionOf(ctx context.Context, id string) (string, error) {
	if w.known != nil {
		return w.known[id], nil
	}
	var coll string
	err := w.tx.QueryRowContext(ctx,
		`SELECT collection FROM records WHERE id = ? AND deleted_at IS NULL`, id).Scan(&coll)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return coll, err
}

// referencedIDs returns the ids d links to: its eventId and the ids of its
// relationships, as sent.
func referencedIDs(d *draft) []string {
	var ids []string
	if d.index.EventID != "" {
		ids = append(ids, d.index.EventID)
	}
	for _, key := range relationshipKeys {
		ids = append(ids, relationshipIDs(d.doc, key)...)
	}
	return ids
}

// relationshipKeys are the keys of a record's relationships object.
var relationshipKeys = runmerge.RelationshipKeys()

// relationshipIDs returns the ids under relationships[key], as sent.
func relationshipIDs(doc map[string]any, key string) []string {
	rel, _ := doc["relationships"].(map[string]any)
	list, _ := rel[key].([]any)
	ids := make([]string, 0, len(list))
	for _, v := range list {
		if s, ok := v.(string); ok {
			ids = append(ids, s)
		}
	}
	return ids
}

func (w *recordTx) insert(
	ctx context.Context, c *runmerge.Collection, id string, d *draft,
) (*runmerge.Record, error) {
	seq, now, err := w.clock(ctx)
	if err != nil {
		return nil, err
	}
	if err := d.encode(); err != nil {
		return nil, err
	}
	data, text, raw := d.data, d.text, d.rawData
	// No RETURNING here or below: see clock.
	_, err = w.tx.ExecContext(ctx, `INSERT INTO records
		(id, collection, seq, source_id, remote_id, status, type, event_id, data, raw_data,
		 version, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
		id, c.Name, seq, nullable(d.index.SourceID), nullable(d.index.RemoteID),
		nullable(d.index.Status), nullable(d.index.Type), nullable(d.index.EventID),
		text, raw, formatTime(now), formatTime(now))
	if isUnique(err) {
		return nil, sourceConflict(d)
	} else if err != nil {
		return nil, wrapErr(err, "insert %s", c.Name)
	}
	r := &runmerge.Record{ID: id, TenantID: w.tenantID, Collection: c.Name, Seq: seq, Version: 1,
		CreatedAt: now, UpdatedAt: now, Data: data, EventIDs: d.eventIDs(c, id)}
	if err := w.index(ctx, c, id, seq, 0, d); err != nil {
		return nil, err
	}
	return r, w.change(ctx, c, r, runmerge.ChangeCreated)
}

func sourceConflict(d *draft) *runmerge.Error {
	return &runmerge.Error{Code: runmerge.ECONFLICT,
		Message: "a record with this sourceId and remoteId already exists in the tenant",
		Fields: []runmerge.FieldError{{Pointer: "/remoteId", Code: "duplicate",
			Detail: "sourceId " + strconv.Quote(d.index.SourceID) + " and remoteId " + strconv.Quote(d.index.RemoteID) + " are taken"}}}
}

func (w *recordTx) update(
	ctx context.Context, c *runmerge.Collection, cur *runmerge.Record, d *draft,
) (*runmerge.Record, error) {
	seq, now, err := w.clock(ctx)
	if err != nil {
		return nil, err
	}
	if err := d.encode(); err != nil {
		return nil, err
	}
	data, text, raw := d.data, d.text, d.rawData
	_, err = w.tx.ExecContext(ctx, `UPDATE records SET seq = ?, source_id = ?, remote_id = ?,
		status = ?, type = ?, event_id = ?, data = ?, raw_data = ?, version = version + 1, updated_at = ?
		WHERE id = ?`,
		seq, nullable(d.index.SourceID), nullable(d.index.RemoteID), nullable(d.index.Status),
		nullable(d.index.Type), nullable(d.index.EventID), text, raw, formatTime(now), cur.ID)
	if isUnique(err) {
		return nil, sourceConflict(d)
	} else if err != nil {
		return nil, wrapErr(err, "update %s %s", c.Name, cur.ID)
	}
	r := &runmerge.Record{ID: cur.ID, TenantID: w.tenantID, Collection: c.Name, Seq: seq,
		Version: cur.Version + 1, CreatedAt: cur.CreatedAt, UpdatedAt: now, Data: data,
		EventIDs: d.eventIDs(c, cur.ID)}
	if err := w.index(ctx, c, cur.ID, seq, cur.Seq, d); err != nil {
		return nil, err
	}
	return r, w.change(ctx, c, r, runmerge.ChangeUpdated)
}

func (w *recordTx) delete(ctx context.Context, c *runmerge.Collection, cur *runmerge.Record) error {
	seq, now, err := w.clock(ctx)
	if err != nil {
		return err
	}
	// The filter columns stay, so that every list filter that selected the
	// record selects its tombstone with includeDeleted=true.
	_, err = w.tx.ExecContext(ctx, `UPDATE records SET seq = ?, data = '{}', raw_data = NULL,
		version = version + 1, updated_at = ?, deleted_at = ?
		WHERE id = ?`, seq, formatTime(now), formatTime(now), cur.ID)
	if err != nil {
		return wrapErr(err, "delete %s %s", c.Name, cur.ID)
	}
	// Of the links the record declared, those from the records it named
	// to it stay, so that a linked*Id filter (and an event manager's
	// reach) still finds the tombstone; those from it to them go, so that
	// a filter by the deleted record's id selects no live record through
	// links that only the deleted record declared, as before tombstones
	// kept links. Links other records declare to it are theirs and stay.
	// The search text goes: q never matches a tombstone, which shows no
	// names.
	if _, err := w.tx.ExecContext(ctx, `DELETE FROM links WHERE a_id = ? AND owner_id = ?`,
		cur.ID, cur.ID); err != nil {
		return wrapErr(err, "unlink %s", cur.ID)
	}
	if _, err := w.tx.ExecContext(ctx, `DELETE FROM records_fts WHERE rowid = ?`, cur.Seq); err != nil {
		return wrapErr(err, "unindex %s", cur.ID)
	}
	tomb := &runmerge.Record{ID: cur.ID, TenantID: w.tenantID, Collection: c.Name, Seq: seq,
		Version: cur.Version + 1, CreatedAt: cur.CreatedAt, UpdatedAt: now, DeletedAt: &now,
		EventIDs: cur.EventIDs}
	return w.change(ctx, c, tomb, runmerge.ChangeDeleted)
}

// bulkRecord is a record that a bulk upsert writes: its state as the
// bulk's last write of it leaves it, and what it was before the bulk.
type bulkRecord struct {
	rec     *runmerge.Record // as the last write left it, or as stored
	d       *draft           // the last write; nil for a stored record not yet written
	stored  bool             // in the file before the bulk
	oldSeq  int64            // a stored record's position, which keys its search text
	oldData string           // a stored record's JSON, for an event manager's check
}

// index returns what the record links to before the next write.
func (b *bulkRecord) index(c *runmerge.Collection) (runmerge.Index, error) {
	if b.d != nil {
		return b.d.index, nil
	}
	doc, err := decodeDocument([]byte(b.oldData))
	if err != nil {
		return runmerge.Index{}, fmt.Errorf("decode record %s: %w", b.rec.ID, err)
	}
	return c.Index(doc), nil
}

// sourcePair is a sourceId and remoteId pair.
type sourcePair [2]string

// bulkUpsert writes drafts, all checked, as records of c: each replaces
// the live record with its sourceId and remoteId pair, or is created; a
// pair that comes twice updates the record the first created. It decides
// every write before it stores anything, so that a refusal costs no write,
// and stores them with few statements of many rows, which costs far less
// than a statement a row.
func (w *recordTx) bulkUpsert(
	ctx context.Context, p *runmerge.Principal, c *runmerge.Collection, drafts []*draft,
) ([]*runmerge.Record, error) {
	em := p != nil && p.Role == runmerge.RoleEventManager
	byPair, err := w.findBySource(ctx, c, drafts, em)
	if err != nil {
		return nil, err
	}
	if err := w.findReferenced(ctx, drafts); err != nil {
		return nil, err
	}
	// Every record of a bulk takes the same time, that of the bulk, which
	// commits as one.
	now, err := w.tick(ctx)
	if err != nil {
		return nil, err
	}

	out := make([]*runmerge.Record, len(drafts))
	ops := make([]string, len(drafts))
	var written []*bulkRecord // in the order of their first write
	for i, d := range drafts {
		prefix := "/records/" + strconv.Itoa(i)
		pair := sourcePair{d.index.SourceID, d.index.RemoteID}
		paired := pair[0] != "" && pair[1] != ""
		var b *bulkRecord
		if paired {
			b = byPair[pair]
		}
		// The policy decides before the links are checked, so that no
		// answer shows whether a record out of the caller's reach exists.
		if b == nil {
			id := uuid.Must(uuid.NewV7()).String()
			t := writeTarget(w.tenantID, c, nil, nil, d, id)
			if err := authorize(p, runmerge.ActionRecordCreate, t); err != nil {
				return nil, err
			}
			b = &bulkRecord{rec: &runmerge.Record{ID: id, TenantID: w.tenantID, Collection: c.Name,
				CreatedAt: now}}
			if paired {
				byPair[pair] = b
			}
			ops[i] = runmerge.ChangeCreated
		} else {
			if b.rec.Collection != c.Name {
				e := sourceConflict(d)
				e.Fields[0].Pointer = prefix + "/remoteId"
				return nil, e
			}
			err := authorize(p, runmerge.ActionRecordUpdate, target(w.tenantID, c, b.rec))
			if err != nil {
				return nil, err
			}
			var before []string
			if em {
				ix, err := b.index(c)
				if err != nil {
					return nil, err
				}
				before = linkedEvents(c, ix)
			}
			t := writeTarget(w.tenantID, c, b.rec, before, d, b.rec.ID)
			if err := authorize(p, runmerge.ActionRecordUpdate, t); err != nil {
				return nil, err
			}
			ops[i] = runmerge.ChangeUpdated
		}
		if err := w.checkLinks(ctx, d, prefix); err != nil {
			return nil, err
		}
		if b.d == nil {
			written = append(written, b)
		}
		r := &runmerge.Record{ID: b.rec.ID, TenantID: w.tenantID, Collection: c.Name, Seq: w.clk.next,
			Version: b.rec.Version + 1, CreatedAt: b.rec.CreatedAt, UpdatedAt: now, Data: d.data,
			EventIDs: d.eventIDs(c, b.rec.ID)}
		w.clk.next++
		b.rec, b.d = r, d
		out[i] = r
	}

	if err := w.storeBulk(ctx, c, written); err != nil {
		return nil, err
	}
	if err := w.bulkChanges(ctx, c, out, ops); err != nil {
		return nil, err
	}
	// The search text goes last: see bulkSearchText.
	if err := w.bulkSearchText(ctx, written); err != nil {
		return nil, err
	}
	return out, nil
}

// The lookups of a bulk, each given a JSON array. CROSS JOIN keeps the
// array outside: one seek of an index for each of its elements.
const (
	// findBySourceQuery finds the live records of pairs [[sourceId,
	// remoteId], ...]; the first argument says whether to load their JSON.
	findBySourceQuery = `SELECT r.id, r.collection, r.seq, r.version, r.created_at,
		r.source_id, r.remote_id, iif(?, r.data, '')
		FROM json_each(?) j CROSS JOIN records r
		WHERE r.source_id = j.value ->> 0 AND r.remote_id = j.value ->> 1
		AND r.deleted_at IS NULL`

	// storedEventIDsQuery finds the events that records [id, ...] link to.
	storedEventIDsQuery = `SELECT l.a_id, l.b_id FROM json_each(?) j CROSS JOIN links l
		WHERE l.a_id = j.value AND l.b_coll = 'events' AND l.owner_id = l.a_id`

	// findReferencedQuery finds the collection of each live record of
	// [id, ...].
	findReferencedQuery = `SELECT r.id, r.collection FROM json_each(?) j
		CROSS JOIN records r WHERE r.id = j.value AND r.deleted_at IS NULL`
)

// findBySource returns the live records, of any collection, that hold the
// sourceId and remoteId pairs of drafts, by pair. For an event manager
// (em) it loads what its policy asks of them: their JSON and the events
// they link to.
func (w *recordTx) findBySource(
	ctx context.Context, c *runmerge.Collection, drafts []*draft, em bool,
) (map[sourcePair]*bulkRecord, error) {
	byPair := make(map[sourcePair]*bulkRecord, len(drafts))
	seen := make(map[sourcePair]bool, len(drafts))
	var pairs []sourcePair
	for _, d := range drafts {
		pair := sourcePair{d.index.SourceID, d.index.RemoteID}
		if pair[0] != "" && pair[1] != "" && !seen[pair] {
			seen[pair] = true
			pairs = append(pairs, pair)
		}
	}
	if len(pairs) == 0 {
		return byPair, nil
	}
	list, err := json.Marshal(pairs)
	if err != nil {
		return nil, err
	}
	rows, err := w.tx.QueryContext(ctx, findBySourceQuery, em, string(list))
	if err != nil {
		return nil, fmt.Errorf("find %s by source: %w", c.Name, err)
	}
	defer rows.Close()
	var stored []*bulkRecord
	for rows.Next() {
		b := &bulkRecord{rec: &runmerge.Record{TenantID: w.tenantID}, stored: true}
		var created string
		var pair sourcePair
		if err := rows.Scan(&b.rec.ID, &b.rec.Collection, &b.oldSeq, &b.rec.Version, &created,
			&pair[0], &pair[1], &b.oldData); err != nil {
			return nil, fmt.Errorf("find %s by source: %w", c.Name, err)
		}
		b.rec.Seq, b.rec.CreatedAt = b.oldSeq, parseTime(created)
		byPair[pair] = b
		stored = append(stored, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find %s by source: %w", c.Name, err)
	}
	if em {
		return byPair, w.loadStoredEventIDs(ctx, stored)
	}
	return byPair, nil
}

// loadStoredEventIDs sets the EventIDs of each record of list, as
// loadEventIDs does, with one query.
func (w *recordTx) loadStoredEventIDs(ctx context.Context, list []*bulkRecord) error {
	byID := make(map[string]*runmerge.Record, len(list))
	ids := make([]string, 0, len(list))
	for _, b := range list {
		if b.rec.Collection == runmerge.CollectionEvents {
			b.rec.EventIDs = []string{b.rec.ID}
			continue
		}
		byID[b.rec.ID] = b.rec
		ids = append(ids, b.rec.ID)
	}
	if len(ids) == 0 {
		return nil
	}
	idList, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	rows, err := w.tx.QueryContext(ctx, storedEventIDsQuery, string(idList))
	if err != nil {
		return fmt.Errorf("read links: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a, e string
		if err := rows.Scan(&a, &e); err != nil {
			return err
		}
		byID[a].EventIDs = append(byID[a].EventIDs, e)
	}
	return rows.Err()
}

// findReferenced looks up, with one query, every record that drafts link
// to, and keeps their collections in w.known for checkLinks.
func (w *recordTx) findReferenced(ctx context.Context, drafts []*draft) error {
	w.known = make(map[string]string)
	var ids []string
	for _, d := range drafts {
		for _, id := range referencedIDs(d) {
			if _, ok := w.known[id]; !ok {
				w.known[id] = ""
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	rows, err := w.tx.QueryContext(ctx, findReferencedQuery, string(list))
	if err != nil {
		return fmt.Errorf("find linked records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, coll string
		if err := rows.Scan(&id, &coll); err != nil {
			return err
		}
		w.known[id] = coll
	}
	return rows.Err()
}

// rowsPerStatement is how many rows one statement of a bulk carries: enough
// that the cost of running a statement is spread thin, few enough that the
// statement stays small. The rows that do not fill one go one a statement,
// so that each write has two statements, not one for each count of rows
// left.
const rowsPerStatement = 32

// multiRow is a statement that writes the rows of a VALUES list, in a
// version for one row and one for rowsPerStatement rows.
type multiRow struct {
	one, many string
	width     int // arguments a row
}

// newMultiRow returns the statement head, VALUES row, ..., tail.
func newMultiRow(head, row, tail string) multiRow {
	return multiRow{one: head + row + tail,
		many:  head + strings.Repeat(row+", ", rowsPerStatement-1) + row + tail,
		width: strings.Count(row, "?")}
}

// The statements of a bulk. Its INSERTs and UPDATE say OR FAIL: a failing
// row stops the statement without undoing the rows it wrote before, which
// spares SQLite the statement journal that undoing takes; the transaction
// is rolled back after any error anyway.
var (
	insertRecords = newMultiRow(`INSERT OR FAIL INTO records (id, collection, seq, source_id,
		remote_id, status, type, event_id, data, raw_data, version, created_at, updated_at)
		VALUES `,
		`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, ``)
	updateRecords = newMultiRow(`WITH v (id, seq, source_id, remote_id, status, type, event_id,
		data, raw_data, version, updated_at) AS (VALUES `, `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		`) UPDATE OR FAIL records SET seq = v.seq, source_id = v.source_id,
		remote_id = v.remote_id, status = v.status, type = v.type, event_id = v.event_id,
		data = v.data, raw_data = v.raw_data, version = v.version, updated_at = v.updated_at
		FROM v WHERE records.id = v.id`)
	insertLinks = newMultiRow(`INSERT OR IGNORE INTO links (a_id, b_coll, b_id, owner_id) VALUES `,
		`(?, ?, ?, ?)`, ``)
	insertChanges = newMultiRow(`INSERT OR FAIL INTO changes (id, event_type, record_id, event_ids,
		at, data) VALUES `, `(?, ?, ?, ?, ?, ?)`, ``)
)

// execRows runs st for the rows whose arguments args holds, one after the
// other.
func (w *recordTx) execRows(ctx context.Context, st multiRow, args []any) error {
	for n := st.width * rowsPerStatement; len(args) >= n; args = args[n:] {
		if _, err := w.tx.ExecContext(ctx, st.many, args[:n]...); err != nil {
			return err
		}
	}
	for ; len(args) > 0; args = args[st.width:] {
		if _, err := w.tx.ExecContext(ctx, st.one, args[:st.width]...); err != nil {
			return err
		}
	}
	return nil
}

// storeBulk stores the records a bulk wrote, as their last write left
// them, and their links.
func (w *recordTx) storeBulk(
	ctx context.Context, c *runmerge.Collection, list []*bulkRecord,
) error {
	var inserts, updates, links []any
	var unlink []string
	for _, b := range list {
		r, d := b.rec, b.d
		at := formatTime(r.UpdatedAt)
		if b.stored {
			updates = append(updates, r.ID, r.Seq, nullable(d.index.SourceID),
				nullable(d.index.RemoteID), nullable(d.index.Status), nullable(d.index.Type),
				nullable(d.index.EventID), d.text, d.rawData, r.Version, at)
			unlink = append(unlink, r.ID)
		} else {
			inserts = append(inserts, r.ID, c.Name, r.Seq, nullable(d.index.SourceID),
				nullable(d.index.RemoteID), nullable(d.index.Status), nullable(d.index.Type),
				nullable(d.index.EventID), d.text, d.rawData, r.Version,
				formatTime(r.CreatedAt), at)
		}
		for _, l := range recordLinks(d) {
			links = append(links, r.ID, l.coll, l.id, r.ID, l.id, c.Name, r.ID, r.ID)
		}
	}
	if err := w.execRows(ctx, updateRecords, updates); err != nil {
		return wrapErr(err, "update %s", c.Name)
	}
	if err := w.execRows(ctx, insertRecords, inserts); isUnique(err) {
		// findBySource found every pair taken in this transaction, so this
		// cannot happen; should it, the client hears of a conflict.
		return runmerge.Errorf(runmerge.ECONFLICT,
			"a record with one of these sourceId and remoteId pairs already exists in the tenant")
	} else if err != nil {
		return wrapErr(err, "insert %s", c.Name)
	}
	if len(unlink) > 0 {
		list, err := json.Marshal(unlink)
		if err != nil {
			return err
		}
		_, err = w.tx.ExecContext(ctx, `DELETE FROM links
			WHERE owner_id IN (SELECT value FROM json_each(?))`, string(list))
		if err != nil {
			return wrapErr(err, "unlink %s", c.Name)
		}
	}
	return wrapErr(w.execRows(ctx, insertLinks, links), "link %s", c.Name)
}

// bulkChanges appends the change events of a bulk, one for each of its
// records, whose change ops holds.
func (w *recordTx) bulkChanges(
	ctx context.Context, c *runmerge.Collection, list []*runmerge.Record, ops []string,
) error {
	args := make([]any, 0, len(list)*insertChanges.width)
	types := map[string]string{}
	var buf []byte
	for i, r := range list {
		eventIDs, err := eventIDsJSON(r.EventIDs)
		if err != nil {
			return err
		}
		typ, ok := types[ops[i]]
		if !ok {
			typ = c.Kind + "." + ops[i]
			types[ops[i]] = typ
		}
		buf = r.AppendJSON(buf[:0], false)
		args = append(args, uuid.Must(uuid.NewV7()).String(), typ, r.ID, eventIDs,
			formatTime(r.UpdatedAt), string(buf))
	}
	return wrapErr(w.execRows(ctx, insertChanges, args), "record changes of %s", c.Name)
}

// eventIDsJSON returns ids as a JSON array, as a change stores them.
func eventIDsJSON(ids []string) (string, error) {
	if len(ids) == 0 {
		return "[]", nil // most records link to no event
	}
	b, err := json.Marshal(ids)
	return string(b), err
}

// bulkSearchText replaces the search text of the records a bulk wrote.
//
// It runs last of a bulk's writes: once the full-text index holds text of
// the transaction in memory, each statement that runs under a savepoint,
// as one of several rows may, makes it flush that text to disk (see
// clock). The new text goes in one statement of all rows, whose savepoint
// comes before the index holds any of it.
func (w *recordTx) bulkSearchText(ctx context.Context, list []*bulkRecord) error {
	type row struct {
		Seq  int64  `json:"s"`
		Text string `json:"t"`
	}
	var rows []row
	for _, b := range list {
		if b.stored {
			_, err := w.tx.ExecContext(ctx, `DELETE FROM records_fts WHERE rowid = ?`, b.oldSeq)
			if err != nil {
				return wrapErr(err, "unindex %s", b.rec.ID)
			}
		}
		if b.d.index.SearchText != "" {
			rows = append(rows, row{b.rec.Seq, b.d.index.SearchText})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	text, err := json.Marshal(rows)
	if err != nil {
		return err
	}
	_, err = w.tx.ExecContext(ctx, `INSERT INTO records_fts (rowid, text)
		SELECT value ->> 's', value ->> 't' FROM json_each(?)`, string(text))
	return wrapErr(err, "index search text")
}

// recordLink is a link a record declares: to record id of collection coll.
type recordLink struct{ coll, id string }

// recordLinks returns the links d declares, in a stable order.
func recordLinks(d *draft) []recordLink {
	var links []recordLink
	if d.index.EventID != "" {
		links = append(links, recordLink{runmerge.CollectionEvents, d.index.EventID})
	}
	for key, ids := range d.index.Links {
		coll := runmerge.RelationshipCollection(key)
		for _, other := range ids {
			links = append(links, recordLink{coll, other})
		}
	}
	sort.Slice(links, func(i, j int) bool {
		return links[i].coll+links[i].id < links[j].coll+links[j].id
	})
	return links
}

// index writes a record's links and search text. The search text is keyed
// by seq, the record's position in the change order, so that a search reads
// in change order (see listQuery); oldSeq, when not 0, is the position of
// the text to replace.
func (w *recordTx) index(
	ctx context.Context, c *runmerge.Collection, id string, seq, oldSeq int64, d *draft,
) error {
	if oldSeq != 0 {
		if err := w.unindex(ctx, id, oldSeq); err != nil {
			return err
		}
	}
	// One row per statement: a statement of several rows runs under a
	// savepoint, which makes the full-text index flush (see clock).
	for _, l := range recordLinks(d) {
		for _, row := range [][4]string{{id, l.coll, l.id, id}, {l.id, c.Name, id, id}} {
			_, err := w.tx.ExecContext(ctx, `INSERT OR IGNORE INTO links (a_id, b_coll, b_id, owner_id)
				VALUES (?, ?, ?, ?)`, row[0], row[1], row[2], row[3])
			if err != nil {
				return wrapErr(err, "link %s %s", c.Name, id)
			}
		}
	}
	if d.index.SearchText != "" {
		if _, err := w.tx.ExecContext(ctx, `INSERT INTO records_fts (rowid, text) VALUES (?, ?)`,
			seq, d.index.SearchText); err != nil {
			return wrapErr(err, "index %s %s", c.Name, id)
		}
	}
	return nil
}

// unindex removes the links a record declared and its search text.
func (w *recordTx) unindex(ctx context.Context, id string, seq int64) error {
	if _, err := w.tx.ExecContext(ctx, `DELETE FROM links WHERE owner_id = ?`, id); err != nil {
		return wrapErr(err, "unlink %s", id)
	}
	if _, err := w.tx.ExecContext(ctx, `DELETE FROM records_fts WHERE rowid = ?`, seq); err != nil {
		return wrapErr(err, "unindex %s", id)
	}
	return nil
}

// change appends the change event for r to the outbox.
func (w *recordTx) change(
	ctx context.Context, c *runmerge.Collection, r *runmerge.Record, op string,
) error {
	eventIDs, err := json.Marshal(nonNil(r.EventIDs))
	if err != nil {
		return err
	}
	_, err = w.tx.ExecContext(ctx, `INSERT INTO changes (id, event_type, record_id, event_ids, at, data)
		VALUES (?, ?, ?, ?, ?, ?)`,
		uuid.Must(uuid.NewV7()).String(), c.Kind+"."+op, r.ID, string(eventIDs),
		formatTime(r.UpdatedAt), string(r.AppendJSON(nil, false)))
	return wrapErr(err, "record change of %s %s", c.Name, r.ID)
}

// encode sets d.data and d.rawData, once.
func (d *draft) encode() error {
	if d.data != nil {
		return nil
	}
	data, err := json.Marshal(d.doc)
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	if d.raw != nil {
		raw, err := json.Marshal(d.raw)
		if err != nil {
			return fmt.Errorf("encode record raw data: %w", err)
		}
		d.rawData = string(raw)
	}
	d.data, d.text = data, string(data)
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// SavedResponseFor returns the saved response to the idempotent request
// (keyID, key), or nil when there is none younger than 24 hours.
func (db *DB) SavedResponseFor(ctx context.Context, keyID, key string) (*SavedResponse, error) {
	var s SavedResponse
	var headers string
	err := db.r.QueryRowContext(ctx, `SELECT request_hash, status, headers, body FROM idempotency
		WHERE key_id = ? AND idem_key = ? AND created_at > ?`,
		keyID, key, formatTime(runmerge.Now().Add(-24*time.Hour))).Scan(&s.RequestHash, &s.Status, &headers, &s.Body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read idempotent response: %w", err)
	}
	if err := json.Unmarshal([]byte(headers), &s.Headers); err != nil {
		return nil, fmt.Errorf("read idempotent response headers: %w", err)
	}
	return &s, nil
}

func saveResponse(ctx context.Context, tx sqlRunner, idem *Idempotency, resp SavedResponse) error {
	headers, err := json.Marshal(resp.Headers)
	if err != nil {
		return err
	}
	// An expired entry for the same key is replaced.
	_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO idempotency
		(key_id, idem_key, request_hash, status, headers, body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		idem.KeyID, idem.Key, idem.RequestHash, resp.Status, string(headers), resp.Body,
		formatTime(runmerge.Now()))
	return wrapErr(err, "save idempotent response")
}

// MissingEvents returns the indexes in ids of those that name no live event.
func (db *DB) MissingEvents(ctx context.Context, ids []string) ([]int, error) {
	var missing []int
	for i, id := range ids {
		var n int
		err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM records
			WHERE id = ? AND collection = 'events' AND deleted_at IS NULL`, id).Scan(&n)
		if err != nil {
			return nil, fmt.Errorf("check events: %w", err)
		}
		if n == 0 {
			missing = append(missing, i)
		}
	}
	return missing, nil
}
