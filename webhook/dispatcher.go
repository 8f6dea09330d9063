// Package webhook delivers Runmerge's change events: to webhook
// subscriptions, signed by the Standard Webhooks scheme and retried on a
// schedule kept in the database, and to the live event stream.
//
// Every record write stores its change events in the tenant file's own
// outbox, in the same transaction. The Dispatcher takes them from there
// into the catalog's change log, which gives the events of every tenant one
// order and one position each, and makes a delivery for every subscription
// that may read the event. A change is therefore delivered if and only if
// it committed, across restarts too.
//
// Finding the tenants with new changes never costs the number of tenants:
// a write marks its tenant in the catalog before it begins (BeginWrite),
// the store tells the dispatcher after it commits (Notify), and the
// dispatcher reads only the marked tenants after a restart.
//
// The dispatcher follows the tenant files only while someone may want a
// change: an active webhook or an open stream. Otherwise a write costs
// nothing beyond its outbox row (and a mark every few seconds per tenant):
// the marks keep the tenants whose changes wait, and the first subscriber
// has the dispatcher take them into the change log, so that a stream can
// still resume across the time nobody listened.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// DefaultRetrySchedule is how long a failed delivery waits before each
// retry: after the first failure 5 s, after the second 1 min, and so on.
// After the last, the delivery has failed for good.
var DefaultRetrySchedule = []time.Duration{
	5 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// Config configures a Dispatcher. Zero values take the defaults.
type Config struct {
	// DataDir holds the key file that seals signing secrets.
	DataDir string

	// AllowPrivate lets deliveries reach private addresses.
	AllowPrivate bool

	// RetrySchedule is the wait before each retry of a failed delivery.
	RetrySchedule []time.Duration

	// Workers bounds the deliveries in flight at once; PerEndpoint bounds
	// those to one receiver (one scheme, host and port), so that a slow
	// receiver holds at most PerEndpoint workers.
	Workers     int
	PerEndpoint int

	// Timeout is the longest a delivery attempt may take.
	Timeout time.Duration

	// Retention is how long change events and the delivery log are kept.
	Retention time.Duration

	// SweepInterval is how often the marked tenants are checked for changes
	// the dispatcher was not told of (after a restart, or written by another
	// process), and PollInterval how often due retries are looked for.
	SweepInterval time.Duration
	PollInterval  time.Duration

	// CollectGap is the least time between the starts of two collection
	// rounds while changes keep coming: the first change after a quiet spell
	// is taken at once, and under load each round takes what the gap let
	// gather, so that the change log costs one catalog commit per round
	// rather than per change. Above 1,000 changes a second the gap grows
	// with the rate, to four times CollectGap from 4,000 a second, so that
	// more changes share the costs of a round (the commit, and a read and a
	// feed update per tenant) when there are the most of them. It adds at
	// most the gap to delivery latency.
	CollectGap time.Duration

	// QuietPeriod is how long a tenant must go without writes before its
	// mark is cleared; PruneInterval how often old change events are pruned.
	QuietPeriod   time.Duration
	PruneInterval time.Duration

	// IdleAfter is how long the dispatcher goes on following the tenant
	// files after the last webhook was disabled or deleted and the last
	// stream closed, so that a stream reconnecting soon finds it following.
	IdleAfter time.Duration

	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if len(c.RetrySchedule) == 0 {
		c.RetrySchedule = DefaultRetrySchedule
	}
	if c.Workers <= 0 {
		c.Workers = 128
	}
	if c.PerEndpoint <= 0 {
		// Enough for one receiver answering in a few milliseconds to take
		// thousands of changes a second, and an eighth of the workers.
		c.PerEndpoint = max(1, min(16, c.Workers/8))
	}
	if c.Timeout <= 0 {
		c.Timeout = 15 * time.Second
	}
	if c.Retention <= 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 2 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.CollectGap <= 0 {
		c.CollectGap = 5 * time.Millisecond
	}
	if c.QuietPeriod <= 0 {
		c.QuietPeriod = 2 * time.Minute
	}
	if c.PruneInterval <= 0 {
		c.PruneInterval = time.Hour
	}
	if c.IdleAfter <= 0 {
		c.IdleAfter = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// markWindow is how long a tenant's mark covers later writes: a write
// within markWindow of the tenant's last mark by this process does not mark
// again. The mark is cleared only once a scan that began more than
// markWindow plus markSlack after the mark found nothing new, so every
// write that relied on it has committed and been seen by then.
const (
	markWindow = 10 * time.Second
	markSlack  = time.Minute
)

// createdSlack is how much older than a webhook a change may be and still
// be delivered to it. A write commits within markWindow plus markSlack of
// the time it stamps on its change, so every change that committed after
// the webhook was made is delivered, and a webhook made after a time
// nobody listened does not hear all that was written then.
const createdSlack = markWindow + markSlack

// Dispatcher takes change events from the tenant files into the change
// log, delivers them to webhooks and serves them to streams.
type Dispatcher struct {
	cfg     Config
	store   *tenantstore.Store
	catalog *tenantstore.Catalog
	log     *slog.Logger
	box     *SecretBox
	guard   *Guard
	client  *httpDoer

	// Marks made by this process, by tenant, and the queue of marks to write.
	markMu   sync.Mutex
	lastMark map[string]time.Time
	marks    chan markRequest

	// Tenants the store says changed, for the collector; only while it
	// follows the tenant files.
	dirtyMu sync.Mutex
	dirty   map[string]bool
	// following is set while the collector takes changes into the change
	// log; listeners counts the open streams. followMu orders the changes
	// of both with caughtUp, which is closed when the collector has taken
	// what was written while it did not follow (nil when it is not
	// catching up).
	following atomic.Bool
	listeners atomic.Int64
	followMu  sync.Mutex
	caughtUp  chan struct{}
	// tenantsChanged is set when tenant.* events may be waiting.
	tenantsChanged atomic.Bool
	wake           chan struct{}
	resets         chan resetRequest

	hooks  *hookCache
	owners *ownerCache
	hub    *hub
	sched  *scheduler

	results  chan attemptOutcome
	pollWake chan struct{}
	// overflow is set while due deliveries wait in the database because
	// their receiver's queue in memory was full.
	overflow atomic.Bool

	stats counters

	started  atomic.Bool
	stopping chan struct{}
	sendCtx  context.Context // cancelled to abandon attempts in flight at stop
	cancel   context.CancelFunc
	loops    sync.WaitGroup // collector, poller, pruner, marker
	workers  sync.WaitGroup
	recorder sync.WaitGroup
	stopOnce sync.Once
	stopped  chan struct{} // closed once everything has stopped
}

// New returns a dispatcher over store. It does nothing until Start, but its
// webhook calls and BeginWrite work at once.
func New(cfg Config, store *tenantstore.Store) (*Dispatcher, error) {
	cfg = cfg.withDefaults()
	box, err := OpenSecretBox(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	guard := &Guard{AllowPrivate: cfg.AllowPrivate}
	d := &Dispatcher{
		cfg:      cfg,
		store:    store,
		catalog:  store.Catalog,
		log:      cfg.Logger,
		box:      box,
		guard:    guard,
		lastMark: make(map[string]time.Time),
		marks:    make(chan markRequest, 1024),
		dirty:    make(map[string]bool),
		wake:     make(chan struct{}, 1),
		resets:   make(chan resetRequest),
		hub:      newHub(hubSize),
		sched:    newScheduler(cfg.PerEndpoint, maxQueuedPerEndpoint, maxQueued),
		results:  make(chan attemptOutcome, 1024),
		pollWake: make(chan struct{}, 1),
		stopping: make(chan struct{}),
	}
	d.client = &httpDoer{client: guard.NewHTTPClient(cfg.Timeout, cfg.PerEndpoint)}
	d.sched.lowWater = func() {
		if d.overflow.Load() {
			d.wakePoller()
		}
	}
	d.hooks = &hookCache{d: d}
	d.owners = &ownerCache{catalog: store.Catalog, entries: make(map[string]ownerEntry)}
	d.sendCtx, d.cancel = context.WithCancel(context.Background())
	// Marks are written from the start, so that writes accepted before
	// Start are still found.
	d.loops.Add(1)
	go d.writeMarks()
	return d, nil
}

// Start loads the subscriptions and the change log position, takes back
// every delivery a previous run held, and starts collecting and delivering.
func (d *Dispatcher) Start(ctx context.Context) error {
	if d.started.Swap(true) {
		return errors.New("webhook: dispatcher already started")
	}
	if err := d.hooks.reload(ctx); err != nil {
		return err
	}
	pos, err := d.catalog.LastChangeLogPosition(ctx)
	if err != nil {
		return err
	}
	d.hub.start(pos)
	if n, err := d.catalog.ReleaseClaims(ctx); err != nil {
		return err
	} else if n > 0 {
		d.log.Info("webhook deliveries resumed", "count", n)
	}
	tcCursor, err := d.catalog.TenantChangesCursor(ctx)
	if err != nil {
		return err
	}
	d.store.Subscribe(d.Notify)

	c := newCollector(d, tcCursor)
	d.loops.Add(3)
	go c.run()
	go d.poll()
	go d.prune()
	d.workers.Add(d.cfg.Workers)
	for i := 0; i < d.cfg.Workers; i++ {
		go d.work()
	}
	d.recorder.Add(1)
	go d.record()
	return nil
}

// Stop stops collecting and delivering, abandoning attempts in flight (they
// are sent again after the next start), records what finished, and closes
// the streams' feed. Undelivered changes stay in the database.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.stopOnce.Do(func() {
		close(d.stopping)
		d.hub.close()
		d.sched.close()
		d.cancel()
		d.stopped = make(chan struct{})
		go func() {
			d.loops.Wait()
			d.workers.Wait()
			close(d.results)
			d.recorder.Wait()
			close(d.stopped)
		}()
	})
	select {
	case <-d.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop webhook dispatcher: %w", ctx.Err())
	}
}

// Done is closed when the dispatcher begins to stop.
func (d *Dispatcher) Done() <-chan struct{} { return d.stopping }

// markRequest asks the mark writer to mark a tenant.
type markRequest struct {
	tenantID string
	at       time.Time
	done     chan error
}

// BeginWrite marks tenantID as about to change, before a write to it
// begins: after a crash the mark leads the dispatcher to the tenant's
// committed but undelivered changes. Within markWindow of this process's
// last mark of the tenant it costs a map lookup; otherwise it waits for one
// catalog write, shared with concurrent marks of other tenants.
func (d *Dispatcher) BeginWrite(ctx context.Context, tenantID string) error {
	now := time.Now()
	d.markMu.Lock()
	last, ok := d.lastMark[tenantID]
	d.markMu.Unlock()
	if ok && now.Sub(last) < markWindow {
		return nil
	}
	at := runmerge.Now()
	select {
	case <-d.stopping:
		// The mark writer has stopped; the catalog is still open.
		if err := d.catalog.MarkChanges(ctx, []string{tenantID}, at); err != nil {
			return err
		}
	default:
		if err := d.queueMark(ctx, tenantID, at); err != nil {
			return err
		}
	}
	d.markMu.Lock()
	if at.After(d.lastMark[tenantID]) {
		d.lastMark[tenantID] = at
	}
	d.markMu.Unlock()
	return nil
}

// queueMark hands a mark to the mark writer and waits for it to be written.
func (d *Dispatcher) queueMark(ctx context.Context, tenantID string, at time.Time) error {
	req := markRequest{tenantID: tenantID, at: at, done: make(chan error, 1)}
	select {
	case d.marks <- req:
	case <-d.stopping:
		return d.catalog.MarkChanges(ctx, []string{tenantID}, at)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// forgetMarks drops this process's notes of marks older than markWindow,
// which no longer spare a write its mark.
func (d *Dispatcher) forgetMarks() {
	d.markMu.Lock()
	defer d.markMu.Unlock()
	for id, at := range d.lastMark {
		if time.Since(at) >= markWindow {
			delete(d.lastMark, id)
		}
	}
}

// writeMarks writes queued marks, all that are waiting in one transaction.
// It runs until Stop, then answers what is still queued.
func (d *Dispatcher) writeMarks() {
	defer d.loops.Done()
	for {
		var batch []markRequest
		select {
		case r := <-d.marks:
			batch = append(batch, r)
		case <-d.stopping:
			// Requests may still come while the HTTP server drains; the
			// catalog is still open until the store closes.
			select {
			case r := <-d.marks:
				batch = append(batch, r)
			default:
				return
			}
		}
	drain:
		for len(batch) < 512 {
			select {
			case r := <-d.marks:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		ids := make([]string, len(batch))
		for i, r := range batch {
			ids[i] = r.tenantID
		}
		err := d.catalog.MarkChanges(context.Background(), ids, batch[len(batch)-1].at)
		if err != nil {
			d.log.Error("mark tenants changed", "error", err)
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

// Notify tells the dispatcher that tenantID committed changes. The store
// calls it after every commit; it never blocks. While the dispatcher does
// not follow the tenant files it does nothing: the tenant's mark keeps the
// changes for later.
func (d *Dispatcher) Notify(tenantID string) {
	if !d.following.Load() {
		return
	}
	d.dirtyMu.Lock()
	d.dirty[tenantID] = true
	d.dirtyMu.Unlock()
	d.wakeCollector()
}

// NotifyTenants tells the dispatcher that tenants were created, changed or
// deleted, so that their tenant.* events go out without waiting for the
// next sweep.
func (d *Dispatcher) NotifyTenants() {
	d.tenantsChanged.Store(true)
	d.wakeCollector()
}

// catchUpWait bounds how long a new subscriber waits for the collector to
// take what was written while nobody listened (Attach, CreateWebhook).
const catchUpWait = 10 * time.Second

// Attach registers an open stream: while any is open the dispatcher
// follows the tenant files. If it was not following it starts, and with
// fromPresent Attach returns once what was written before is in the change
// log (or after catchUpWait), so that the stream's present, Position, comes
// after it. A stream resuming from a position needs no wait: what is taken
// later gets later positions. Call detach when the stream ends.
func (d *Dispatcher) Attach(ctx context.Context, fromPresent bool) (detach func(), err error) {
	// Counted under followMu, so that the collector does not stop following
	// between this and catchUp's look at whether it follows.
	d.followMu.Lock()
	d.listeners.Add(1)
	d.followMu.Unlock()
	detach = sync.OnceFunc(func() { d.listeners.Add(-1) })
	if !fromPresent {
		d.wakeCollector()
		return detach, nil
	}
	if err := d.catchUp(ctx); err != nil {
		detach()
		return nil, err
	}
	return detach, nil
}

// catchUp has the collector follow the tenant files, if it does not, and
// waits until it has taken what was written while it did not, or for
// catchUpWait. Before Start and after Stop there is nothing to wait for.
func (d *Dispatcher) catchUp(ctx context.Context) error {
	if !d.started.Load() {
		return nil
	}
	d.followMu.Lock()
	if !d.following.Load() && d.caughtUp == nil {
		d.caughtUp = make(chan struct{})
	}
	caughtUp := d.caughtUp
	d.followMu.Unlock()
	d.wakeCollector()
	if caughtUp == nil {
		return nil
	}
	t := time.NewTimer(catchUpWait)
	defer t.Stop()
	select {
	case <-caughtUp:
	case <-t.C:
		d.log.Warn("still taking the changes written while nobody listened; going on",
			"waited", catchUpWait)
	case <-d.stopping:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// TenantReplaced tells the dispatcher that tenantID's file was replaced
// (by an import): the changes it holds are history, not news, and its
// change positions may have started over. The tenant's feed moves to the
// end of the new file's changes.
func (d *Dispatcher) TenantReplaced(ctx context.Context, tenantID string) error {
	req := resetRequest{tenantID: tenantID, done: make(chan error, 1)}
	if !d.started.Load() {
		return d.resetFeed(ctx, tenantID)
	}
	select {
	case d.resets <- req:
	case <-d.stopping:
		return d.resetFeed(ctx, tenantID)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// resetFeed moves tenantID's feed to the last change in its file.
func (d *Dispatcher) resetFeed(ctx context.Context, tenantID string) error {
	l, err := d.store.Pool.Acquire(ctx, tenantID)
	if err != nil {
		return err
	}
	seq, id, err := l.DB().LastChange(ctx)
	l.Release()
	if err != nil {
		return err
	}
	return d.catalog.SetFeed(ctx, tenantID, tenantstore.FeedCursor{Seq: seq, ID: id})
}

// resetRequest asks the collector to reset a tenant's feed.
type resetRequest struct {
	tenantID string
	done     chan error
}

func (d *Dispatcher) wakeCollector() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// WebhookInput is what a client gives to create a webhook.
type WebhookInput struct {
	TenantID    string // "" for every tenant
	URL         string
	EventTypes  []string
	Description string
}

// CreateWebhook checks in and stores a webhook owned by owner. It returns
// the webhook and its signing secret, which is never available again.
func (d *Dispatcher) CreateWebhook(ctx context.Context, owner *runmerge.Principal,
	in WebhookInput) (*tenantstore.Webhook, string, error) {
	if err := d.guard.CheckURL(ctx, in.URL, "/url"); err != nil {
		return nil, "", err
	}
	if err := CheckEventTypes(in.EventTypes, "/eventTypes"); err != nil {
		return nil, "", err
	}
	// What was written while nobody listened goes into the change log
	// before the webhook exists, so that the webhook hears none of it.
	if err := d.catchUp(ctx); err != nil {
		return nil, "", err
	}
	now := runmerge.Now()
	w := &tenantstore.Webhook{
		ID:          uuid.Must(uuid.NewV7()).String(),
		TenantID:    in.TenantID,
		URL:         in.URL,
		EventTypes:  in.EventTypes,
		Description: in.Description,
		Owner:       *owner,
		Status:      tenantstore.WebhookActive,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	secret := NewSecret()
	sealed, err := d.box.Seal(w.ID, secret)
	if err != nil {
		return nil, "", fmt.Errorf("seal webhook secret: %w", err)
	}
	w.SealedSecret = sealed
	if err := d.catalog.CreateWebhook(ctx, w); err != nil {
		return nil, "", err
	}
	d.hooks.invalidate()
	d.wakeCollector()
	d.log.Info("webhook created", "webhook", w.ID, "tenant", w.TenantID, "key", owner.KeyID)
	return w, secret, nil
}

// CheckEventTypes checks a subscription's event types: at least one, each
// a known type or "*".
func CheckEventTypes(types []string, pointer string) error {
	bad := func(p, detail string) error {
		return &runmerge.Error{Code: runmerge.EINVALID, Message: "the event types are not valid",
			Fields: []runmerge.FieldError{{Pointer: p, Code: "invalid_value", Detail: detail}}}
	}
	if len(types) == 0 {
		return bad(pointer, "must list at least one event type, or \"*\" for all")
	}
	if len(types) > 64 {
		return bad(pointer, "must list at most 64 event types")
	}
	for i, t := range types {
		if !ValidEventType(t) {
			return bad(fmt.Sprintf("%s/%d", pointer, i),
				"must be \"*\" or an event type such as person.created; see the API description")
		}
	}
	return nil
}

// UpdateWebhook checks and applies upd to webhook id.
func (d *Dispatcher) UpdateWebhook(ctx context.Context, id string,
	upd tenantstore.WebhookUpdate) (*tenantstore.Webhook, error) {
	if upd.URL != nil {
		if err := d.guard.CheckURL(ctx, *upd.URL, "/url"); err != nil {
			return nil, err
		}
	}
	if upd.EventTypes != nil {
		if err := CheckEventTypes(upd.EventTypes, "/eventTypes"); err != nil {
			return nil, err
		}
	}
	if upd.Status != nil && *upd.Status == tenantstore.WebhookActive {
		clear := ""
		upd.DisabledReason = &clear
		// A disabled webhook hears nothing written meanwhile; see
		// CreateWebhook.
		if err := d.catchUp(ctx); err != nil {
			return nil, err
		}
	}
	w, err := d.catalog.UpdateWebhook(ctx, id, upd)
	if err != nil {
		return nil, err
	}
	d.hooks.invalidate()
	d.wakeCollector()
	d.wakePoller()
	return w, nil
}

// DeleteWebhook deletes webhook id and its delivery log.
func (d *Dispatcher) DeleteWebhook(ctx context.Context, id string) error {
	if err := d.catalog.DeleteWebhook(ctx, id); err != nil {
		return err
	}
	d.hooks.invalidate()
	return nil
}

// RetryDelivery sends delivery deliveryID of webhook webhookID again as
// soon as a worker is free. A disabled webhook must be enabled first.
func (d *Dispatcher) RetryDelivery(ctx context.Context, webhookID,
	deliveryID string) (*tenantstore.Delivery, error) {
	w, err := d.catalog.Webhook(ctx, webhookID)
	if err != nil {
		return nil, err
	}
	if w.Status != tenantstore.WebhookActive {
		return nil, runmerge.Errorf(runmerge.ECONFLICT, "the webhook is disabled; enable it before retrying")
	}
	if d.sched.holds(deliveryID) {
		return nil, runmerge.Errorf(runmerge.ECONFLICT, "the delivery is being sent now; try again shortly")
	}
	del, err := d.catalog.RetryDelivery(ctx, webhookID, deliveryID)
	if err != nil {
		return nil, err
	}
	d.wakePoller()
	return del, nil
}

func (d *Dispatcher) wakePoller() {
	select {
	case d.pollWake <- struct{}{}:
	default:
	}
}

// endpointOf is the receiver a URL names: its scheme, host and port. The
// concurrency bound applies per receiver, whatever the number of
// subscriptions pointing at it.
func endpointOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// counters are the dispatcher's running totals.
type counters struct {
	logged, succeeded, failed, retried atomic.Int64
	rounds, tenantReads, collectNanos  atomic.Int64
}

// Stats is a snapshot of the dispatcher's work, for metrics.
type Stats struct {
	Logged    int64 // change events taken into the change log
	Succeeded int64 // deliveries answered with a 2xx
	Failed    int64 // deliveries failed for good
	Retried   int64 // failed attempts that will be tried again
	Queued    int   // deliveries waiting in memory for a worker
	InFlight  int   // delivery attempts under way
	Position  int64 // the latest change log position

	Rounds      int64         // collection rounds that logged something
	TenantReads int64         // reads of tenant files for new changes
	CollectTime time.Duration // time spent in collection rounds
}

// Stats returns a snapshot of the dispatcher's counters.
func (d *Dispatcher) Stats() Stats {
	queued, active := d.sched.depth()
	return Stats{
		Logged:    d.stats.logged.Load(),
		Succeeded: d.stats.succeeded.Load(),
		Failed:    d.stats.failed.Load(),
		Retried:   d.stats.retried.Load(),
		Queued:    queued,
		InFlight:  active,
		Position:  d.Position(),

		Rounds:      d.stats.rounds.Load(),
		TenantReads: d.stats.tenantReads.Load(),
		CollectTime: time.Duration(d.stats.collectNanos.Load()),
	}
}

// DueLag returns how long the longest-waiting due delivery that no worker
// holds has been due, or 0 when none is: how far delivery is behind.
func (d *Dispatcher) DueLag(ctx context.Context) (time.Duration, error) {
	next, err := d.catalog.NextDueDelivery(ctx)
	if err != nil || next == nil {
		return 0, err
	}
	return max(0, time.Since(*next)), nil
}
