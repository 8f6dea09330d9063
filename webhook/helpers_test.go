package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// platformAdmin is the operator's root key as a principal.
var platformAdmin = &runmerge.Principal{Role: runmerge.RoleAdmin}

// openStore opens a store over dir and closes it when the test ends,
// unless the test closes it first.
func openStore(t testing.TB, dir string) *tenantstore.Store {
	t.Helper()
	s, err := tenantstore.Open(context.Background(), tenantstore.Config{DataDir: dir, MaxOpen: 100})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// testConfig is a dispatcher configuration with short waits, reaching
// receivers on loopback.
func testConfig(dir string) Config {
	return Config{
		DataDir:       dir,
		AllowPrivate:  true,
		RetrySchedule: []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond},
		Timeout:       2 * time.Second,
		SweepInterval: 50 * time.Millisecond,
		PollInterval:  10 * time.Millisecond,
	}
}

// startDispatcher starts a dispatcher over store and stops it when the
// test ends, unless the test stops it first.
func startDispatcher(t testing.TB, store *tenantstore.Store, cfg Config) *Dispatcher {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	d, err := New(cfg, store)
	if err != nil {
		t.Fatalf("new dispatcher: %v", err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatalf("start dispatcher: %v", err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	return d
}

func mustCreateTenant(t testing.TB, store *tenantstore.Store, id string) {
	t.Helper()
	if _, err := store.CreateTenant(context.Background(), id, id); err != nil {
		t.Fatalf("create tenant %s: %v", id, err)
	}
}

// write runs fn on tenant id's file as a request would: marked first.
func write(t testing.TB, d *Dispatcher, store *tenantstore.Store, id string, fn func(db *tenantstore.DB) error) {
	t.Helper()
	ctx := context.Background()
	if err := d.BeginWrite(ctx, id); err != nil {
		t.Fatalf("begin write: %v", err)
	}
	l, err := store.Pool.Acquire(ctx, id)
	if err != nil {
		t.Fatalf("acquire %s: %v", id, err)
	}
	defer l.Release()
	if err := fn(l.DB()); err != nil {
		t.Fatalf("write to %s: %v", id, err)
	}
}

func collection(t testing.TB, name string) *runmerge.Collection {
	t.Helper()
	for _, c := range runmerge.Collections() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no collection %s", name)
	return nil
}

// personBody is a valid person, linked to events.
func personBody(n int, events ...string) map[string]any {
	body := map[string]any{
		"firstName": "Ada", "lastName": fmt.Sprintf("Person %d", n),
		"email": fmt.Sprintf("p%d@example.com", n),
	}
	if len(events) > 0 {
		ids := make([]any, len(events))
		for i, e := range events {
			ids[i] = e
		}
		body["relationships"] = map[string]any{"linkedEventIds": ids}
	}
	return body
}

// delivery is one request a receiver got.
type delivery struct {
	ID        string
	Timestamp string
	Event     struct {
		ID        string          `json:"id"`
		EventType string          `json:"eventType"`
		TenantID  string          `json:"tenantId"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	Body []byte
}

// receiver is a real HTTP receiver that checks the signature of every
// request with the secrets it is given, and answers as respond says.
type receiver struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	secrets  map[string]bool // any of these may sign
	got      []delivery
	bad      []string
	respond  func(d delivery) int
	received chan struct{}
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{t: t, secrets: make(map[string]bool), received: make(chan struct{}, 1<<16)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) URL() string { return r.srv.URL + "/hook" }

func (r *receiver) addSecret(s string) {
	r.mu.Lock()
	r.secrets[s] = true
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	d := delivery{ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"), Body: body}
	r.mu.Lock()
	secrets := make([]string, 0, len(r.secrets))
	for s := range r.secrets {
		secrets = append(secrets, s)
	}
	respond := r.respond
	r.mu.Unlock()

	verified := false
	for _, s := range secrets {
		if Verify(s, d.ID, d.Timestamp, req.Header.Get("webhook-signature"), body, time.Now(), 5*time.Minute) == nil {
			if want, _ := BodySignature(s, body); want == req.Header.Get("x-signature") {
				verified = true
			}
		}
	}
	err := json.Unmarshal(body, &d.Event)
	r.mu.Lock()
	switch {
	case !verified:
		r.bad = append(r.bad, "bad signature on "+d.ID)
	case err != nil:
		r.bad = append(r.bad, "bad body on "+d.ID)
	}
	r.mu.Unlock()

	status := http.StatusNoContent
	if respond != nil {
		status = respond(d)
	}
	if status >= 200 && status < 300 {
		r.mu.Lock()
		r.got = append(r.got, d)
		r.mu.Unlock()
		r.received <- struct{}{}
	}
	w.WriteHeader(status)
}

// deliveries returns what the receiver accepted so far.
func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// check fails the test on any request that did not verify.
func (r *receiver) check() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bad {
		r.t.Error(b)
	}
}

// waitFor waits until cond holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
