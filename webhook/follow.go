package webhook

import (
	"context"
	"sort"
	"sync"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// hubSize is how many recent change events are kept in memory for streams
// and first delivery attempts. Older ones are read from where they are
// stored.
const hubSize = 8192

// hub holds the latest change events in order of position and wakes those
// waiting for more.
type hub struct {
	mu   sync.RWMutex
	size int
	// events are in ascending positions, at least the latest size of them
	// and fewer than twice that. Readers keep slices of it after the lock
	// is released, so an element once written is never written again: the
	// oldest go by moving the latest to a new array.
	events  []*Event
	last    int64 // the latest position logged
	updated chan struct{}
	closed  bool
}

func newHub(size int) *hub {
	return &hub{size: size, updated: make(chan struct{})}
}

// start sets the position the hub begins at.
func (h *hub) start(last int64) {
	h.mu.Lock()
	h.last = last
	h.mu.Unlock()
}

// publish adds events, in order of position, and wakes the waiters.
func (h *hub) publish(events []*Event) {
	if len(events) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.events)+len(events) >= 2*h.size {
		keep := h.events[max(0, len(h.events)-h.size):]
		h.events = append(make([]*Event, 0, 2*h.size+len(events)), keep...)
	}
	h.events = append(h.events, events...)
	h.last = events[len(events)-1].Position
	if !h.closed {
		close(h.updated)
		h.updated = make(chan struct{})
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.updated)
	}
}

// at returns the event at position pos if it is in memory.
func (h *hub) at(pos int64) *Event {
	h.mu.RLock()
	defer h.mu.RUnlock()
	i := sort.Search(len(h.events), func(i int) bool { return h.events[i].Position >= pos })
	if i < len(h.events) && h.events[i].Position == pos {
		return h.events[i]
	}
	return nil
}

// after returns the events in memory after pos, and whether memory covers
// everything after pos (false when some have already left it).
func (h *hub) after(pos int64, limit int) ([]*Event, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if pos >= h.last {
		return nil, true
	}
	if len(h.events) == 0 || h.events[0].Position > pos+1 {
		return nil, false
	}
	i := sort.Search(len(h.events), func(i int) bool { return h.events[i].Position > pos })
	end := min(len(h.events), i+limit)
	return h.events[i:end], true
}

// Position returns the position of the latest change event. A stream that
// starts now begins after it.
func (d *Dispatcher) Position() int64 {
	d.hub.mu.RLock()
	defer d.hub.mu.RUnlock()
	return d.hub.last
}

// Updated returns a channel that is closed when change events after the
// current position are logged, or when the dispatcher stops.
func (d *Dispatcher) Updated() <-chan struct{} {
	d.hub.mu.RLock()
	defer d.hub.mu.RUnlock()
	return d.hub.updated
}

// EventsAfter returns the change events after position pos, of tenant
// tenantID only when it is not empty, that keep accepts, up to limit of
// them, and the position it read up to: the next call starts there. keep
// sees each event before its body is read; it is where a stream applies
// its key's permissions and filters. Events whose body is gone (pruned, or
// their tenant deleted) are skipped.
func (d *Dispatcher) EventsAfter(ctx context.Context, pos int64, tenantID string,
	keep func(*Event) bool, limit int) ([]*Event, int64, error) {
	if recent, ok := d.hub.after(pos, 4*limit); ok {
		var out []*Event
		for _, e := range recent {
			pos = e.Position
			if (tenantID == "" || e.TenantID == tenantID) && keep(e) {
				out = append(out, e)
				if len(out) == limit {
					break
				}
			}
		}
		return out, pos, nil
	}

	// Older than memory: read the change log, filter, then load the bodies
	// of what passed.
	logged, err := d.catalog.ChangeLogAfter(ctx, pos, tenantID, 4*limit)
	if err != nil {
		return nil, pos, err
	}
	var wanted []*tenantstore.LoggedChange
	for _, lc := range logged {
		pos = lc.Gseq
		e := &Event{Position: lc.Gseq, ID: lc.ChangeID, Type: lc.EventType, TenantID: lc.TenantID,
			Collection: collectionOf(lc.EventType), EventIDs: lc.EventIDs, At: lc.At}
		if lc.FromCatalog {
			e.Collection = ""
		}
		if keep(e) {
			wanted = append(wanted, lc)
			if len(wanted) == limit {
				break
			}
		}
	}
	events, err := d.loadEvents(ctx, wanted)
	return events, pos, err
}

// loadEvents reads the change events of log entries from where they are
// stored, one read per tenant, and returns those still there, in order.
// An entry whose stored change has another id (its tenant deleted and made
// again, or its file replaced) is skipped.
func (d *Dispatcher) loadEvents(ctx context.Context, logged []*tenantstore.LoggedChange) ([]*Event, error) {
	byTenant := make(map[string][]int64)
	var fromCatalog []int64
	for _, lc := range logged {
		if lc.FromCatalog {
			fromCatalog = append(fromCatalog, lc.SourceSeq)
		} else {
			byTenant[lc.TenantID] = append(byTenant[lc.TenantID], lc.SourceSeq)
		}
	}
	found := make(map[string]map[int64]*runmerge.Change)
	for id, seqs := range byTenant {
		l, err := d.store.Pool.Acquire(ctx, id)
		if runmerge.ErrorCode(err) == runmerge.ENOTFOUND {
			continue
		} else if err != nil {
			return nil, err
		}
		changes, err := l.DB().ChangesAt(ctx, seqs)
		l.Release()
		if err != nil {
			return nil, err
		}
		found[id] = changes
	}
	var catalogChanges map[int64]*runmerge.Change
	if len(fromCatalog) > 0 {
		var err error
		if catalogChanges, err = d.catalog.TenantChangesAt(ctx, fromCatalog); err != nil {
			return nil, err
		}
	}

	out := make([]*Event, 0, len(logged))
	for _, lc := range logged {
		var ch *runmerge.Change
		collection := ""
		if lc.FromCatalog {
			ch = catalogChanges[lc.SourceSeq]
		} else {
			ch = found[lc.TenantID][lc.SourceSeq]
			collection = collectionOf(lc.EventType)
		}
		if ch == nil || ch.ID != lc.ChangeID {
			continue
		}
		e := eventOf(ch, collection)
		e.Position = lc.Gseq
		out = append(out, e)
	}
	return out, nil
}
