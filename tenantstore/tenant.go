package tenantstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
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

// openTenant opens the tenant file at path, migrating it to the current
// schema. With create it makes the file when it does not exist; without, a
// missing file is an error that isNoFile recognises.
func openTenant(ctx context.Context, id, path string, o Options, create bool, onChange func(string, string)) (*DB, error) {
	mode := modeWrite
	if create {
		mode = modeCreate
	}
	w, err := connect(path, o, mode)
	if err != nil {
		return nil, err
	}
	if _, err := tenantMigrations.migrate(ctx, w); err != nil {
		w.Close()
		if isCantOpen(err) {
			return nil, errNoFile
		}
		return nil, fmt.Errorf("open tenant %s: %w", id, err)
	}
	r, err := connect(path, o, modeRead)
	if err != nil {
		w.Close()
		return nil, err
	}
	return &DB{id: id, path: path, w: w, r: r, onChange: onChange,
		wstmts: newStmtCache(w, true), rstmts: newStmtCache(r, false)}, nil
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
// been undone. Concurrent writers share one commit (group commit): each runs
// inside a savepoint of its own, so one writer's failure undoes only its own
// changes. fn receives a context that is not cancelled mid-transaction,
// because interrupting a statement would roll back every writer's changes.
func (db *DB) Write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	db.mu.Lock()
	db.queue = append(db.queue, op)
	lead := !db.committing
	db.committing = true
	db.mu.Unlock()

	if lead {
		db.commitUntil(op)
	}
	return <-op.done
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

// commit runs one batch in one transaction. A write that fails leaves no
// change behind: in a shared batch its savepoint is rolled back, and a batch
// in which no write succeeded is rolled back whole. If undoing one write
// fails, the transaction cannot be trusted, and the whole batch fails.
func (db *DB) commit(batch []*writeOp) {
	ctx := context.Background()
	db.wstmts.prepareWanted(ctx)
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		for _, op := range batch {
			op.finished = true
			op.done <- fmt.Errorf("begin write: %w", err)
		}
		return
	}

	results := make([]error, len(batch))
	kept := 0
	for i, op := range batch {
		results[i], err = db.apply(ctx, tx, op, len(batch) > 1)
		if err != nil {
			break
		}
		if results[i] == nil {
			kept++
		}
	}

	switch {
	case err != nil:
		err = errors.Join(fmt.Errorf("write: %w", err), tx.Rollback())
	case kept == 0:
		if rerr := tx.Rollback(); rerr != nil {
			err = fmt.Errorf("roll back write: %w", rerr)
		}
	default:
		if cerr := tx.Commit(); cerr != nil {
			err = fmt.Errorf("commit: %w", cerr)
		}
	}
	for i, op := range batch {
		op.finished = true
		switch {
		case results[i] == nil:
			op.done <- err
		case err == nil:
			op.done <- results[i]
		default:
			op.done <- errors.Join(results[i], err)
		}
	}
}

// apply runs one write of a batch, inside a savepoint when it shares the
// transaction with others. It returns the write's own error, and separately
// an error that leaves the transaction unusable.
func (db *DB) apply(ctx context.Context, tx *sql.Tx, op *writeOp, shared bool) (opErr, txErr error) {
	if err := op.ctx.Err(); err != nil {
		return err, nil
	}
	if !shared {
		return op.fn(ctx, tx), nil
	}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT w"); err != nil {
		return nil, err
	}
	if err := op.fn(ctx, tx); err != nil {
		if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO w; RELEASE w"); rerr != nil {
			return err, rerr
		}
		return err, nil
	}
	if _, err := tx.ExecContext(ctx, "RELEASE w"); err != nil {
		return nil, err
	}
	return nil, nil
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
	if err := checkpoint(context.Background(), db.w); err != nil {
		errs = append(errs, err)
	}
	if err := db.w.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close writer: %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("close tenant %s: %w", db.id, errors.Join(errs...))
	}
	return nil
}
