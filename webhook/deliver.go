package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// Bounds of the deliveries held in memory. Beyond them deliveries wait in
// the database, and the poller brings them in as room frees up.
const (
	maxQueued            = 10000
	maxQueuedPerEndpoint = 1000
	claimBatch           = 500
)

// job is one delivery attempt waiting for a worker.
type job struct {
	deliveryID string
	webhookID  string
	endpoint   string
	gseq       int64
	changeID   string
	tenantID   string
	attempts   int    // attempts made before this one
	body       []byte // nil when it must be read from where the change is stored
}

// endpointQueue is the jobs waiting for one receiver.
type endpointQueue struct {
	key      string
	jobs     []*job
	reserved int // room promised to deliveries about to be pushed
	active   int // jobs of this receiver with a worker now
	ready    bool
}

// scheduler hands jobs to workers, taking receivers in turn and never more
// than limit jobs of one receiver at once, so that a slow receiver cannot
// take every worker and delay the others.
type scheduler struct {
	mu       sync.Mutex
	cond     *sync.Cond
	limit    int
	epCap    int
	totalCap int
	eps      map[string]*endpointQueue
	ready    []*endpointQueue
	total    int             // jobs queued and room reserved
	held     map[string]bool // deliveries queued or in flight
	closed   bool

	// lowWater, when set, is called (without the lock) when a receiver's
	// queue falls to half its room: deliveries waiting in the database for
	// lack of room may be brought in.
	lowWater func()
}

func newScheduler(limit, epCap, totalCap int) *scheduler {
	s := &scheduler{limit: limit, epCap: epCap, totalCap: totalCap,
		eps: make(map[string]*endpointQueue), held: make(map[string]bool)}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *scheduler) queue(ep string) *endpointQueue {
	q := s.eps[ep]
	if q == nil {
		q = &endpointQueue{key: ep}
		s.eps[ep] = q
	}
	return q
}

// tidy forgets a receiver with nothing queued, reserved or in flight.
func (s *scheduler) tidy(q *endpointQueue) {
	if len(q.jobs) == 0 && q.reserved == 0 && q.active == 0 {
		delete(s.eps, q.key)
	}
}

// reserve promises room for one job of receiver ep, if there is any.
func (s *scheduler) reserve(ep string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue(ep)
	if s.closed || s.total >= s.totalCap || len(q.jobs)+q.reserved >= s.epCap {
		s.tidy(q)
		return false
	}
	q.reserved++
	s.total++
	return true
}

// unreserve gives back room reserve promised.
func (s *scheduler) unreserve(ep string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue(ep)
	q.reserved--
	s.total--
	s.tidy(q)
}

// push queues j, into room reserved for it when reserved is set. It
// reports false when there is no room.
func (s *scheduler) push(j *job, reserved bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue(j.endpoint)
	if reserved {
		q.reserved--
	} else {
		if s.closed || s.total >= s.totalCap || len(q.jobs)+q.reserved >= s.epCap {
			s.tidy(q)
			return false
		}
		s.total++
	}
	q.jobs = append(q.jobs, j)
	s.held[j.deliveryID] = true
	if !q.ready && q.active < s.limit {
		q.ready = true
		s.ready = append(s.ready, q)
		s.cond.Signal()
	}
	return true
}

// next waits for a job and returns it, or nil once the scheduler closes.
func (s *scheduler) next() *job {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.ready) == 0 && !s.closed {
		s.cond.Wait()
	}
	if s.closed {
		return nil
	}
	q := s.ready[0]
	s.ready = s.ready[1:]
	j := q.jobs[0]
	q.jobs[0] = nil
	q.jobs = q.jobs[1:]
	q.active++
	s.total--
	if len(q.jobs) > 0 && q.active < s.limit {
		s.ready = append(s.ready, q) // the back of the line: receivers take turns
	} else {
		q.ready = false
	}
	if len(s.ready) > 0 {
		// More is ready than this worker takes: wake another, or a queue
		// pushed while every worker was busy could wait with workers idle.
		s.cond.Signal()
	}
	if len(q.jobs) == s.epCap/2 && s.lowWater != nil {
		s.mu.Unlock()
		s.lowWater()
		s.mu.Lock()
	}
	return j
}

// done tells the scheduler a worker finished j.
func (s *scheduler) done(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue(j.endpoint)
	q.active--
	delete(s.held, j.deliveryID)
	if len(q.jobs) > 0 && !q.ready && q.active < s.limit {
		q.ready = true
		s.ready = append(s.ready, q)
		s.cond.Signal()
	}
	s.tidy(q)
}

// holds reports whether delivery id is queued or in flight.
func (s *scheduler) holds(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[id]
}

// room returns how many more jobs may be queued.
func (s *scheduler) room() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.totalCap - s.total
}

// full returns the receivers with no room for more jobs.
func (s *scheduler) full() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool)
	for k, q := range s.eps {
		if len(q.jobs)+q.reserved >= s.epCap {
			out[k] = true
		}
	}
	return out
}

// depth returns the jobs queued and the jobs in flight.
func (s *scheduler) depth() (queued, active int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.eps {
		queued += len(q.jobs)
		active += q.active
	}
	return queued, active
}

func (s *scheduler) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cond.Broadcast()
}

// attemptOutcome is what a worker hands the recorder.
type attemptOutcome struct {
	webhookID string
	result    tenantstore.AttemptResult
	release   bool   // no attempt was made: only clear the claim
	drop      bool   // the webhook is gone, and its deliveries with it
	disable   string // a reason to disable the webhook
}

// work runs delivery attempts until the scheduler closes.
func (d *Dispatcher) work() {
	defer d.workers.Done()
	for {
		j := d.sched.next()
		if j == nil {
			return
		}
		out := d.attempt(j)
		d.sched.done(j)
		d.results <- out
	}
}

// httpDoer sends requests; tests replace nothing here, but it keeps the
// client in one place.
type httpDoer struct {
	client *http.Client
}

// attempt makes one delivery attempt of j.
func (d *Dispatcher) attempt(j *job) attemptOutcome {
	ctx := d.sendCtx
	out := attemptOutcome{webhookID: j.webhookID, result: tenantstore.AttemptResult{DeliveryID: j.deliveryID}}
	hooks, err := d.hooks.get(ctx)
	if err != nil {
		out.release = true
		return out
	}
	h := hooks.byID[j.webhookID]
	if h == nil {
		out.drop = true
		return out
	}
	if h.Status != tenantstore.WebhookActive {
		// Held until the webhook is enabled again.
		out.release = true
		return out
	}
	if ok, err := d.owners.usable(ctx, h.Owner.KeyID); err != nil || !ok {
		out.release = true
		if err == nil {
			out.disable = "the key that created it was revoked or has expired"
		}
		return out
	}

	res := &out.result
	res.Attempts = j.attempts + 1
	res.At = runmerge.Now()
	body, found, err := d.loadBody(ctx, j)
	switch {
	case ctx.Err() != nil:
		out.release = true
		return out
	case err != nil:
		d.log.Warn("read change event for delivery", "tenant", j.tenantID, "error", err)
		d.retryLater(res, "the change event could not be read; will try again")
		return out
	case !found:
		res.Status = tenantstore.DeliveryFailed
		res.Error = "the change event is no longer available (pruned, or its tenant was deleted)"
		d.stats.failed.Add(1)
		return out
	}
	if h.signer == nil {
		d.log.Error("open webhook secret", "webhook", h.ID, "error", h.secretErr)
		d.retryLater(res, "the server could not sign the delivery")
		return out
	}

	status, err := d.send(ctx, h, j.deliveryID, body)
	res.At = runmerge.Now()
	res.ResponseStatus = status
	d.log.Debug("delivery attempt", "webhook", h.ID, "delivery", j.deliveryID, "attempt", res.Attempts,
		"status", status, "error", err)
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// Shutting down: this attempt does not count.
		out.release = true
	case err != nil:
		d.retryLater(res, err.Error())
	case status >= 200 && status < 300:
		res.Status = tenantstore.DeliverySucceeded
		d.stats.succeeded.Add(1)
	case status == http.StatusGone:
		res.Status = tenantstore.DeliveryFailed
		res.Error = "the receiver answered 410 Gone; the webhook is disabled"
		out.disable = "the receiver answered 410 Gone"
		d.stats.failed.Add(1)
	case status >= 300 && status < 400:
		d.retryLater(res, fmt.Sprintf("the receiver answered %d, a redirect, which is not followed", status))
	default:
		d.retryLater(res, fmt.Sprintf("the receiver answered %d", status))
	}
	return out
}

// retryLater records a failed attempt: due again after the schedule's
// next wait, or failed for good once the schedule is spent.
func (d *Dispatcher) retryLater(res *tenantstore.AttemptResult, reason string) {
	res.Error = reason
	if res.Attempts > len(d.cfg.RetrySchedule) {
		res.Status = tenantstore.DeliveryFailed
		res.Error = fmt.Sprintf("%s; gave up after %d attempts", reason, res.Attempts)
		d.stats.failed.Add(1)
		return
	}
	next := res.At.Add(d.cfg.RetrySchedule[res.Attempts-1])
	res.Status = tenantstore.DeliveryPending
	res.NextAttemptAt = &next
	d.stats.retried.Add(1)
}

// send POSTs body to h's URL, signed, and returns the answer's status. The
// answer's body is read (a little of it) and thrown away: it is never shown
// to anyone.
func (d *Dispatcher) send(ctx context.Context, h *hookState, msgID string, body []byte) (int, error) {
	ts := time.Now().Unix()
	sig, bodySig := h.signer.sign(msgID, ts, body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("the webhook URL cannot be requested")
	}
	// The keys as Header.Set would write them, without its work.
	req.Header = http.Header{
		"Content-Type":      {"application/json"},
		"User-Agent":        {"Runmerge-Webhooks/1"},
		"Webhook-Id":        {msgID},
		"Webhook-Timestamp": {strconv.FormatInt(ts, 10)},
		"Webhook-Signature": {sig},
		"X-Signature":       {bodySig},
	}
	resp, err := d.client.client.Do(req)
	if err != nil {
		return 0, describeSendError(err, d.cfg.Timeout)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// describeSendError says why a request got no answer, in words fit for the
// delivery log.
func describeSendError(err error, timeout time.Duration) error {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, ErrAddressRefused):
		return errors.New("the receiver's address is loopback, private, link-local or reserved, " +
			"and is not allowed")
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("the receiver did not answer within %s", timeout)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return errors.New("the receiver's host name does not resolve")
	}
	return errors.New("could not connect to the receiver")
}

// record writes the outcomes of attempts to the catalog, many in one
// transaction, until the workers have stopped and every outcome is written.
func (d *Dispatcher) record() {
	defer d.recorder.Done()
	var results []tenantstore.AttemptResult
	var release []string
	flush := func() {
		ctx := context.Background()
		if len(results) > 0 {
			if err := d.catalog.RecordAttempts(ctx, results); err != nil {
				d.log.Error("record delivery attempts", "count", len(results), "error", err)
				if len(results) < 100000 {
					return // kept for the next flush
				}
			}
			results = results[:0]
		}
		if len(release) > 0 {
			if err := d.catalog.ReleaseDeliveries(ctx, release); err != nil {
				d.log.Error("release deliveries", "count", len(release), "error", err)
				return
			}
			release = release[:0]
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case o, ok := <-d.results:
			if !ok {
				flush()
				return
			}
			if o.disable != "" {
				d.disableWebhook(o.webhookID, o.disable)
			}
			switch {
			case o.drop:
			case o.release:
				release = append(release, o.result.DeliveryID)
			default:
				results = append(results, o.result)
			}
			if len(results)+len(release) >= 256 {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// disableWebhook disables webhook id for reason.
func (d *Dispatcher) disableWebhook(id, reason string) {
	status := tenantstore.WebhookDisabled
	_, err := d.catalog.UpdateWebhook(context.Background(), id, tenantstore.WebhookUpdate{
		Status: &status, DisabledReason: &reason,
	})
	if err != nil {
		if runmerge.ErrorCode(err) != runmerge.ENOTFOUND {
			d.log.Error("disable webhook", "webhook", id, "error", err)
		}
		return
	}
	d.hooks.invalidate()
	d.log.Warn("webhook disabled", "webhook", id, "reason", reason)
}

// poll brings due deliveries (retries, and those that found no room in
// memory when they were made) from the database to the workers.
func (d *Dispatcher) poll() {
	defer d.loops.Done()
	t := time.NewTicker(d.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stopping:
			return
		case <-t.C:
		case <-d.pollWake:
		}
		// Claim again at once only while whole batches fit.
		for d.claimDue() == claimBatch {
		}
	}
}

// claimDue claims the deliveries that are due, as many as there is room
// for, and queues them. It returns how many it queued.
func (d *Dispatcher) claimDue() int {
	ctx := d.sendCtx
	room := min(d.sched.room(), claimBatch)
	if room <= 0 {
		return 0
	}
	// A read first: claiming is a write, and most polls find nothing due.
	next, err := d.catalog.NextDueDelivery(ctx)
	if err != nil || next == nil || next.After(time.Now()) {
		if err == nil {
			d.overflow.Store(false)
		}
		return 0
	}
	hooks, err := d.hooks.get(ctx)
	if err != nil {
		return 0
	}
	full := d.sched.full()
	var skip []string
	if len(full) > 0 {
		for _, h := range hooks.byID {
			if full[h.endpoint] {
				skip = append(skip, h.ID)
			}
		}
	}
	list, err := d.catalog.ClaimDueDeliveries(ctx, time.Now(), skip, room)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("claim due deliveries", "error", err)
		}
		return 0
	}
	jobs := make([]*job, len(list))
	for i, del := range list {
		ep := "webhook:" + del.WebhookID
		if h := hooks.byID[del.WebhookID]; h != nil {
			ep = h.endpoint
		}
		jobs[i] = &job{deliveryID: del.ID, webhookID: del.WebhookID, endpoint: ep, gseq: del.Gseq,
			changeID: del.ChangeID, tenantID: del.TenantID, attempts: del.Attempts}
	}
	d.loadBodies(ctx, jobs)
	var back []string
	for _, j := range jobs {
		if !d.sched.push(j, false) {
			back = append(back, j.deliveryID)
		}
	}
	if len(back) > 0 {
		d.overflow.Store(true)
		if err := d.catalog.ReleaseDeliveries(context.Background(), back); err != nil {
			d.log.Error("release deliveries", "error", err)
		}
	}
	return len(list) - len(back)
}

// loadBodies gives jobs the change event JSON of their changes, from
// memory when recent, else read together: one read of the change log, and
// one of each tenant file concerned. A job whose body is not found keeps
// none, and loadBody looks for it again when it is attempted.
func (d *Dispatcher) loadBodies(ctx context.Context, jobs []*job) {
	var gseqs []int64
	for _, j := range jobs {
		if e := d.hub.at(j.gseq); e != nil && e.ID == j.changeID {
			j.body = e.Body
		} else {
			gseqs = append(gseqs, j.gseq)
		}
	}
	if len(gseqs) == 0 {
		return
	}
	logged, err := d.catalog.ChangeLogAtPositions(ctx, gseqs)
	if err != nil {
		return
	}
	list := make([]*tenantstore.LoggedChange, 0, len(logged))
	for _, lc := range logged {
		list = append(list, lc)
	}
	events, err := d.loadEvents(ctx, list)
	if err != nil {
		return
	}
	byPos := make(map[int64]*Event, len(events))
	for _, e := range events {
		byPos[e.Position] = e
	}
	for _, j := range jobs {
		if e := byPos[j.gseq]; j.body == nil && e != nil && e.ID == j.changeID {
			j.body = e.Body
		}
	}
}

// loadBody returns the change event JSON of j's change: from memory when
// recent, else from where the change is stored. found is false when the
// change is gone.
func (d *Dispatcher) loadBody(ctx context.Context, j *job) ([]byte, bool, error) {
	if j.body != nil {
		return j.body, true, nil
	}
	if e := d.hub.at(j.gseq); e != nil && e.ID == j.changeID {
		return e.Body, true, nil
	}
	lc, err := d.catalog.ChangeLogAt(ctx, j.gseq)
	if runmerge.ErrorCode(err) == runmerge.ENOTFOUND {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	events, err := d.loadEvents(ctx, []*tenantstore.LoggedChange{lc})
	if err != nil {
		return nil, false, err
	}
	if len(events) == 0 || events[0].ID != j.changeID {
		return nil, false, nil
	}
	return events[0].Body, true, nil
}

// prune deletes change log entries, tenant.* events and deliveries older
// than the retention, at start and every prune interval. Each run costs
// the rows it deletes.
func (d *Dispatcher) prune() {
	defer d.loops.Done()
	t := time.NewTicker(d.cfg.PruneInterval)
	defer t.Stop()
	for {
		n, err := d.catalog.PruneChangeEvents(d.sendCtx, time.Now().Add(-d.cfg.Retention), 5000)
		if err != nil && d.sendCtx.Err() == nil {
			d.log.Warn("prune change events", "error", err)
		} else if n > 0 {
			d.log.Info("pruned change events", "rows", n)
		}
		select {
		case <-d.stopping:
			return
		case <-t.C:
		}
	}
}
