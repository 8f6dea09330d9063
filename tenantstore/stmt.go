package tenantstore

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// maxCachedStmts bounds the statements cached per handle, so that queries
// built from many filter combinations cannot hold memory without end.
const maxCachedStmts = 48

// stmtCache keeps prepared statements of one database handle by their SQL
// text. The driver compiles a statement on every call otherwise, and on the
// write path the compiling costs more than the writing.
//
// The writer has a single connection, which a transaction holds while its
// statements run, so a statement cannot be prepared then: a writer's cache
// (deferred) notes what it misses, and the committer prepares those before
// its next transaction begins.
type stmtCache struct {
	db       *sql.DB
	deferred bool

	mu     sync.Mutex
	m      map[string]*sql.Stmt
	wanted map[string]bool
}

func newStmtCache(db *sql.DB, deferred bool) *stmtCache {
	return &stmtCache{db: db, deferred: deferred, m: make(map[string]*sql.Stmt), wanted: make(map[string]bool)}
}

// get returns the prepared statement for query, or nil when the caller
// should run the query unprepared this time.
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	s, ok := c.m[query]
	full := len(c.m)+len(c.wanted) >= maxCachedStmts
	if !ok && !full && c.deferred {
		c.wanted[query] = true
	}
	c.mu.Unlock()
	if ok || full || c.deferred {
		return s, nil
	}

	s, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[query]; ok {
		s.Close()
		return prev, nil
	}
	c.m[query] = s
	return s, nil
}

// prepareWanted prepares the statements a deferred cache missed. Call it
// only while no transaction holds the connection.
func (c *stmtCache) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q := range c.wanted {
		delete(c.wanted, q)
		if s, err := c.db.PrepareContext(ctx, q); err == nil {
			c.m[q] = s
		}
	}
}

// close closes every cached statement; it must run before the handle
// closes, or the connection would stay open behind them.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, s := range c.m {
		errs = append(errs, s.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}

// sqlRunner is what record code runs statements with: a transaction of the
// writer or the reader pool, through a statement cache.
type sqlRunner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// cachedTx runs the statements of a write transaction prepared once on the
// writer connection.
type cachedTx struct {
	tx *sql.Tx
	c  *stmtCache
}

func (t cachedTx) stmt(ctx context.Context, query string) *sql.Stmt {
	s, err := t.c.get(ctx, query)
	if err != nil || s == nil {
		return nil
	}
	return t.tx.StmtContext(ctx, s)
}

func (t cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := t.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := t.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

func (t cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := t.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

// cachedDB runs reads on the reader pool through its statement cache.
type cachedDB struct{ c *stmtCache }

func (d cachedDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s, err := d.c.get(ctx, query); err == nil && s != nil {
		return s.ExecContext(ctx, args...)
	}
	return d.c.db.ExecContext(ctx, query, args...)
}

func (d cachedDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s, err := d.c.get(ctx, query); err == nil && s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return d.c.db.QueryRowContext(ctx, query, args...)
}

func (d cachedDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s, err := d.c.get(ctx, query); err == nil && s != nil {
		return s.QueryContext(ctx, args...)
	}
	return d.c.db.QueryContext(ctx, query, args...)
}
