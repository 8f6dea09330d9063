package tenantstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// maxBatch bounds how many writes share one commit.
const maxBatch = 256

// DB is one open tenant file: a single writer connection, through which every
// write goes, and a small pool of read connections. Lease one from the Pool;
// never close it yourself.
type DB struct {
	id   string
	path string
	w    *sql.DB
	r    *sql.DB

	// Prepared statements of the writer and of the readers.
	wstmts *stmtCache
	rstmts *stmtCache

	// wrote is set once the writer has been used; a file never written
	// through this handle needs no checkpoint when it closes.
	wrote atomic.Bool

	// clk is the change clock of the transaction the committer runs.
	clk txClock

	// readOnly is set when a write found that the writer's connection
	// cannot write its file; the batch's end then reconnects it.
	readOnly atomic.Bool

	// onChange, when set, is told after every commit that changed records
	// of a collection.
	onChange func(tenantID, collection string)

	mu         sync.Mutex
	queue      []*writeOp
	committing bool
}

// writeOp is one caller's write waiting for a commit.
type writeOp struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error

	finished bool // set by the committer once done has its result
}

// ID returns the tenant's id.
func (db *DB) ID() string { return db.id }

// tenantAutocheckpointPages bounds each open tenant's WAL to about 2 MiB
// (500 pages of 4 KiB, and the last commit's pages) instead of SQLite's
// 4 MiB. A WAL keeps its largest size until its tenant closes, so with a
// thousand tenants open the default let the WALs on disk add up to more
// than 250 MB that kept growing for minutes as more tenants were
// written; at 500 they take about 40 % less and level off within the
// first minute, with writes as fast (see the soak in docs/benchmarks.md).
const tenantAutocheckpointPages = 500

// openTenant opens the tenant file at path, migrating it to the current
// schema. With create it makes the file when it does not exist; without, a
// missing file is an error that isNoFile recognises.
func openTenant(ctx context.Context, id, path string, o Options, create bool, onChange func(string, string)) (*DB, error) {
	o.AutocheckpointPages = tenantAutocheckpointPages
	r, err := connect(path, o, modeRead)
	if err != nil {
		return nil, err
	}
	mode := modeWrite
	if create {
		mode = modeCreate
	}
	w, err := connect(path, o, mode)
	if err != nil {
		r.Close()
		return nil, err
	}
	db := &DB{id: id, path: path, w: w, r: r, onChange: onChange,
		wstmts: newStmtCache(w, true), rstmts: newStmtCache(r, false)}

	// A file at the current version is checked on a read connection, which
	// the request that opened the tenant then reads through: one connection
	// opened, not two. The writer connects on the first write.
	if !create {
		h, err := readHeader(ctx, r)
		if err == nil && tenantMigrations.current(h) {
			return db, nil
		}
		if isCantOpen(err) {
			db.closeHandles()
			return nil, errNoFile
		}
	}
	db.wrote.Store(true) // migrating writes, and a close must checkpoint it
	if _, err := tenantMigrations.migrate(ctx, w); err != nil {
		db.closeHandles()
		if isCantOpen(err) {
			return nil, errNoFile
		}
		return nil, fmt.Errorf("open tenant %s: %w", id, err)
	}
	return db, nil
}

// closeHandles closes a DB that never served, without a checkpoint.
func (db *DB) closeHandles() {
	db.r.Close()
	db.w.Close()
}

var errNoFile = errors.New("tenant file does not exist")

// changed reports a committed change to collection.
func (db *DB) changed(collection string) {
	if db.onChange != nil {
		db.onChange(db.id, collection)
	}
}

// Write runs fn in a write transaction and returns once the transaction that
// holds fn's changes has committed, or fn has failed and its changes have
// been undone. Concurrent writers share one commit (group commit); when one
// of them fails, the shared transaction is rolled back and each runs again
// in a transaction of its own, so one writer's failure undoes only its own
// changes. fn may therefore run more than once, and must keep no state from
// a run whose transaction was rolled back. fn receives a context that is not
// cancelled mid-transaction, because interrupting a statement would roll back
// every writer's changes.
func (db *DB) Write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	db.wrote.Store(true)
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	db.mu.Lock()
	db.queue = append(db.queue, op)
	lead := !db.committing
	db.committing = true
	db.mu.Unlock()

	if lead {
		db.commitUntil(op)
	}
	return classify(<-op.done)
}

// commitUntil commits batches until op is done, then leaves any writes queued
// since to a goroutine of its own, so that no caller keeps committing for
// others long after its own write is safe.
func (db *DB) commitUntil(op *writeOp) {
	for {
		db.mu.Lock()
		batch := db.queue
		if len(batch) > maxBatch {
			batch = batch[:maxBatch]
		}
		db.queue = db.queue[len(batch):]
		if len(batch) == 0 {
			db.committing = false
			db.queue = nil
			db.mu.Unlock()
			return
		}
		db.mu.Unlock()

		db.commit(batch)
		if op != nil && op.finished {
			go db.commitUntil(nil)
			return
		}
	}
}

// commit runs one batch. Writes share one transaction without savepoints
// (a savepoint makes the full-text index flush, which costs more than the
// write): if any of them fails, the transaction is rolled back and each
// write runs again in a transaction of its own, so that only the failing
// ones fail and none leaves a change behind.
func (db *DB) commit(batch []*writeOp) {
	ctx := context.Background()
	db.wstmts.prepareWanted(ctx)
	if len(batch) > 1 && db.commitShared(ctx, batch) {
		return
	}
	for _, op := range batch {
		db.commitShared(ctx, []*writeOp{op})
	}
	if db.readOnly.Swap(false) {
		db.reconnectWriter()
	}
}

// reconnectWriter closes the writer's connection, which is idle between
// batches, so that the next write connects afresh. A connection that found
// its file unwritable (isReadOnly) stays read-only for good; a new one can
// write as soon as the file is writable again.
func (db *DB) reconnectWriter() {
	db.w.SetMaxIdleConns(0)
	db.w.SetMaxIdleConns(1)
}

// commitShared runs batch in one transaction and reports whether every
// write in it is finished: false means one failed and the batch, rolled
// back, must be retried write by write. A batch of one always finishes.
func (db *DB) commitShared(ctx context.Context, batch []*writeOp) bool {
	finish := func(err error) {
		for _, op := range batch {
			op.finished = true
			op.done <- err
		}
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		db.noteReadOnly(err)
		finish(fmt.Errorf("begin write: %w", err))
		return true
	}
	db.clk = txClock{}
	results := make([]error, len(batch))
	for i, op := range batch {
		if results[i] = op.ctx.Err(); results[i] != nil {
			continue // given up before it ran: nothing written
		}
		if results[i] = op.fn(ctx, tx); results[i] != nil {
			db.noteReadOnly(results[i])
			rerr := tx.Rollback()
			if len(batch) > 1 {
				return false
			}
			if rerr != nil {
				results[i] = errors.Join(results[i], fmt.Errorf("roll back write: %w", rerr))
			}
			finish(results[i])
			return true
		}
	}
	if err := db.clk.flush(ctx, cachedTx{tx, db.wstmts}); err != nil {
		rerr := tx.Rollback()
		if len(batch) > 1 {
			return false
		}
		if rerr != nil {
			err = errors.Join(err, fmt.Errorf("roll back write: %w", rerr))
		}
		finish(err)
		return true
	}
	if err := tx.Commit(); err != nil {
		db.noteReadOnly(err)
		finish(fmt.Errorf("commit: %w", err))
		return true
	}
	for i, op := range batch {
		op.finished = true
		op.done <- results[i]
	}
	return true
}

// noteReadOnly marks the writer's connection for a reconnect when err says
// it cannot write its file.
func (db *DB) noteReadOnly(err error) {
	if isReadOnly(err) {
		db.readOnly.Store(true)
	}
}

// close checkpoints the WAL into the file, so that a closed tenant's file is
// complete on its own, and closes every connection.
func (db *DB) close() error {
	var errs []error
	if err := errors.Join(db.rstmts.close(), db.wstmts.close()); err != nil {
		errs = append(errs, fmt.Errorf("close statements: %w", err))
	}
	if err := db.r.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close readers: %w", err))
	}
	if db.wrote.Load() {
		if err := checkpoint(context.Background(), db.w); err != nil {
			errs = append(errs, err)
		}
	}
	if err := db.w.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close writer: %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("close tenant %s: %w", db.id, errors.Join(errs...))
	}
	return nil
}
