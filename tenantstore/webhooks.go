package tenantstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/runmerge/runmerge"
)

// This file is the catalog's side of change events: webhook subscriptions,
// their deliveries, the change log that orders every tenant's change events,
// and the feeds that say which tenants have changes not yet taken into it.

// Webhook statuses.
const (
	WebhookActive   = "active"
	WebhookDisabled = "disabled"
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// Webhook is a subscription to change events, as the catalog keeps it.
type Webhook struct {
	ID          string
	TenantID    string // "" for every tenant
	URL         string
	EventTypes  []string
	Description string
	// SealedSecret is the signing secret sealed by package webhook; the
	// secret itself is never stored.
	SealedSecret string
	// Owner is the key that made the subscription, as it was then. KeyID is
	// empty for the root key.
	Owner          runmerge.Principal
	Status         string
	DisabledReason string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// WebhookUpdate is a change to a webhook; nil fields stay as they are.
type WebhookUpdate struct {
	URL            *string
	EventTypes     []string
	Description    *string
	Status         *string
	DisabledReason *string // "" clears it
}

// WebhookFilter selects a page of webhooks in order of id.
type WebhookFilter struct {
	TenantID   *string // only this tenant's; "" for the platform-wide ones
	OwnerKeyID *string // only those made by this key
	After      string
	Limit      int
}

// Delivery is one change event on its way to one webhook.
type Delivery struct {
	ID             string // also the webhook-id header
	WebhookID      string
	TenantID       string
	Gseq           int64 // the change's position in the change log
	ChangeID       string
	EventType      string
	Status         string
	Attempts       int
	NextAttemptAt  *time.Time
	LastAttemptAt  *time.Time
	ResponseStatus int // 0 when no answer came
	LastError      string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// LoggedChange is a change event's entry in the change log: where it is
// stored and what the stream and deliveries filter on.
type LoggedChange struct {
	Gseq        int64
	TenantID    string
	FromCatalog bool  // a tenant.* event, stored in the catalog's tenant_changes
	SourceSeq   int64 // its position where it is stored
	ChangeID    string
	EventType   string
	EventIDs    []string
	At          time.Time
}

// NewDelivery is a delivery to create with a change log entry.
type NewDelivery struct {
	ID        string
	WebhookID string
	Claimed   bool // the dispatcher will send it from memory
	// Created is set by CommitChanges when the delivery was stored; it is
	// false when one for the same webhook and change already existed.
	Created bool
}

// ChangeBatch is what the dispatcher takes into the change log in one
// transaction: entries in order, each with its deliveries, and how far each
// source has been read.
type ChangeBatch struct {
	Entries []*ChangeBatchEntry
	// Cursors maps a tenant to the position and id of the last of its file's
	// changes taken.
	Cursors map[string]FeedCursor
	// TenantChangesCursor, when not zero, is the last tenant_changes row taken.
	TenantChangesCursor int64
}

// ChangeBatchEntry is one change taken into the log. CommitChanges sets
// Change.Gseq.
type ChangeBatchEntry struct {
	Change     LoggedChange
	Deliveries []*NewDelivery
}

// FeedCursor is how far the dispatcher has read a tenant file's changes.
type FeedCursor struct {
	Seq int64
	ID  string
}

// FeedMark is a tenant marked as possibly holding changes not yet logged.
type FeedMark struct {
	TenantID string
	MarkedAt string // as stored, to clear exactly this mark
	Cursor   FeedCursor
}

// AttemptResult is the outcome of one delivery attempt to record.
type AttemptResult struct {
	DeliveryID     string
	Status         string
	Attempts       int
	At             time.Time
	NextAttemptAt  *time.Time
	ResponseStatus int
	Error          string
}

const webhookColumns = `id, tenant_id, url, event_types, description, secret, owner_key_id,
	owner_tenant_id, owner_role, owner_event_ids, status, disabled_reason, created_at, updated_at`

func scanWebhook(s scanner) (*Webhook, error) {
	var w Webhook
	var tenantID, ownerKey, ownerTenant, reason sql.NullString
	var types, ownerEvents, created, updated string
	err := s.Scan(&w.ID, &tenantID, &w.URL, &types, &w.Description, &w.SealedSecret, &ownerKey,
		&ownerTenant, &w.Owner.Role, &ownerEvents, &w.Status, &reason, &created, &updated)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(types), &w.EventTypes); err != nil {
		return nil, fmt.Errorf("webhook %s: event types: %w", w.ID, err)
	}
	if err := json.Unmarshal([]byte(ownerEvents), &w.Owner.EventIDs); err != nil {
		return nil, fmt.Errorf("webhook %s: owner event ids: %w", w.ID, err)
	}
	w.TenantID, w.Owner.KeyID, w.Owner.TenantID = tenantID.String, ownerKey.String, ownerTenant.String
	w.DisabledReason = reason.String
	w.CreatedAt, w.UpdatedAt = parseTime(created), parseTime(updated)
	return &w, nil
}

// CreateWebhook stores w. A tenant that does not exist is ENOTFOUND.
func (c *Catalog) CreateWebhook(ctx context.Context, w *Webhook) error {
	types, err := json.Marshal(nonNil(w.EventTypes))
	if err != nil {
		return err
	}
	ownerEvents, err := json.Marshal(nonNil(w.Owner.EventIDs))
	if err != nil {
		return err
	}
	_, err = c.w.ExecContext(ctx, `INSERT INTO webhooks (`+webhookColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		w.ID, nullable(w.TenantID), w.URL, string(types), w.Description, w.SealedSecret,
		nullable(w.Owner.KeyID), nullable(w.Owner.TenantID), w.Owner.Role, string(ownerEvents),
		w.Status, nullable(w.DisabledReason), formatTime(w.CreatedAt), formatTime(w.UpdatedAt))
	if isConstraint(err) {
		return runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")
	}
	return wrapErr(err, "create webhook")
}

// Webhook returns webhook id, or an ENOTFOUND error.
func (c *Catalog) Webhook(ctx context.Context, id string) (*Webhook, error) {
	row := c.r.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`, id)
	w, err := scanWebhook(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errWebhookNotFound
	}
	return w, wrapErr(err, "read webhook %s", id)
}

var errWebhookNotFound = runmerge.Errorf(runmerge.ENOTFOUND, "webhook not found")

// Webhooks returns a page of webhooks in order of id. With f.Limit 0 it
// returns every webhook that matches.
func (c *Catalog) Webhooks(ctx context.Context, f WebhookFilter) ([]*Webhook, error) {
	q := `SELECT ` + webhookColumns + ` FROM webhooks WHERE id > ?`
	args := []any{f.After}
	if f.TenantID != nil {
		if *f.TenantID == "" {
			q += ` AND tenant_id IS NULL`
		} else {
			q += ` AND tenant_id = ?`
			args = append(args, *f.TenantID)
		}
	}
	if f.OwnerKeyID != nil {
		q += ` AND owner_key_id IS ?`
		args = append(args, nullable(*f.OwnerKeyID))
	}
	q += ` ORDER BY id`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := c.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	var list []*Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("list webhooks: %w", err)
		}
		list = append(list, w)
	}
	return list, wrapErr(rows.Err(), "list webhooks")
}

// UpdateWebhook applies upd to webhook id and returns it as it is now.
func (c *Catalog) UpdateWebhook(ctx context.Context, id string, upd WebhookUpdate) (*Webhook, error) {
	var types any
	if upd.EventTypes != nil {
		b, err := json.Marshal(upd.EventTypes)
		if err != nil {
			return nil, err
		}
		types = string(b)
	}
	var reason any
	clearReason := 0
	if upd.DisabledReason != nil {
		reason = nullable(*upd.DisabledReason)
		clearReason = 1
	}
	row := c.w.QueryRowContext(ctx, `UPDATE webhooks SET
			url = coalesce(?, url),
			event_types = coalesce(?, event_types),
			description = coalesce(?, description),
			status = coalesce(?, status),
			disabled_reason = CASE WHEN ? THEN ? ELSE disabled_reason END,
			updated_at = ?
		WHERE id = ? RETURNING `+webhookColumns,
		upd.URL, types, upd.Description, upd.Status, clearReason, reason,
		formatTime(runmerge.Now()), id)
	w, err := scanWebhook(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errWebhookNotFound
	}
	return w, wrapErr(err, "update webhook %s", id)
}

// DeleteWebhook removes webhook id and its deliveries.
func (c *Catalog) DeleteWebhook(ctx context.Context, id string) error {
	res, err := c.w.ExecContext(ctx, `DELETE FROM webhooks WHERE id = ?`, id)
	if err != nil {
		return wrapErr(err, "delete webhook %s", id)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errWebhookNotFound
	}
	return nil
}

const deliveryColumns = `id, webhook_id, tenant_id, gseq, change_id, event_type, status, attempts,
	next_attempt_at, last_attempt_at, response_status, last_error, created_at, updated_at`

func scanDelivery(s scanner) (*Delivery, error) {
	var d Delivery
	var next, last, lastErr sql.NullString
	var status sql.NullInt64
	var created, updated string
	err := s.Scan(&d.ID, &d.WebhookID, &d.TenantID, &d.Gseq, &d.ChangeID, &d.EventType, &d.Status,
		&d.Attempts, &next, &last, &status, &lastErr, &created, &updated)
	if err != nil {
		return nil, err
	}
	d.NextAttemptAt, d.LastAttemptAt = parseTimePtr(next), parseTimePtr(last)
	d.ResponseStatus, d.LastError = int(status.Int64), lastErr.String
	d.CreatedAt, d.UpdatedAt = parseTime(created), parseTime(updated)
	return &d, nil
}

// Deliveries returns a page of webhook webhookID's deliveries, newest
// first: those whose id sorts before before, when it is not empty.
func (c *Catalog) Deliveries(ctx context.Context, webhookID, before string, limit int) ([]*Delivery, error) {
	q := `SELECT ` + deliveryColumns + ` FROM webhook_deliveries WHERE webhook_id = ?`
	args := []any{webhookID}
	if before != "" {
		q += ` AND id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := c.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var list []*Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("list deliveries: %w", err)
		}
		list = append(list, d)
	}
	return list, wrapErr(rows.Err(), "list deliveries")
}

var errDeliveryNotFound = runmerge.Errorf(runmerge.ENOTFOUND, "delivery not found")

// Delivery returns delivery id of webhook webhookID, or an ENOTFOUND error.
func (c *Catalog) Delivery(ctx context.Context, webhookID, id string) (*Delivery, error) {
	row := c.r.QueryRowContext(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE id = ? AND webhook_id = ?`, id, webhookID)
	d, err := scanDelivery(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errDeliveryNotFound
	}
	return d, wrapErr(err, "read delivery %s", id)
}

// RetryDelivery makes delivery id of webhook webhookID due now, whatever
// its status, unless this server holds it to send (ECONFLICT then).
func (c *Catalog) RetryDelivery(ctx context.Context, webhookID, id string) (*Delivery, error) {
	now := formatTime(runmerge.Now())
	row := c.w.QueryRowContext(ctx, `UPDATE webhook_deliveries
		SET status = 'pending', next_attempt_at = ?, updated_at = ?
		WHERE id = ? AND webhook_id = ? AND claimed = 0 RETURNING `+deliveryColumns,
		now, now, id, webhookID)
	d, err := scanDelivery(row)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := c.Delivery(ctx, webhookID, id); err != nil {
			return nil, err
		}
		return nil, runmerge.Errorf(runmerge.ECONFLICT, "the delivery is being sent now; try again shortly")
	}
	return d, wrapErr(err, "retry delivery %s", id)
}

// ClaimDueDeliveries marks up to limit pending deliveries that are due at
// now, and whose webhook is active and not in skip, as held by this server,
// and returns them, the longest due first.
func (c *Catalog) ClaimDueDeliveries(ctx context.Context, now time.Time, skip []string,
	limit int) ([]*Delivery, error) {
	q := `UPDATE webhook_deliveries SET claimed = 1 WHERE id IN (
		SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
		WHERE d.status = 'pending' AND d.claimed = 0 AND d.next_attempt_at <= ? AND w.status = 'active'`
	args := []any{formatTime(now)}
	if len(skip) > 0 {
		q += ` AND d.webhook_id NOT IN (` + strings.TrimSuffix(strings.Repeat("?,", len(skip)), ",") + `)`
		for _, id := range skip {
			args = append(args, id)
		}
	}
	q += ` ORDER BY d.next_attempt_at LIMIT ?) RETURNING ` + deliveryColumns
	args = append(args, limit)
	rows, err := c.w.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrapErr(err, "claim deliveries")
	}
	defer rows.Close()
	var list []*Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("claim deliveries: %w", err)
		}
		list = append(list, d)
	}
	return list, wrapErr(rows.Err(), "claim deliveries")
}

// NextDueDelivery returns when the earliest unclaimed pending delivery is
// due, or nil when there is none. It reads one index entry; the delivery
// may belong to a disabled webhook, which ClaimDueDeliveries skips.
func (c *Catalog) NextDueDelivery(ctx context.Context) (*time.Time, error) {
	var at sql.NullString
	err := c.r.QueryRowContext(ctx, `SELECT next_attempt_at FROM webhook_deliveries
		WHERE status = 'pending' AND claimed = 0 ORDER BY next_attempt_at LIMIT 1`).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, wrapErr(err, "next due delivery")
	}
	return parseTimePtr(at), nil
}

// ReleaseClaims clears every claim, for a server starting: no delivery is
// held in memory yet.
func (c *Catalog) ReleaseClaims(ctx context.Context) (int64, error) {
	res, err := c.w.ExecContext(ctx, `UPDATE webhook_deliveries SET claimed = 0 WHERE claimed = 1`)
	if err != nil {
		return 0, wrapErr(err, "release deliveries")
	}
	return res.RowsAffected()
}

// ReleaseDeliveries clears the claim on deliveries this server will not send
// after all, leaving them as they were.
func (c *Catalog) ReleaseDeliveries(ctx context.Context, ids []string) error {
	return c.inTx(ctx, "release deliveries", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE webhook_deliveries SET claimed = 0 WHERE id = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, id := range ids {
			if _, err := stmt.ExecContext(ctx, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// RecordAttempts stores the outcome of delivery attempts and releases the
// deliveries' claims, in one transaction.
func (c *Catalog) RecordAttempts(ctx context.Context, results []AttemptResult) error {
	prepared, err := c.writerStmt(ctx, recordAttemptQuery)
	if err != nil {
		return wrapErr(err, "record delivery attempts")
	}
	return c.inTx(ctx, "record delivery attempts", func(tx *sql.Tx) error {
		stmt := tx.StmtContext(ctx, prepared)
		for _, r := range results {
			var status any
			if r.ResponseStatus != 0 {
				status = r.ResponseStatus
			}
			at := formatTime(r.At)
			if _, err := stmt.ExecContext(ctx, r.Status, r.Attempts, at, formatTimePtr(r.NextAttemptAt),
				status, nullable(r.Error), at, r.DeliveryID); err != nil {
				return err
			}
		}
		return nil
	})
}

// writerStmts holds statements prepared once on a catalog's writer, by
// handle and SQL text, for the dispatcher's frequent writes: compiling
// them on every transaction costs more than running them. database/sql
// finalizes them when the handle closes.
var writerStmts sync.Map // writerStmtKey → *sql.Stmt

type writerStmtKey struct {
	db    *sql.DB
	query string
}

// writerStmt returns query prepared on the catalog's writer. Call it only
// outside a transaction: the writer has one connection, which a
// transaction holds.
func (c *Catalog) writerStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	key := writerStmtKey{c.w, query}
	if s, ok := writerStmts.Load(key); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := c.w.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := writerStmts.LoadOrStore(key, s); loaded {
		s.Close()
		return prev.(*sql.Stmt), nil
	}
	return s, nil
}

// inTx runs fn in a write transaction of the catalog.
func (c *Catalog) inTx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := c.w.BeginTx(ctx, nil)
	if err != nil {
		return wrapErr(err, "%s", what)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return wrapErr(err, "%s", what)
	}
	return wrapErr(tx.Commit(), "%s", what)
}

// MarkChanges marks tenants as possibly holding changes the dispatcher has
// not logged. It is called before a write, so that a change committed just
// before a crash is still found after the restart.
func (c *Catalog) MarkChanges(ctx context.Context, tenantIDs []string, at time.Time) error {
	return c.inTx(ctx, "mark tenant changes", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO change_feeds (tenant_id, marked_at)
			SELECT id, ? FROM tenants WHERE id = ?
			ON CONFLICT (tenant_id) DO UPDATE SET marked_at = excluded.marked_at`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, id := range tenantIDs {
			if _, err := stmt.ExecContext(ctx, formatTime(at), id); err != nil {
				return err
			}
		}
		return nil
	})
}

// MarkedFeeds returns every marked tenant with its feed's cursor.
func (c *Catalog) MarkedFeeds(ctx context.Context) ([]FeedMark, error) {
	rows, err := c.r.QueryContext(ctx, `SELECT tenant_id, marked_at, cursor, coalesce(cursor_id, '')
		FROM change_feeds WHERE marked_at IS NOT NULL`)
	if err != nil {
		return nil, wrapErr(err, "list marked feeds")
	}
	defer rows.Close()
	var list []FeedMark
	for rows.Next() {
		var m FeedMark
		if err := rows.Scan(&m.TenantID, &m.MarkedAt, &m.Cursor.Seq, &m.Cursor.ID); err != nil {
			return nil, err
		}
		list = append(list, m)
	}
	return list, wrapErr(rows.Err(), "list marked feeds")
}

// Feed returns how far the dispatcher has read tenant tenantID's changes;
// ok is false when the tenant has no feed (or does not exist).
func (c *Catalog) Feed(ctx context.Context, tenantID string) (cur FeedCursor, ok bool, err error) {
	err = c.r.QueryRowContext(ctx, `SELECT cursor, coalesce(cursor_id, '') FROM change_feeds
		WHERE tenant_id = ?`, tenantID).Scan(&cur.Seq, &cur.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return cur, false, nil
	}
	return cur, err == nil, wrapErr(err, "read feed of %s", tenantID)
}

// SetFeed moves tenant tenantID's feed to cur, creating it if need be.
func (c *Catalog) SetFeed(ctx context.Context, tenantID string, cur FeedCursor) error {
	_, err := c.w.ExecContext(ctx, `INSERT INTO change_feeds (tenant_id, cursor, cursor_id)
		SELECT id, ?, ? FROM tenants WHERE id = ?
		ON CONFLICT (tenant_id) DO UPDATE SET cursor = excluded.cursor, cursor_id = excluded.cursor_id`,
		cur.Seq, nullable(cur.ID), tenantID)
	return wrapErr(err, "set feed of %s", tenantID)
}

// ClearMark removes tenant tenantID's mark if it is still markedAt: a mark
// set since, by a write that has begun, stays.
func (c *Catalog) ClearMark(ctx context.Context, tenantID, markedAt string) (bool, error) {
	res, err := c.w.ExecContext(ctx, `UPDATE change_feeds SET marked_at = NULL
		WHERE tenant_id = ? AND marked_at = ?`, tenantID, markedAt)
	if err != nil {
		return false, wrapErr(err, "clear mark of %s", tenantID)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// TenantChangesCursor returns how far the dispatcher has taken the
// tenant.* events into the change log.
func (c *Catalog) TenantChangesCursor(ctx context.Context) (int64, error) {
	var seq int64
	err := c.r.QueryRowContext(ctx, `SELECT tenant_changes_cursor FROM change_state WHERE id = 1`).Scan(&seq)
	return seq, wrapErr(err, "read change state")
}

// TenantChangesAfter returns up to limit tenant.* events after position seq.
func (c *Catalog) TenantChangesAfter(ctx context.Context, seq int64, limit int) ([]*runmerge.Change, error) {
	return c.tenantChanges(ctx, `WHERE seq > ? ORDER BY seq LIMIT ?`, seq, limit)
}

// TenantChangesAt returns the tenant.* events at the given positions that
// still exist, by position.
func (c *Catalog) TenantChangesAt(ctx context.Context, seqs []int64) (map[int64]*runmerge.Change, error) {
	out := make(map[int64]*runmerge.Change, len(seqs))
	for _, s := range seqs {
		list, err := c.tenantChanges(ctx, `WHERE seq = ?`, s)
		if err != nil {
			return nil, err
		}
		for _, ch := range list {
			out[ch.Seq] = ch
		}
	}
	return out, nil
}

func (c *Catalog) tenantChanges(ctx context.Context, where string, args ...any) ([]*runmerge.Change, error) {
	rows, err := c.r.QueryContext(ctx, `SELECT seq, id, event_type, tenant_id, at, data
		FROM tenant_changes `+where, args...)
	if err != nil {
		return nil, wrapErr(err, "read tenant changes")
	}
	defer rows.Close()
	var list []*runmerge.Change
	for rows.Next() {
		ch := &runmerge.Change{}
		var at, data string
		if err := rows.Scan(&ch.Seq, &ch.ID, &ch.Type, &ch.TenantID, &at, &data); err != nil {
			return nil, err
		}
		ch.Timestamp, ch.Data = parseTime(at), json.RawMessage(data)
		list = append(list, ch)
	}
	return list, wrapErr(rows.Err(), "read tenant changes")
}

// Statements of CommitChanges and RecordAttempts.
const (
	insertChangeLogQuery = `INSERT INTO change_log
		(tenant_id, from_catalog, source_seq, change_id, event_type, event_ids, at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING gseq`
	insertDeliveryQuery = `INSERT INTO webhook_deliveries
		(id, webhook_id, tenant_id, gseq, change_id, event_type, next_attempt_at, claimed,
		 created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	setFeedQuery = `INSERT INTO change_feeds (tenant_id, cursor, cursor_id)
		SELECT id, ?, ? FROM tenants WHERE id = ?
		ON CONFLICT (tenant_id) DO UPDATE SET cursor = excluded.cursor, cursor_id = excluded.cursor_id`
	recordAttemptQuery = `UPDATE webhook_deliveries SET status = ?, attempts = ?,
		last_attempt_at = ?, next_attempt_at = ?, response_status = ?, last_error = ?,
		claimed = 0, updated_at = ? WHERE id = ?`
)

// CommitChanges takes a batch into the change log in one transaction: its
// entries (setting each Change.Gseq), their deliveries (setting Created),
// and the cursors of the sources read.
func (c *Catalog) CommitChanges(ctx context.Context, b *ChangeBatch) error {
	var stmts [3]*sql.Stmt
	for i, q := range []string{insertChangeLogQuery, insertDeliveryQuery, setFeedQuery} {
		var err error
		if stmts[i], err = c.writerStmt(ctx, q); err != nil {
			return wrapErr(err, "log changes")
		}
	}
	return c.inTx(ctx, "log changes", func(tx *sql.Tx) error {
		logStmt := tx.StmtContext(ctx, stmts[0])
		delStmt := tx.StmtContext(ctx, stmts[1])
		feedStmt := tx.StmtContext(ctx, stmts[2])
		now := formatTime(runmerge.Now())
		for _, e := range b.Entries {
			ch := &e.Change
			eventIDs, err := marshalIDs(ch.EventIDs)
			if err != nil {
				return err
			}
			err = logStmt.QueryRowContext(ctx, ch.TenantID, boolInt(ch.FromCatalog), ch.SourceSeq,
				ch.ChangeID, ch.EventType, eventIDs, formatTime(ch.At)).Scan(&ch.Gseq)
			if err != nil {
				return err
			}
			for _, d := range e.Deliveries {
				res, err := delStmt.ExecContext(ctx, d.ID, d.WebhookID, ch.TenantID, ch.Gseq,
					ch.ChangeID, ch.EventType, now, boolInt(d.Claimed), now, now)
				if err != nil {
					return err
				}
				n, _ := res.RowsAffected()
				d.Created = n > 0
			}
		}
		for tenantID, cur := range b.Cursors {
			if _, err := feedStmt.ExecContext(ctx, cur.Seq, nullable(cur.ID), tenantID); err != nil {
				return err
			}
		}
		if b.TenantChangesCursor > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE change_state SET tenant_changes_cursor = ?
				WHERE id = 1`, b.TenantChangesCursor); err != nil {
				return err
			}
		}
		return nil
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

const loggedChangeColumns = `gseq, tenant_id, from_catalog, source_seq, change_id, event_type, event_ids, at`

func scanLoggedChange(s scanner) (*LoggedChange, error) {
	var l LoggedChange
	var fromCatalog int
	var eventIDs, at string
	err := s.Scan(&l.Gseq, &l.TenantID, &fromCatalog, &l.SourceSeq, &l.ChangeID, &l.EventType, &eventIDs, &at)
	if err != nil {
		return nil, err
	}
	if err := unmarshalIDs(eventIDs, &l.EventIDs); err != nil {
		return nil, fmt.Errorf("change %s: event ids: %w", l.ChangeID, err)
	}
	l.FromCatalog, l.At = fromCatalog == 1, parseTime(at)
	return &l, nil
}

// ChangeLogAfter returns up to limit change log entries after position
// gseq, of tenant tenantID only when it is not empty.
func (c *Catalog) ChangeLogAfter(ctx context.Context, gseq int64, tenantID string,
	limit int) ([]*LoggedChange, error) {
	q := `SELECT ` + loggedChangeColumns + ` FROM change_log WHERE gseq > ?`
	args := []any{gseq}
	if tenantID != "" {
		q += ` AND tenant_id = ?`
		args = append(args, tenantID)
	}
	q += ` ORDER BY gseq LIMIT ?`
	args = append(args, limit)
	return c.changeLog(ctx, q, args...)
}

// ChangeLogAt returns the change log entry at position gseq, or an
// ENOTFOUND error when it has been pruned.
func (c *Catalog) ChangeLogAt(ctx context.Context, gseq int64) (*LoggedChange, error) {
	list, err := c.changeLog(ctx, `SELECT `+loggedChangeColumns+` FROM change_log WHERE gseq = ?`, gseq)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, runmerge.Errorf(runmerge.ENOTFOUND, "change not found")
	}
	return list[0], nil
}

// ChangeLogAtPositions returns the change log entries at the given
// positions that are still there, by position.
func (c *Catalog) ChangeLogAtPositions(ctx context.Context, gseqs []int64) (map[int64]*LoggedChange, error) {
	out := make(map[int64]*LoggedChange, len(gseqs))
	for len(gseqs) > 0 {
		n := min(len(gseqs), 500)
		args := make([]any, n)
		for i, g := range gseqs[:n] {
			args[i] = g
		}
		list, err := c.changeLog(ctx, `SELECT `+loggedChangeColumns+` FROM change_log WHERE gseq IN (`+
			strings.TrimSuffix(strings.Repeat("?,", n), ",")+`)`, args...)
		if err != nil {
			return nil, err
		}
		for _, l := range list {
			out[l.Gseq] = l
		}
		gseqs = gseqs[n:]
	}
	return out, nil
}

func (c *Catalog) changeLog(ctx context.Context, q string, args ...any) ([]*LoggedChange, error) {
	rows, err := c.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrapErr(err, "read change log")
	}
	defer rows.Close()
	var list []*LoggedChange
	for rows.Next() {
		l, err := scanLoggedChange(rows)
		if err != nil {
			return nil, fmt.Errorf("read change log: %w", err)
		}
		list = append(list, l)
	}
	return list, wrapErr(rows.Err(), "read change log")
}

// LastChangeLogPosition returns the position of the latest change log
// entry, or 0.
func (c *Catalog) LastChangeLogPosition(ctx context.Context) (int64, error) {
	var gseq int64
	err := c.r.QueryRowContext(ctx, `SELECT coalesce(max(gseq), 0) FROM change_log`).Scan(&gseq)
	return gseq, wrapErr(err, "read change log position")
}

// LastChangeLogTime returns the time of the latest change in the change
// log, or the zero time when it is empty.
func (c *Catalog) LastChangeLogTime(ctx context.Context) (time.Time, error) {
	var at sql.NullString
	err := c.r.QueryRowContext(ctx, `SELECT max(at) FROM change_log`).Scan(&at)
	if err != nil || !at.Valid {
		return time.Time{}, wrapErr(err, "read change log time")
	}
	return parseTime(at.String), nil
}

// PruneChangeEvents deletes, in batches of at most limit rows, change log
// entries, tenant.* events already logged, and deliveries made before
// before. It returns how many rows it deleted in all.
func (c *Catalog) PruneChangeEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	cutoff := formatTime(before)
	var total int64
	for _, q := range []string{
		`DELETE FROM change_log WHERE gseq IN (SELECT gseq FROM change_log WHERE at < ? LIMIT ?)`,
		`DELETE FROM webhook_deliveries WHERE id IN
			(SELECT id FROM webhook_deliveries WHERE created_at < ? AND claimed = 0 LIMIT ?)`,
		`DELETE FROM tenant_changes WHERE seq IN (SELECT seq FROM tenant_changes
			WHERE at < ? AND seq <= (SELECT tenant_changes_cursor FROM change_state) LIMIT ?)`,
	} {
		for {
			res, err := c.w.ExecContext(ctx, q, cutoff, limit)
			if err != nil {
				return total, wrapErr(err, "prune change events")
			}
			n, _ := res.RowsAffected()
			total += n
			if n < int64(limit) {
				break
			}
		}
	}
	return total, nil
}
