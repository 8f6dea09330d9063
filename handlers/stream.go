package handlers

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/webhook"
)

// Stream settings.
const (
	defaultStreamsPerKey   = 5
	defaultStreamKeepAlive = 15 * time.Second
	// streamCheckEvery is how often an open stream checks that its key is
	// still valid and its tenant still active.
	streamCheckEvery = time.Second
	// streamBatch is how many events a stream reads at a time.
	streamBatch = 100
)

// streams counts the open streams per key and ends them all at shutdown.
type streams struct {
	perKey    int
	keepAlive time.Duration

	mu      sync.Mutex
	open    map[string]int
	closing chan struct{}
	closed  bool
}

func newStreams(perKey int, keepAlive time.Duration) *streams {
	if perKey <= 0 {
		perKey = defaultStreamsPerKey
	}
	if keepAlive <= 0 {
		keepAlive = defaultStreamKeepAlive
	}
	return &streams{perKey: perKey, keepAlive: keepAlive, open: make(map[string]int),
		closing: make(chan struct{})}
}

// enter counts a stream of key in, or refuses it when the key has its
// share open already or the server is shutting down.
func (st *streams) enter(key string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return runmerge.Errorf(runmerge.EUNAVAILABLE, "the server is shutting down")
	}
	if st.open[key] >= st.perKey {
		return runmerge.Errorf(runmerge.ERATELIMIT,
			"this key has %d streams open, the most it may; close one first", st.perKey)
	}
	st.open[key]++
	return nil
}

func (st *streams) leave(key string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.open[key]--; st.open[key] <= 0 {
		delete(st.open, key)
	}
}

// close ends every open stream; the server calls it when it shuts down.
func (st *streams) close() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.closed {
		st.closed = true
		close(st.closing)
	}
}

func (s *Server) registerStreamRoutes() {
	s.streams = newStreams(s.cfg.StreamMaxPerKey, s.cfg.StreamKeepAlive)
	s.route(http.MethodGet, "/v1/stream", runmerge.ActionStreamRead, s.stream)
}

// closeStreams ends the open streams, at shutdown.
func (s *Server) closeStreams() { s.streams.close() }

// stream handles GET /v1/stream: server-sent events, one message per change
// event the key may read, with the event's change log position as its id.
// Last-Event-ID resumes after a position; without it the stream starts at
// the present.
func (s *Server) stream(c echo.Context) error {
	d, err := s.dispatcher()
	if err != nil {
		return err
	}
	p := principalOf(c)
	q, err := parseQuery(c, "tenantId", "eventTypes")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()

	tenantID, given := q.get("tenantId")
	switch {
	case !p.Platform() && given && tenantID != p.TenantID:
		return runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")
	case !p.Platform():
		tenantID, given = p.TenantID, true
	case given && !runmerge.ValidTenantID(tenantID):
		return runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")
	}
	if err := s.authorize(c, runmerge.Target{TenantID: tenantID}); err != nil {
		return err
	}
	if given {
		c.Set(ctxTenantID, tenantID)
		if err := s.checkStreamTenant(c, tenantID); err != nil {
			return err
		}
	}
	types, err := parseEventTypes(q)
	if err != nil {
		return err
	}
	pos, err := lastEventID(c.Request())
	if err != nil {
		return err
	}

	who := p.KeyID
	if who == "" {
		who = "root"
	}
	if err := s.streams.enter(who); err != nil {
		return err
	}
	defer s.streams.leave(who)
	// The dispatcher follows the tenant files while a stream is open. A
	// stream from the present waits for it to take what was written while
	// it did not, which is the past.
	detach, err := d.Attach(ctx, pos < 0)
	if err != nil {
		return err
	}
	defer detach()
	if now := d.Position(); pos < 0 || pos > now {
		// No id yet, or one from the future (a catalog restored from an
		// older copy): start at the present rather than wait for it.
		pos = now
	}

	keep := func(e *webhook.Event) bool {
		if types != nil && !types[e.Type] {
			return false
		}
		return webhook.Visible(p, e)
	}

	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.Response().WriteHeader(http.StatusOK)
	w := c.Response()
	w.Write([]byte(": stream open\n\n"))
	w.Flush()

	keepAlive := time.NewTicker(s.streams.keepAlive)
	defer keepAlive.Stop()
	check := time.NewTicker(streamCheckEvery)
	defer check.Stop()
	var buf []byte
	for {
		updated := d.Updated()
		events, next, err := d.EventsAfter(ctx, pos, tenantID, keep, streamBatch)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("read change events for a stream", "request_id", requestID(c), "error", err)
			}
			return nil
		}
		if len(events) > 0 {
			buf = buf[:0]
			for _, e := range events {
				buf = appendSSE(buf, e)
			}
			if _, err := w.Write(buf); err != nil {
				return nil
			}
			w.Flush()
		}
		moved := next != pos
		pos = next
		if moved && pos < d.Position() {
			continue // more is waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.streams.closing:
			return nil
		case <-d.Done():
			return nil
		case <-updated:
		case <-keepAlive.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return nil
			}
			w.Flush()
		case <-check.C:
			if !s.auth.stillValid(ctx, p) {
				return nil
			}
			if given && s.checkStreamTenant(c, tenantID) != nil {
				return nil
			}
		}
	}
}

// checkStreamTenant checks that tenant id exists and is not suspended.
func (s *Server) checkStreamTenant(c echo.Context, id string) error {
	t, err := s.store.Catalog.Tenant(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if t.Status == runmerge.TenantSuspended {
		return runmerge.Errorf(runmerge.ESUSPENDED, "the tenant is suspended")
	}
	return nil
}

// parseEventTypes reads the eventTypes parameter: comma-separated types,
// or "*". It returns nil for every type.
func parseEventTypes(q query) (map[string]bool, error) {
	v, ok := q.get("eventTypes")
	if !ok {
		return nil, nil
	}
	types := make(map[string]bool)
	for _, t := range strings.Split(v, ",") {
		t = strings.TrimSpace(t)
		if t == webhook.WildcardEventType {
			return nil, nil
		}
		if !webhook.ValidEventType(t) {
			return nil, paramError("eventTypes", "must be event types such as person.created,person.updated, or *")
		}
		types[t] = true
	}
	return types, nil
}

// lastEventID reads the Last-Event-ID header: a position the stream sent.
// It returns -1 when the header is absent.
func lastEventID(r *http.Request) (int64, error) {
	v := strings.TrimSpace(r.Header.Get("Last-Event-ID"))
	if v == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, paramError("Last-Event-ID", "must be an id this server sent on the stream")
	}
	return n, nil
}

// appendSSE appends one server-sent event: the position as its id, the
// type as its event, the change event JSON (one line) as its data.
func appendSSE(b []byte, e *webhook.Event) []byte {
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, e.Position, 10)
	b = append(b, "\nevent: "...)
	b = append(b, e.Type...)
	b = append(b, "\ndata: "...)
	// The body is compact JSON, one line; should a line break ever appear,
	// each line still goes out as a data line of the same event.
	body := e.Body
	for {
		i := bytes.IndexByte(body, '\n')
		if i < 0 {
			break
		}
		b = append(b, body[:i]...)
		b = append(b, "\ndata: "...)
		body = body[i+1:]
	}
	b = append(b, body...)
	return append(b, "\n\n"...)
}
