package webhook

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// Bounds of one collection round.
const (
	collectBatch   = 500 // changes read from one source
	collectTenants = 64  // tenants read
)

// Above gapRate changes a second the gap between rounds grows with the
// rate, up to maxGapFactor times CollectGap (see Config.CollectGap).
const (
	gapRate      = 1000
	maxGapFactor = 4
)

// feedState is what the collector knows of one tenant's feed.
type feedState struct {
	cursor   tenantstore.FeedCursor
	db       *tenantstore.DB // the open file the cursor was last checked against
	verified bool            // the cursor was checked against the file since it was loaded
	seenMark string
	// caughtUp is when the latest scan that reached the end of the
	// tenant's changes began.
	caughtUp time.Time
	prunedAt time.Time
}

// collector takes change events from tenant files and tenant_changes into
// the change log, one round at a time, on one goroutine: the change log
// has one writer, so positions are handed out in the order of commits.
type collector struct {
	d        *Dispatcher
	feeds    map[string]*feedState
	tcCursor int64
	// changedSince is where the next sweep looks for tenants whose
	// catalog changed_at moved: writes of other processes, which do not
	// mark their tenants before they write.
	changedSince time.Time

	// wantedAt is when someone last wanted changes; the collector stops
	// following IdleAfter later. prunedAt is when the outboxes were last
	// pruned while it did not follow.
	wantedAt time.Time
	prunedAt time.Time
	// catching is the catch-up under way since the collector started
	// following, nil when there is none.
	catching *catchUp
}

// catchUp is what the collector must still take, after it starts
// following, before the changes written while it did not follow are all
// in the change log.
type catchUp struct {
	tenants       map[string]bool
	tenantChanges bool
	done          chan struct{}
}

func newCollector(d *Dispatcher, tcCursor int64) *collector {
	return &collector{d: d, feeds: make(map[string]*feedState), tcCursor: tcCursor,
		prunedAt: time.Now()}
}

func (c *collector) run() {
	defer c.d.loops.Done()
	sweep := time.NewTicker(c.d.cfg.SweepInterval)
	defer sweep.Stop()
	var last time.Time
	var rate float64 // changes logged a second, smoothed
	for {
		if !c.d.following.Load() {
			if !c.idle(sweep.C) {
				return
			}
			continue
		}
		if !c.wanted() && c.stopFollowing() {
			continue
		}
		gap := time.Duration(float64(c.d.cfg.CollectGap) * min(max(rate/gapRate, 1), maxGapFactor))
		if wait := gap - time.Since(last); wait > 0 {
			select {
			case <-c.d.stopping:
				return
			case <-time.After(wait):
			}
		}
		start, logged := time.Now(), c.d.stats.logged.Load()
		more := c.round()
		if !last.IsZero() {
			n := float64(c.d.stats.logged.Load() - logged)
			rate = 0.8*rate + 0.2*n/start.Sub(last).Seconds()
		}
		last = start
		if more {
			select {
			case <-c.d.stopping:
				return
			case r := <-c.d.resets:
				r.done <- c.reset(r.tenantID)
			default:
			}
			continue
		}
		select {
		case <-c.d.stopping:
			return
		case <-c.d.wake:
		case <-sweep.C:
			c.sweep()
		case r := <-c.d.resets:
			r.done <- c.reset(r.tenantID)
		}
	}
}

// wanted reports whether anyone may want changes now or did within
// IdleAfter: an active webhook, an open stream, or a catch-up under way,
// which someone waits for.
func (c *collector) wanted() bool {
	d := c.d
	if d.listeners.Load() == 0 && c.catching == nil {
		hooks, err := d.hooks.get(d.sendCtx)
		if err == nil && hooks.active == 0 {
			return time.Since(c.wantedAt) < d.cfg.IdleAfter
		}
		// A webhook may be active when they cannot be read.
	}
	c.wantedAt = time.Now()
	return true
}

// awaited reports whether someone waits for the collector to catch up.
func (c *collector) awaited() bool {
	c.d.followMu.Lock()
	defer c.d.followMu.Unlock()
	return c.d.caughtUp != nil
}

// idle waits, following nothing, until someone may want changes, and
// starts following then. Meanwhile it prunes the outboxes, once per prune
// interval. It returns false when the dispatcher stops.
func (c *collector) idle(sweep <-chan time.Time) bool {
	d := c.d
	for {
		if c.wanted() || c.awaited() {
			c.startFollowing()
			return true
		}
		if time.Since(c.prunedAt) >= d.cfg.PruneInterval {
			c.prunedAt = time.Now()
			c.pruneIdle()
		}
		select {
		case <-d.stopping:
			return false
		case <-d.wake:
		case <-sweep:
			d.forgetMarks()
		case r := <-d.resets:
			r.done <- c.reset(r.tenantID)
		}
	}
}

// startFollowing has the collector follow the tenant files again. Every
// marked tenant, and every tenant changed since the last sweep, is read
// from its feed's cursor: that takes what was written while nobody
// followed. Streams that start from the present wait for it (Attach).
func (c *collector) startFollowing() {
	d := c.d
	d.followMu.Lock()
	// Set before the marks are read: a write that commits after this is
	// notified, and one that committed before has its tenant marked.
	d.following.Store(true)
	if d.caughtUp == nil {
		d.caughtUp = make(chan struct{})
	}
	c.catching = &catchUp{tenants: make(map[string]bool), tenantChanges: true, done: d.caughtUp}
	d.followMu.Unlock()

	// Feeds are loaded again, so that the sweep notifies every marked
	// tenant, whatever it saw of it before.
	c.feeds = make(map[string]*feedState)
	if err := c.sweep(); err != nil {
		// The streams waiting go on; the next sweep finds the tenants.
		c.finishCatchUp()
		return
	}
	d.dirtyMu.Lock()
	for id := range d.dirty {
		c.catching.tenants[id] = true
	}
	d.dirtyMu.Unlock()
	d.log.Debug("following tenant changes", "tenants", len(c.catching.tenants))
}

// stopFollowing stops following the tenant files, unless a stream has
// just opened. Tenants already noted as changed stay noted. It reports
// whether it stopped.
func (c *collector) stopFollowing() bool {
	d := c.d
	d.followMu.Lock()
	if d.listeners.Load() > 0 {
		d.followMu.Unlock()
		return false
	}
	d.following.Store(false)
	d.followMu.Unlock()
	c.finishCatchUp()
	c.feeds = make(map[string]*feedState)
	d.log.Debug("no subscriber: not following tenant changes")
	return true
}

// pruneIdle prunes, while the collector does not follow, the outboxes of
// the marked tenants: those written since it stopped. Changes older than
// the retention go whether they were taken into the change log or not,
// since no stream can resume to them any more and no webhook wanted them
// (none was active, or the collector would have followed); the feed moves
// past them. A mark older than the retention has no change left to cover
// and is cleared. The cost is the marked tenants, once per prune interval.
func (c *collector) pruneIdle() {
	d := c.d
	ctx := d.sendCtx
	marks, err := d.catalog.MarkedFeeds(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("read marked tenants", "error", err)
		}
		return
	}
	before := time.Now().Add(-d.cfg.Retention)
	var pruned int64
	for _, m := range marks {
		n, err := c.pruneFeed(ctx, m, before)
		pruned += n
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.log.Warn("prune tenant changes", "tenant", m.TenantID, "error", err)
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m.MarkedAt)
		if err == nil && at.Before(before.Add(-createdSlack)) {
			if _, err := d.catalog.ClearMark(ctx, m.TenantID, m.MarkedAt); err != nil {
				d.log.Warn("clear tenant mark", "tenant", m.TenantID, "error", err)
			}
		}
	}
	if pruned > 0 {
		d.log.Info("pruned tenant changes", "tenants", len(marks), "count", pruned)
	}
}

// pruneFeed moves tenant m's feed past its changes older than before and
// deletes them, returning how many it deleted.
func (c *collector) pruneFeed(ctx context.Context, m tenantstore.FeedMark,
	before time.Time) (int64, error) {
	l, err := c.d.store.Pool.Acquire(ctx, m.TenantID)
	if runmerge.ErrorCode(err) == runmerge.ENOTFOUND {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	defer l.Release()
	db := l.DB()
	cur, ok, err := db.LastChangeBefore(ctx, before)
	if err != nil || !ok {
		return 0, err
	}
	if cur.Seq > m.Cursor.Seq {
		if err := c.d.catalog.SetFeed(ctx, m.TenantID, cur); err != nil {
			return 0, err
		}
	}
	var total int64
	for {
		n, err := db.PruneChanges(ctx, before, max(cur.Seq, m.Cursor.Seq))
		total += n
		if err != nil || n < tenantstore.PruneBatch {
			return total, err
		}
	}
}

// caught notes that tenants ids were read to the end of their changes, or
// are gone, and ends the catch-up when nothing is left to take.
func (c *collector) caught(ids []string, tenantChanges bool) {
	if c.catching == nil {
		return
	}
	for _, id := range ids {
		delete(c.catching.tenants, id)
	}
	if tenantChanges {
		c.catching.tenantChanges = false
	}
	if len(c.catching.tenants) == 0 && !c.catching.tenantChanges {
		c.finishCatchUp()
	}
}

// finishCatchUp ends the catch-up under way, if any, releasing the streams
// that wait for it.
func (c *collector) finishCatchUp() {
	d := c.d
	d.followMu.Lock()
	defer d.followMu.Unlock()
	if c.catching != nil {
		close(c.catching.done)
		c.catching = nil
		d.caughtUp = nil
	}
}

// takeDirty removes up to n tenants from the dirty set and returns them,
// and whether more are left.
func (c *collector) takeDirty(n int) ([]string, bool) {
	d := c.d
	d.dirtyMu.Lock()
	defer d.dirtyMu.Unlock()
	ids := make([]string, 0, min(n, len(d.dirty)))
	for id := range d.dirty {
		if len(ids) == n {
			break
		}
		ids = append(ids, id)
		delete(d.dirty, id)
	}
	return ids, len(d.dirty) > 0
}

func (c *collector) isDirty(id string) bool {
	c.d.dirtyMu.Lock()
	defer c.d.dirtyMu.Unlock()
	return c.d.dirty[id]
}

// sweep reads the marked tenants from the catalog: a mark the collector
// has not seen means changes it may not have been told of (written before
// a restart, or by another process). A tenant whose mark is old, and that
// has been read to the end since, loses its mark. The cost is the number of
// marked tenants, those written to in the last few minutes.
func (c *collector) sweep() error {
	ctx := c.d.sendCtx
	marks, err := c.d.catalog.MarkedFeeds(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.d.log.Warn("read marked tenants", "error", err)
		}
		return err
	}
	c.d.tenantsChanged.Store(true)
	c.d.forgetMarks()
	now := time.Now()
	c.findChanged(ctx, now)
	marked := make(map[string]bool, len(marks))
	for _, m := range marks {
		marked[m.TenantID] = true
		st := c.feeds[m.TenantID]
		if st == nil {
			c.feeds[m.TenantID] = &feedState{cursor: m.Cursor, seenMark: m.MarkedAt,
				prunedAt: time.Now().Add(-rand.N(c.d.cfg.PruneInterval))}
			c.d.Notify(m.TenantID)
			continue
		}
		if m.MarkedAt != st.seenMark {
			st.seenMark = m.MarkedAt
			c.d.Notify(m.TenantID)
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m.MarkedAt)
		if err != nil || now.Sub(at) < c.d.cfg.QuietPeriod || c.isDirty(m.TenantID) ||
			!st.caughtUp.After(at.Add(markWindow+markSlack)) {
			continue
		}
		if ok, err := c.d.catalog.ClearMark(ctx, m.TenantID, m.MarkedAt); err != nil {
			c.d.log.Warn("clear tenant mark", "tenant", m.TenantID, "error", err)
		} else if ok {
			delete(c.feeds, m.TenantID)
		}
	}
	// Forget feeds that are neither marked nor waiting: they load again
	// from the catalog when next needed, so memory follows the active
	// tenants only.
	for id, st := range c.feeds {
		if !marked[id] && !st.caughtUp.IsZero() && !c.isDirty(id) {
			delete(c.feeds, id)
		}
	}
	return nil
}

// findChanged looks for tenants whose records changed (by the catalog's
// changed_at, which every process's store keeps) since the last sweep and
// that the collector has not read since: the CLI writing beside the server,
// say. Its cost is the tenants changed since the last sweep.
func (c *collector) findChanged(ctx context.Context, now time.Time) {
	if c.changedSince.IsZero() {
		// Since shortly before the last change the log holds: what changed
		// while no dispatcher ran.
		c.changedSince = now.Add(-c.d.cfg.QuietPeriod)
		last, err := c.d.catalog.LastChangeLogTime(ctx)
		if err == nil && !last.IsZero() && last.Add(-time.Minute).Before(c.changedSince) {
			c.changedSince = last.Add(-time.Minute)
		}
	}
	var after *tenantstore.TenantChange
	for {
		list, err := c.d.catalog.TenantsChangedSince(ctx, c.changedSince, after, 1000)
		if err != nil {
			if ctx.Err() == nil {
				c.d.log.Warn("read changed tenants", "error", err)
			}
			return
		}
		for _, tc := range list {
			if st := c.feeds[tc.TenantID]; st == nil || st.caughtUp.Before(tc.ChangedAt) {
				c.d.Notify(tc.TenantID)
			}
		}
		if len(list) < 1000 {
			break
		}
		after = &list[len(list)-1]
	}
	// changed_at is written just after a commit, and another process's
	// clock may differ a little: look back a few seconds each time.
	c.changedSince = now.Add(-5 * time.Second)
}

// round takes one batch into the change log. It reports whether more is
// waiting.
func (c *collector) round() bool {
	ctx := c.d.sendCtx
	start := time.Now()
	defer func() { c.d.stats.collectNanos.Add(int64(time.Since(start))) }()
	// Tenants beyond this round's share wait for the next round, at once.
	ids, more := c.takeDirty(collectTenants)
	c.d.stats.tenantReads.Add(int64(len(ids)))
	batch := &tenantstore.ChangeBatch{Cursors: make(map[string]tenantstore.FeedCursor)}
	var events []*Event
	// Tenants read to the end, or given up on for now, for the catch-up.
	done := make([]string, 0, len(ids))
	for _, id := range ids {
		n, err := c.readTenant(ctx, id, batch, &events)
		if err != nil {
			if ctx.Err() == nil {
				// The sweep brings the tenant back, as it is still marked
				// and its feed is loaded again.
				c.d.log.Warn("read tenant changes", "tenant", id, "error", err)
			}
			delete(c.feeds, id)
			done = append(done, id)
			continue
		}
		if n == collectBatch {
			more = true
			c.d.Notify(id)
		} else {
			done = append(done, id)
		}
	}

	// tenant.* events are looked for when told of a tenant change, and at
	// every sweep for those made by another process.
	var tcs []*runmerge.Change
	tcsDone := false // tenant_changes read to the end
	if c.d.tenantsChanged.Swap(false) {
		var err error
		tcs, err = c.d.catalog.TenantChangesAfter(ctx, c.tcCursor, collectBatch)
		if err != nil {
			c.d.tenantsChanged.Store(true)
			if ctx.Err() == nil {
				c.d.log.Warn("read tenant events", "error", err)
			}
		}
		tcsDone = err == nil && len(tcs) < collectBatch
	}
	for _, ch := range tcs {
		events = append(events, eventOf(ch, ""))
		batch.Entries = append(batch.Entries, &tenantstore.ChangeBatchEntry{Change: tenantstore.LoggedChange{
			TenantID: ch.TenantID, FromCatalog: true, SourceSeq: ch.Seq, ChangeID: ch.ID,
			EventType: ch.Type, At: ch.Timestamp,
		}})
		batch.TenantChangesCursor = ch.Seq
	}
	if len(tcs) == collectBatch {
		c.d.tenantsChanged.Store(true)
		more = true
	}
	if len(batch.Entries) == 0 && len(batch.Cursors) == 0 {
		c.caught(done, tcsDone)
		return more
	}

	revoked, claims, err := c.fanOut(ctx, batch, events)
	if err == nil {
		err = c.d.catalog.CommitChanges(ctx, batch)
	}
	if err != nil {
		c.handOver(claims, batch, events, false)
		for _, id := range ids {
			c.d.Notify(id)
		}
		if len(tcs) > 0 {
			c.d.tenantsChanged.Store(true)
		}
		if ctx.Err() == nil {
			c.d.log.Error("log change events", "error", err)
			select {
			case <-c.d.stopping:
			case <-time.After(time.Second):
			}
		}
		// Feeds may have been moved in memory; load them again.
		for _, id := range ids {
			delete(c.feeds, id)
		}
		return false
	}

	for id, cur := range batch.Cursors {
		if st := c.feeds[id]; st != nil {
			st.cursor = cur
		}
	}
	if batch.TenantChangesCursor > 0 {
		c.tcCursor = batch.TenantChangesCursor
	}
	for i, e := range batch.Entries {
		events[i].Position = e.Change.Gseq
	}
	c.d.hub.publish(events)
	c.handOver(claims, batch, events, true)
	c.d.log.Debug("change events logged", "count", len(events), "deliveries", len(claims),
		"position", c.d.hub.last)
	c.d.stats.logged.Add(int64(len(events)))
	c.d.stats.rounds.Add(1)
	for _, id := range revoked {
		c.d.disableWebhook(id, "the key that created it was revoked or has expired")
	}
	c.caught(done, tcsDone)
	return more
}

// readTenant adds tenant id's changes after its feed's cursor to batch.
func (c *collector) readTenant(ctx context.Context, id string, batch *tenantstore.ChangeBatch,
	events *[]*Event) (int, error) {
	st, err := c.feed(ctx, id)
	if err != nil || st == nil {
		return 0, err
	}
	l, err := c.d.store.Pool.Acquire(ctx, id)
	if runmerge.ErrorCode(err) == runmerge.ENOTFOUND {
		delete(c.feeds, id)
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	defer l.Release()
	db := l.DB()

	// A file opened again may be another file: an import or a restore
	// replaces it whole.
	if st.db != db {
		st.db, st.verified = db, false
	}
	if !st.verified {
		if err := c.verify(ctx, db, st, batch); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	list, err := db.ChangesAfter(ctx, st.cursor.Seq, collectBatch)
	if err != nil {
		return 0, err
	}
	if len(list) < collectBatch {
		st.caughtUp = start
	}
	if time.Since(st.prunedAt) > c.d.cfg.PruneInterval {
		// Pruning is lazy: a tenant's old changes go when the tenant is read
		// for new ones, so no timer walks every tenant.
		st.prunedAt = time.Now()
		before := time.Now().Add(-c.d.cfg.Retention)
		if n, err := db.PruneChanges(ctx, before, st.cursor.Seq); err != nil {
			c.d.log.Warn("prune tenant changes", "tenant", id, "error", err)
		} else if n > 0 {
			c.d.log.Debug("pruned tenant changes", "tenant", id, "count", n)
		}
	}
	for _, ch := range list {
		*events = append(*events, eventOf(ch, collectionOf(ch.Type)))
		batch.Entries = append(batch.Entries, &tenantstore.ChangeBatchEntry{Change: tenantstore.LoggedChange{
			TenantID: id, SourceSeq: ch.Seq, ChangeID: ch.ID, EventType: ch.Type,
			EventIDs: ch.EventIDs, At: ch.Timestamp,
		}})
	}
	if len(list) > 0 {
		last := list[len(list)-1]
		batch.Cursors[id] = tenantstore.FeedCursor{Seq: last.Seq, ID: last.ID}
	}
	return len(list), nil
}

// feed returns the collector's state of tenant id's feed, loading it from
// the catalog when need be; nil when the tenant no longer exists.
func (c *collector) feed(ctx context.Context, id string) (*feedState, error) {
	if st := c.feeds[id]; st != nil {
		return st, nil
	}
	cur, ok, err := c.d.catalog.Feed(ctx, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		// A tenant older than change events, or one being deleted: start
		// from the end of what its file holds now.
		if _, err := c.d.catalog.Tenant(ctx, id); err != nil {
			if runmerge.ErrorCode(err) == runmerge.ENOTFOUND {
				return nil, nil
			}
			return nil, err
		}
		if err := c.d.resetFeed(ctx, id); err != nil {
			return nil, err
		}
		if cur, _, err = c.d.catalog.Feed(ctx, id); err != nil {
			return nil, err
		}
	}
	// The first prune comes within one prune interval, at a random point
	// of it, so that a restart does not prune every active tenant at once.
	st := &feedState{cursor: cur, prunedAt: time.Now().Add(-rand.N(c.d.cfg.PruneInterval))}
	c.feeds[id] = st
	return st, nil
}

// verify checks that the feed's cursor still names the change it was moved
// to. A file replaced since (an import, a restore) holds other changes
// there, or fewer; the feed then moves to the end of the new file, whose
// changes are history rather than news.
func (c *collector) verify(ctx context.Context, db *tenantstore.DB, st *feedState,
	batch *tenantstore.ChangeBatch) error {
	if st.cursor.Seq == 0 {
		st.verified = true
		return nil
	}
	id, ok, err := db.ChangeIDAt(ctx, st.cursor.Seq)
	if err != nil {
		return err
	}
	replaced := ok && st.cursor.ID != "" && id != st.cursor.ID
	if !ok {
		last, _, err := db.LastChange(ctx)
		if err != nil {
			return err
		}
		replaced = last < st.cursor.Seq
	}
	if replaced {
		last, lastID, err := db.LastChange(ctx)
		if err != nil {
			return err
		}
		c.d.log.Warn("tenant file was replaced; its changes so far are not delivered",
			"tenant", db.ID(), "from", st.cursor.Seq, "to", last)
		st.cursor = tenantstore.FeedCursor{Seq: last, ID: lastID}
		batch.Cursors[db.ID()] = st.cursor
	}
	st.verified = true
	return nil
}

// reset moves tenant id's feed to the end of its file, for TenantReplaced.
func (c *collector) reset(id string) error {
	ctx := c.d.sendCtx
	if err := c.d.resetFeed(ctx, id); err != nil {
		return err
	}
	delete(c.feeds, id)
	_, err := c.feed(ctx, id)
	return err
}

// claim is room reserved in memory for a delivery the collector makes.
type claim struct {
	entry    int // index in the batch
	delivery *tenantstore.NewDelivery
	endpoint string
}

// fanOut adds to each entry of batch a delivery for every webhook that
// hears it, reserving room in memory for those it can send at once. It
// returns the webhooks whose owner may no longer read anything, and the
// reservations.
func (c *collector) fanOut(ctx context.Context, batch *tenantstore.ChangeBatch,
	events []*Event) ([]string, []claim, error) {
	hooks, err := c.d.hooks.get(ctx)
	if err != nil {
		return nil, nil, err
	}
	var revoked []string
	var claims []claim
	var hearing []*hookState
	gone := make(map[string]bool)
	for i, e := range batch.Entries {
		hearing = hooks.hearing(hearing[:0], events[i])
		for _, h := range hearing {
			if gone[h.ID] {
				continue
			}
			usable, err := c.d.owners.usable(ctx, h.Owner.KeyID)
			if err != nil {
				c.handOver(claims, batch, events, false)
				return nil, nil, err
			}
			if !usable {
				gone[h.ID] = true
				revoked = append(revoked, h.ID)
				continue
			}
			nd := &tenantstore.NewDelivery{ID: uuid.Must(uuid.NewV7()).String(), WebhookID: h.ID}
			if c.d.sched.reserve(h.endpoint) {
				nd.Claimed = true
				claims = append(claims, claim{entry: i, delivery: nd, endpoint: h.endpoint})
			} else {
				c.d.overflow.Store(true)
			}
			e.Deliveries = append(e.Deliveries, nd)
		}
	}
	return revoked, claims, nil
}

// handOver gives the scheduler the deliveries it reserved room for, once
// the batch has committed (committed), or gives the room back.
func (c *collector) handOver(claims []claim, batch *tenantstore.ChangeBatch, events []*Event,
	committed bool) {
	for _, cl := range claims {
		if !committed || !cl.delivery.Created {
			c.d.sched.unreserve(cl.endpoint)
			continue
		}
		e := batch.Entries[cl.entry]
		c.d.sched.push(&job{
			deliveryID: cl.delivery.ID,
			webhookID:  cl.delivery.WebhookID,
			endpoint:   cl.endpoint,
			gseq:       e.Change.Gseq,
			changeID:   e.Change.ChangeID,
			tenantID:   e.Change.TenantID,
			body:       events[cl.entry].Body,
		}, true)
	}
}

// eventOf makes the Event of a change, without its position yet.
func eventOf(ch *runmerge.Change, collection string) *Event {
	return &Event{
		ID:         ch.ID,
		Type:       ch.Type,
		TenantID:   ch.TenantID,
		Collection: collection,
		EventIDs:   ch.EventIDs,
		At:         ch.Timestamp,
		Body:       eventBody(ch),
	}
}
