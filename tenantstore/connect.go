// Package tenantstore keeps Runmerge's data in SQLite: the catalog of tenants
// and keys, and a pool of tenant files, one per tenant, opened on demand.
//
// It is the only package that speaks SQL.
package tenantstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Application ids written into the header of each kind of file, so that a
// tenant file, a catalog and any other database can be told apart.
const (
	tenantApplicationID  = 0x524d5254 // "RMRT": Runmerge tenant
	catalogApplicationID = 0x524d5243 // "RMRC": Runmerge catalog
)

// Options are the settings every SQLite connection of the store shares.
type Options struct {
	// Synchronous is the PRAGMA synchronous level: OFF, NORMAL, FULL or EXTRA.
	// NORMAL, the default, is durable across application crashes; a power
	// loss may lose the last transactions but never corrupts a file in WAL
	// mode.
	Synchronous string

	// BusyTimeout is how long a connection waits for a lock held by another
	// connection (another process, such as the CLI) before giving up.
	BusyTimeout time.Duration

	// Readers is the largest number of read connections per tenant file.
	Readers int

	// CacheKiB is the page cache of each connection, in KiB.
	CacheKiB int

	// AutocheckpointPages is the WAL size, in pages, at which a commit
	// checkpoints the WAL back into the file; 0 leaves SQLite's default
	// (1,000 pages). The WAL file keeps the largest size it has reached
	// until its database closes. Tenant files set their own (see
	// tenantAutocheckpointPages); the catalog keeps SQLite's default.
	AutocheckpointPages int
}

func (o Options) withDefaults() Options {
	if o.Synchronous == "" {
		o.Synchronous = "NORMAL"
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.Readers <= 0 {
		o.Readers = 2
	}
	if o.CacheKiB <= 0 {
		o.CacheKiB = 1024
	}
	return o
}

// ValidSynchronous reports whether s is a PRAGMA synchronous level the store
// accepts.
func ValidSynchronous(s string) bool {
	switch strings.ToUpper(s) {
	case "OFF", "NORMAL", "FULL", "EXTRA":
		return true
	}
	return false
}

// connMode says how a connection is used.
type connMode int

const (
	modeWrite  connMode = iota // the single writer: BEGIN IMMEDIATE, may create the file
	modeRead                   // a reader: query_only, never creates the file
	modeCreate                 // the writer of a file being created
)

// dsn builds the connection string for path. It is the one place that sets
// the pragmas of every connection: busy_timeout first (so that the pragmas
// after it cannot fail on a lock), synchronous and foreign keys.
//
// WAL is not among them: journal_mode is a property of the file, not of the
// connection, and setting it on connect would convert whatever file is at
// path before its header is checked. migrate sets it once the file is known
// to be one of ours.
func dsn(path string, o Options, mode connMode) string {
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(o.BusyTimeout.Milliseconds(), 10))
	q.Set("_synchronous", strings.ToUpper(o.Synchronous))
	q.Set("_foreign_keys", "1")
	q.Add("_pragma", "cache_size(-"+strconv.Itoa(o.CacheKiB)+")")
	q.Add("_pragma", "temp_store(MEMORY)")
	if o.AutocheckpointPages > 0 && mode != modeRead {
		q.Add("_pragma", "wal_autocheckpoint("+strconv.Itoa(o.AutocheckpointPages)+")")
	}
	switch mode {
	case modeWrite:
		q.Set("_txlock", "immediate")
		q.Set("mode", "rw")
	case modeCreate:
		q.Set("_txlock", "immediate")
		q.Set("mode", "rwc")
	case modeRead:
		q.Set("mode", "rw")
		q.Add("_pragma", "query_only(1)")
	}
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: q.Encode()}
	return u.String()
}

// connect opens a database handle on path. Connections are made lazily by
// database/sql; the writer is limited to one connection, so every write to a
// file goes through it in turn.
func connect(path string, o Options, mode connMode) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path, o, mode))
	if err != nil {
		return nil, err
	}
	switch mode {
	case modeWrite, modeCreate:
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxIdleTime(0)
	case modeRead:
		db.SetMaxOpenConns(o.Readers)
		// One idle reader stays open; more would cost descriptors on every
		// open tenant for a burst that has passed.
		db.SetMaxIdleConns(1)
		db.SetConnMaxIdleTime(time.Minute)
	}
	return db, nil
}

// sqliteCode returns the primary SQLite result code of err, or 0 when err did
// not come from SQLite. It is the one place that looks inside SQLite errors.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() & 0xff
	}
	return 0
}

// isConstraint reports whether err is a violation of a UNIQUE or other
// constraint.
func isConstraint(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT
}

// isUnique reports whether err is a violation of a UNIQUE constraint or
// primary key.
func isUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isBusy reports whether err is a lock that busy_timeout did not outwait.
func isBusy(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
}

// isReadOnly reports whether err is SQLite refusing to write because the
// connection could open its file only for reading: when the file cannot be
// opened for writing (its permissions, an immutable flag, a file system
// mounted read-only), SQLite opens it read-only without a word and refuses
// each write later with SQLITE_READONLY.
func isReadOnly(err error) bool {
	return sqliteCode(err)&0xff == sqlite3.SQLITE_READONLY
}

// isDiskFull reports whether err is SQLite finding no room for a write.
//
// SQLite's unix VFS reports a write that fails with ENOSPC as SQLITE_FULL,
// but a write past RLIMIT_FSIZE (EFBIG) or over a disk quota (EDQUOT) as
// SQLITE_IOERR_WRITE, a file it could not grow ahead of a write as
// SQLITE_IOERR_WRITE too, a -shm file it could not grow as
// SQLITE_IOERR_SHMSIZE, and a failed fsync, where network and
// thin-provisioned disks report ENOSPC, as SQLITE_IOERR_FSYNC. The errno
// behind an I/O error is not in modernc.org/sqlite's Error, which carries
// the result code and message only, so these three codes count as a full
// disk whatever their errno.
//
// TODO: an EIO behind one of these codes, a failing disk rather than a
// full one, is answered 507 too (the cause is logged with the request);
// telling them apart needs the errno, which SQLite passes only to a
// SQLITE_CONFIG_LOG callback that the driver does not offer.
func isDiskFull(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_IOERR_WRITE, sqlite3.SQLITE_IOERR_FSYNC, sqlite3.SQLITE_IOERR_SHMSIZE:
		return true
	}
	return se.Code()&0xff == sqlite3.SQLITE_FULL
}

// isCantOpen reports whether err is SQLite failing to open a file, which
// for a connection opened without create means the file is missing.
func isCantOpen(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CANTOPEN
}

// checkpoint folds the WAL of db back into the database file and truncates
// it, so that the file is complete on its own.
func checkpoint(ctx context.Context, db *sql.DB) error {
	var busy, logFrames, done int
	row := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	if err := row.Scan(&busy, &logFrames, &done); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if busy != 0 {
		return fmt.Errorf("checkpoint: database busy")
	}
	return nil
}
