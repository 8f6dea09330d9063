package tenantstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/runmerge/runmerge"
)

// This file reads a tenant file's outbox, the changes table that every
// record write fills in its own transaction, for the webhook dispatcher and
// the event stream.

const changeColumns = `seq, id, event_type, event_ids, at, data`

func scanChange(s scanner, tenantID string) (*runmerge.Change, error) {
	c := &runmerge.Change{TenantID: tenantID}
	var eventIDs, at, data string
	if err := s.Scan(&c.Seq, &c.ID, &c.Type, &eventIDs, &at, &data); err != nil {
		return nil, err
	}
	if err := unmarshalIDs(eventIDs, &c.EventIDs); err != nil {
		return nil, fmt.Errorf("change %s: event ids: %w", c.ID, err)
	}
	c.Timestamp = parseTime(at)
	c.Data = json.RawMessage(data)
	return c, nil
}

// unmarshalIDs reads a JSON array of ids, most often empty, into ids.
func unmarshalIDs(s string, ids *[]string) error {
	if s == "[]" {
		*ids = nil
		return nil
	}
	return json.Unmarshal([]byte(s), ids)
}

// marshalIDs writes ids as a JSON array, [] when there are none.
func marshalIDs(ids []string) (string, error) {
	if len(ids) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(ids)
	return string(b), err
}

const changesAfterQuery = `SELECT ` + changeColumns + ` FROM changes WHERE seq > ? ORDER BY seq LIMIT ?`

// ChangesAfter returns up to limit change events of the tenant positioned
// after seq, in order. Only committed changes are ever seen.
func (db *DB) ChangesAfter(ctx context.Context, seq int64, limit int) ([]*runmerge.Change, error) {
	rows, err := cachedDB{db.rstmts}.QueryContext(ctx, changesAfterQuery, seq, limit)
	if err != nil {
		return nil, fmt.Errorf("read changes of %s: %w", db.id, err)
	}
	defer rows.Close()
	var list []*runmerge.Change
	for rows.Next() {
		c, err := scanChange(rows, db.id)
		if err != nil {
			return nil, fmt.Errorf("read changes of %s: %w", db.id, err)
		}
		list = append(list, c)
	}
	return list, wrapErr(rows.Err(), "read changes of %s", db.id)
}

// ChangesAt returns the change events at the given positions that still
// exist, by position.
func (db *DB) ChangesAt(ctx context.Context, seqs []int64) (map[int64]*runmerge.Change, error) {
	out := make(map[int64]*runmerge.Change, len(seqs))
	for len(seqs) > 0 {
		n := min(len(seqs), 500)
		args := make([]any, n)
		for i, s := range seqs[:n] {
			args[i] = s
		}
		marks := strings.TrimSuffix(strings.Repeat("?,", n), ",")
		rows, err := db.r.QueryContext(ctx, `SELECT `+changeColumns+` FROM changes
			WHERE seq IN (`+marks+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read changes of %s: %w", db.id, err)
		}
		for rows.Next() {
			c, err := scanChange(rows, db.id)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("read changes of %s: %w", db.id, err)
			}
			out[c.Seq] = c
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read changes of %s: %w", db.id, err)
		}
		seqs = seqs[n:]
	}
	return out, nil
}

// LastChange returns the position and id of the tenant's latest change
// event. When every change has been pruned it returns the last position
// given out and "", and 0 and "" when the tenant never had a change.
func (db *DB) LastChange(ctx context.Context) (int64, string, error) {
	var seq int64
	var id string
	err := db.r.QueryRowContext(ctx, `SELECT seq, id FROM changes ORDER BY seq DESC LIMIT 1`).Scan(&seq, &id)
	if errors.Is(err, sql.ErrNoRows) {
		// Positions are never given out twice (AUTOINCREMENT), and
		// sqlite_sequence keeps the last one after the rows are gone.
		err = db.r.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'changes'`).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, "", nil
		}
	}
	return seq, id, wrapErr(err, "read last change of %s", db.id)
}

// LastChangeBefore returns the position and id of the latest change event
// stamped before before, and false when there is none. Its cost is the
// changes before that time.
func (db *DB) LastChangeBefore(ctx context.Context, before time.Time) (FeedCursor, bool, error) {
	var cur FeedCursor
	err := db.r.QueryRowContext(ctx, `SELECT seq, id FROM changes
		WHERE seq < coalesce((SELECT seq FROM changes WHERE at >= ? ORDER BY seq LIMIT 1), ?)
		ORDER BY seq DESC LIMIT 1`, formatTime(before), int64(math.MaxInt64)).Scan(&cur.Seq, &cur.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return cur, false, nil
	}
	return cur, err == nil, wrapErr(err, "read changes of %s", db.id)
}

// ChangeIDAt returns the id of the change event at seq, and false when
// there is none there.
func (db *DB) ChangeIDAt(ctx context.Context, seq int64) (string, bool, error) {
	var id string
	err := db.r.QueryRowContext(ctx, `SELECT id FROM changes WHERE seq = ?`, seq).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return id, err == nil, wrapErr(err, "read change of %s", db.id)
}

// PruneBatch is the most change events PruneChanges deletes at a time.
const PruneBatch = 5000

// PruneChanges deletes change events older than before, but none after
// position through, which may not have been taken for delivery yet. It
// deletes at most PruneBatch at a time, so as not to hold up the tenant's
// writers; it returns how many it deleted. A change's time never decreases
// as its position grows, so the oldest changes are the first positions.
func (db *DB) PruneChanges(ctx context.Context, before time.Time, through int64) (int64, error) {
	var n int64
	err := db.Write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM changes WHERE seq <= ?
			AND seq < coalesce((SELECT seq FROM changes WHERE at >= ? ORDER BY seq LIMIT 1), ?)
			AND seq < (SELECT min(seq) FROM changes) + ?`,
			through, formatTime(before), int64(math.MaxInt64), PruneBatch)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, wrapErr(err, "prune changes of %s", db.id)
}
