package handlers_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/handlers"
	"github.com/runmerge/runmerge/tenantstore"
	"github.com/runmerge/runmerge/webhook"
)

// changeAPI is a server with change events on: a store, a webhook
// dispatcher and the HTTP API over one data directory. It can be stopped
// and started again on the same directory, as a restart.
type changeAPI struct {
	t       testing.TB
	dir     string
	RootKey string
	opts    changeOptions

	Store  *tenantstore.Store
	D      *webhook.Dispatcher
	Server *handlers.Server
	URL    string
	served chan error
	client *http.Client
	up     bool
}

// changeOptions change how startChangeAPI builds the server.
type changeOptions struct {
	denyPrivate bool            // refuse private addresses (the default lets tests reach loopback)
	retry       []time.Duration // the retry schedule; short by default
	timeout     time.Duration   // the delivery timeout
	maxPerKey   int
	keepAlive   time.Duration
	level       slog.Level
	defaults    bool // the dispatcher's own sweep and poll intervals, as in production
}

// startChangeAPI starts a server over dir (a new temporary directory when
// empty) and stops it when the test ends.
func startChangeAPI(t testing.TB, dir string, o changeOptions) *changeAPI {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if o.retry == nil {
		o.retry = []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}
	}
	if o.timeout == 0 {
		o.timeout = 2 * time.Second
	}
	if o.level == 0 {
		o.level = slog.LevelWarn
	}
	b := make([]byte, 24)
	rand.Read(b)
	a := &changeAPI{t: t, dir: dir, RootKey: "root-" + hex.EncodeToString(b), opts: o,
		client: &http.Client{Timeout: 30 * time.Second}}
	a.start()
	t.Cleanup(a.stop)
	return a
}

func (a *changeAPI) start() {
	t := a.t
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: a.opts.level}))
	ctx := context.Background()
	store, err := tenantstore.Open(ctx, tenantstore.Config{DataDir: a.dir, MaxOpen: 50, Logger: log})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	cfg := webhook.Config{
		DataDir:       a.dir,
		AllowPrivate:  !a.opts.denyPrivate,
		RetrySchedule: a.opts.retry,
		Timeout:       a.opts.timeout,
		SweepInterval: 50 * time.Millisecond,
		PollInterval:  10 * time.Millisecond,
		Logger:        log,
	}
	if a.opts.defaults {
		cfg.SweepInterval, cfg.PollInterval = 0, 0
	}
	d, err := webhook.New(cfg, store)
	if err != nil {
		t.Fatalf("new dispatcher: %v", err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatalf("start dispatcher: %v", err)
	}
	a.Store, a.D = store, d
	a.startHTTP(log, d)
}

// startHTTP serves the API over a.Store, with change events from d when
// it is not nil.
func (a *changeAPI) startHTTP(log *slog.Logger, d *webhook.Dispatcher) {
	t := a.t
	srv := handlers.New(handlers.Config{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxBodyBytes:      1 << 20,
		MaxImportBytes:    16 << 20,
		RootKey:           a.RootKey,
		MetricsEnabled:    true,
		Webhooks:          d,
		StreamMaxPerKey:   a.opts.maxPerKey,
		StreamKeepAlive:   a.opts.keepAlive,
	}, a.Store, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.served = make(chan error, 1)
	go func() { a.served <- srv.Serve(ln) }()
	a.Server, a.URL, a.up = srv, "http://"+ln.Addr().String(), true
}

// stop shuts the server down as serve does: HTTP first (closing streams),
// then the dispatcher, then the store.
func (a *changeAPI) stop() {
	if !a.up {
		return
	}
	a.up = false
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Server.Shutdown(ctx); err != nil {
		a.t.Errorf("shut down server: %v", err)
	}
	if err := <-a.served; err != nil {
		a.t.Errorf("serve: %v", err)
	}
	a.Server.Close()
	if err := a.D.Stop(ctx); err != nil {
		a.t.Errorf("stop dispatcher: %v", err)
	}
	if err := a.Store.Close(ctx); err != nil {
		a.t.Errorf("close store: %v", err)
	}
}

// restart stops the server and starts it again on the same directory.
func (a *changeAPI) restart() {
	a.t.Helper()
	a.stop()
	a.start()
}

// do sends a request with key (none when empty) and returns the status and
// body.
func (a *changeAPI) do(method, path, key, body string) (int, []byte) {
	a.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.URL+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// must sends a request and fails the test unless it answers want.
func (a *changeAPI) must(want int, method, path, key, body string) []byte {
	a.t.Helper()
	got, b := a.do(method, path, key, body)
	if got != want {
		a.t.Fatalf("%s %s: %d, want %d: %s", method, path, got, want, b)
	}
	return b
}

// tenant creates tenant id.
func (a *changeAPI) tenant(id string) {
	a.t.Helper()
	a.must(201, "POST", "/v1/tenants", a.RootKey, `{"id":"`+id+`"}`)
}

// key makes a key in the catalog and returns its secret.
func (a *changeAPI) key(tenantID, role string, eventIDs ...string) (id, secret string) {
	a.t.Helper()
	secret = runmerge.NewKeySecret()
	k := &runmerge.Key{ID: uuid.Must(uuid.NewV7()).String(), Name: role, TenantID: tenantID, Role: role,
		EventIDs: eventIDs, Hash: runmerge.HashKeySecret(secret), CreatedAt: runmerge.Now()}
	if err := a.Store.Catalog.CreateKey(context.Background(), k); err != nil {
		a.t.Fatal(err)
	}
	return k.ID, secret
}

// createRecord creates a record of collection in tenant with the root key
// and returns its id.
func (a *changeAPI) createRecord(tenant, collection, body string) string {
	a.t.Helper()
	b := a.must(201, "POST", "/v1/"+collection+"?tenantId="+tenant, a.RootKey, body)
	var rec struct{ ID string }
	json.Unmarshal(b, &rec)
	return rec.ID
}

// webhookCreated is the answer to POST /v1/webhooks.
type webhookCreated struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

func (a *changeAPI) webhook(key, body string) webhookCreated {
	a.t.Helper()
	var w webhookCreated
	if err := json.Unmarshal(a.must(201, "POST", "/v1/webhooks", key, body), &w); err != nil {
		a.t.Fatal(err)
	}
	return w
}

// sseEvent is one message of an event stream.
type sseEvent struct {
	ID    string
	Event string
	Data  string
}

// sseClient reads an event stream.
type sseClient struct {
	resp   *http.Response
	events chan sseEvent
	done   chan struct{}

	mu       sync.Mutex
	comments int
}

// openStream opens GET /v1/stream with query and key, resuming after
// lastID when it is not empty, and fails the test unless it answers 200.
func (a *changeAPI) openStream(query, key, lastID string) *sseClient {
	a.t.Helper()
	s, status, body := a.tryStream(query, key, lastID)
	if status != 200 {
		a.t.Fatalf("GET /v1/stream%s: %d: %s", query, status, body)
	}
	return s
}

// tryStream opens a stream and returns it, or the status and body of a
// refusal.
func (a *changeAPI) tryStream(query, key, lastID string) (*sseClient, int, string) {
	a.t.Helper()
	req, _ := http.NewRequest("GET", a.URL+"/v1/stream"+query, nil)
	req.Header.Set("x-api-key", key)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		a.t.Fatalf("open stream: %v", err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, resp.StatusCode, string(b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		a.t.Errorf("stream content type %q", ct)
	}
	s := &sseClient{resp: resp, events: make(chan sseEvent, 10000), done: make(chan struct{})}
	go s.read()
	a.t.Cleanup(s.close)
	return s, 200, ""
}

func (s *sseClient) read() {
	defer close(s.done)
	defer close(s.events)
	sc := bufio.NewScanner(s.resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.ID != "" || ev.Data != "" {
				s.events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			s.mu.Lock()
			s.comments++
			s.mu.Unlock()
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.Data += line[6:]
		}
	}
}

func (s *sseClient) close() {
	s.resp.Body.Close()
	<-s.done
}

// next returns the next event, or fails after timeout.
func (s *sseClient) next(t testing.TB, timeout time.Duration) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(timeout):
		t.Fatalf("no event within %s", timeout)
	}
	return sseEvent{}
}

// quiet checks that no event arrives within d.
func (s *sseClient) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if ok {
			t.Fatalf("unexpected event %+v", ev)
		}
	case <-time.After(d):
	}
}

// ended reports whether the server ended the stream within d.
func (s *sseClient) ended(d time.Duration) bool {
	deadline := time.After(d)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// changeEvent is the data of a delivery or stream message.
type changeEvent struct {
	ID        string          `json:"id"`
	EventType string          `json:"eventType"`
	TenantID  string          `json:"tenantId"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

func decodeChange(t testing.TB, data string) changeEvent {
	t.Helper()
	var c changeEvent
	if err := json.Unmarshal([]byte(data), &c); err != nil {
		t.Fatalf("change event %q: %v", data, err)
	}
	return c
}

func eventJSON(n int) string {
	return fmt.Sprintf(`{"name":"Event %d","startDate":"2026-05-01T09:00:00Z","endDate":"2026-05-02T18:00:00Z"}`, n)
}

func personJSON(n int, events ...string) string {
	rel := ""
	if len(events) > 0 {
		rel = `,"relationships":{"linkedEventIds":["` + strings.Join(events, `","`) + `"]}`
	}
	return fmt.Sprintf(`{"firstName":"Ada","lastName":"Person %d","email":"p%d@example.com"%s}`, n, n, rel)
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
