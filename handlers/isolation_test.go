package handlers_test

// Tests of section 2 of API.md, keys, roles and tenants, against a real
// server: every route declares its action, and no key reaches what its
// tenant, role or events do not give it.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	_ "modernc.org/sqlite"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/handlers"
	"github.com/runmerge/runmerge/tenantstore"
	"github.com/runmerge/runmerge/webhook"
)

// isoServer is a Runmerge server on 127.0.0.1:0 over a data directory of
// its own, whose every response and log line the test keeps, so that it can
// check at the end that no secret leaked into either.
type isoServer struct {
	URL     string
	DataDir string
	Store   *tenantstore.Store
	HTTP    *handlers.Server
	RootKey string

	logs  isoBuffer
	httpc *http.Client

	mu        sync.Mutex
	exchanges []*isoResponse
	secrets   map[string]int // key secret → index of the response that created it
	webhooks  map[string]int // webhook secret → index of the response that created it
	dbs       map[string]*sql.DB

	// afterClose run once the server and its store are closed, before the
	// data directory goes.
	afterClose []func()
}

// isoOptions change how startIsoServer configures the server.
type isoOptions struct {
	RatePerKey   float64
	RateBurst    int
	MaxBodyBytes int64
}

// startIsoServer starts a server and, when the test ends, stops it and
// checks that no key secret, hash or webhook secret shows where it must not.
func startIsoServer(t testing.TB, opts isoOptions) *isoServer {
	t.Helper()
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	s := &isoServer{
		DataDir:  t.TempDir(),
		RootKey:  "root-" + rand.Text() + rand.Text(),
		secrets:  make(map[string]int),
		webhooks: make(map[string]int),
		dbs:      make(map[string]*sql.DB),
	}
	log := slog.New(slog.NewJSONHandler(&s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := tenantstore.Open(context.Background(), tenantstore.Config{
		DataDir: s.DataDir, MaxOpen: 1000, Logger: log,
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	s.Store = store
	// Change events on, as serve runs: webhooks and the stream. Deliveries
	// go to a closed local port, so nothing leaves the machine.
	d, err := webhook.New(webhook.Config{DataDir: s.DataDir, AllowPrivate: true, Timeout: time.Second,
		SweepInterval: 50 * time.Millisecond, PollInterval: 10 * time.Millisecond, Logger: log}, store)
	if err == nil {
		err = d.Start(context.Background())
	}
	if err != nil {
		store.Close(context.Background())
		t.Fatalf("start webhook dispatcher: %v", err)
	}
	s.HTTP = handlers.New(handlers.Config{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxBodyBytes:      opts.MaxBodyBytes,
		MaxImportBytes:    16 << 20,
		RootKey:           s.RootKey,
		RatePerKey:        opts.RatePerKey,
		RateBurst:         opts.RateBurst,
		Webhooks:          d,
	}, store, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		store.Close(context.Background())
		t.Fatalf("listen: %v", err)
	}
	s.URL = "http://" + ln.Addr().String()
	s.httpc = &http.Client{Timeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- s.HTTP.Serve(ln) }()

	// Cleanups run last first: the server stops, then the leaks are sought
	// in everything it left behind.
	t.Cleanup(func() { s.checkNoLeaks(t) })
	t.Cleanup(func() {
		for _, db := range s.dbs {
			db.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.HTTP.Shutdown(ctx); err != nil {
			t.Errorf("shut down server: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := d.Stop(ctx); err != nil {
			t.Errorf("stop webhook dispatcher: %v", err)
		}
		s.checkFilesHoldNoSecret(t, "while open")
		if err := store.Close(ctx); err != nil {
			t.Errorf("close store: %v", err)
		}
		s.checkFilesHoldNoSecret(t, "once closed")
		for _, fn := range s.afterClose {
			fn()
		}
	})
	return s
}

// isoBuffer is a log sink the server's goroutines may write while the test
// reads it.
type isoBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *isoBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *isoBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// isoResponse is one answer, kept whole.
type isoResponse struct {
	Method, Path string
	Status       int
	Header       http.Header
	Body         []byte
}

// isoReq is a request. Key "" sends no key; a Body is sent as JSON unless
// Header sets another Content-Type.
type isoReq struct {
	Key    string
	Method string
	Path   string
	Body   string
	Header map[string]string
}

// do sends r and keeps the answer. The body of an event stream is read for
// a moment only.
func (s *isoServer) do(t testing.TB, r isoReq) *isoResponse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var body io.Reader
	if r.Body != "" {
		body = strings.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, s.URL+r.Path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.Path, err)
	}
	if r.Body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.Key != "" {
		req.Header.Set("X-Api-Key", r.Key)
	}
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	resp, err := s.httpc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.Path, err)
	}
	defer resp.Body.Close()
	var b []byte
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		timer := time.AfterFunc(150*time.Millisecond, cancel)
		b, _ = io.ReadAll(resp.Body)
		timer.Stop()
	} else if b, err = io.ReadAll(resp.Body); err != nil {
		t.Fatalf("%s %s: read body: %v", r.Method, r.Path, err)
	}
	out := &isoResponse{Method: r.Method, Path: r.Path, Status: resp.StatusCode, Header: resp.Header, Body: b}
	s.keep(out)
	return out
}

// keep records a response and the secrets it shows: a key's in the 201 to
// POST /v1/keys, a webhook's in the 201 to POST /v1/webhooks.
func (s *isoServer) keep(r *isoResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exchanges = append(s.exchanges, r)
	if r.Method != http.MethodPost || r.Status != http.StatusCreated {
		return
	}
	route := strings.SplitN(r.Path, "?", 2)[0]
	var created struct {
		Key    string `json:"key"`
		Secret string `json:"secret"`
	}
	json.Unmarshal(r.Body, &created)
	if route == "/v1/keys" && created.Key != "" {
		s.secrets[created.Key] = len(s.exchanges) - 1
	}
	if route == "/v1/webhooks" && created.Secret != "" {
		s.webhooks[created.Secret] = len(s.exchanges) - 1
	}
}

// get, post, patch and del are do with the usual methods.
func (s *isoServer) get(t testing.TB, key, p string) *isoResponse {
	t.Helper()
	return s.do(t, isoReq{Key: key, Method: http.MethodGet, Path: p})
}

func (s *isoServer) post(t testing.TB, key, p, body string) *isoResponse {
	t.Helper()
	return s.do(t, isoReq{Key: key, Method: http.MethodPost, Path: p, Body: body})
}

func (s *isoServer) patch(t testing.TB, key, p, body string) *isoResponse {
	t.Helper()
	return s.do(t, isoReq{Key: key, Method: http.MethodPatch, Path: p, Body: body})
}

func (s *isoServer) del(t testing.TB, key, p string) *isoResponse {
	t.Helper()
	return s.do(t, isoReq{Key: key, Method: http.MethodDelete, Path: p})
}

// want fails the test unless the response has the status.
func (r *isoResponse) want(t testing.TB, status int) *isoResponse {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s %s: status %d, want %d; body: %s", r.Method, r.Path, r.Status, status, r.Body)
	}
	return r
}

// object decodes the body as one JSON object.
func (r *isoResponse) object(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("%s %s: body %s: %v", r.Method, r.Path, r.Body, err)
	}
	return m
}

// id returns the body's id member.
func (r *isoResponse) id(t testing.TB) string {
	t.Helper()
	id, _ := r.object(t)["id"].(string)
	if id == "" {
		t.Fatalf("%s %s: no id in %s", r.Method, r.Path, r.Body)
	}
	return id
}

var isoRequestID = regexp.MustCompile(`"requestId":"[^"]*"`)

// normalized is the body with its request id blanked, for comparing answers.
func (r *isoResponse) normalized() string {
	return isoRequestID.ReplaceAllString(string(r.Body), `"requestId":""`)
}

// createKey makes a key with the root key and returns its secret and id.
func (s *isoServer) createKey(t testing.TB, body string) (secret, id string) {
	t.Helper()
	r := s.post(t, s.RootKey, "/v1/keys", body).want(t, http.StatusCreated)
	m := r.object(t)
	return m["key"].(string), m["id"].(string)
}

// tenantDB opens tenant id's file for reading, beside the server.
func (s *isoServer) tenantDB(t testing.TB, id string) *sql.DB {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if db := s.dbs[id]; db != nil {
		return db
	}
	p := filepath.Join(s.DataDir, "tenants", id+".db")
	db, err := sql.Open("sqlite", "file:"+p+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	s.dbs[id] = db
	return db
}

// changeCount returns how many change events and records tenant id holds,
// and when its records last changed.
func (s *isoServer) changeCount(t testing.TB, id string) string {
	t.Helper()
	var changes, records int
	var last sql.NullString
	err := s.tenantDB(t, id).QueryRow(`SELECT (SELECT count(*) FROM changes),
		(SELECT count(*) FROM records), (SELECT max(updated_at) FROM records)`).Scan(&changes, &records, &last)
	if err != nil {
		t.Fatalf("count changes of %s: %v", id, err)
	}
	return fmt.Sprintf("%d changes, %d records, last at %s", changes, records, last.String)
}

// fileSums returns the SHA-256 of each tenant file (.db and -wal) of the
// tenants named, by file name.
func (s *isoServer) fileSums(t testing.TB, tenants []string) map[string]string {
	t.Helper()
	sums := make(map[string]string)
	for _, id := range tenants {
		for _, suffix := range []string{".db", ".db-wal"} {
			name := id + suffix
			b, err := os.ReadFile(filepath.Join(s.DataDir, "tenants", name))
			if os.IsNotExist(err) {
				sums[name] = "absent"
				continue
			} else if err != nil {
				t.Fatalf("read %s: %v", name, err)
			}
			sum := sha256.Sum256(b)
			sums[name] = hex.EncodeToString(sum[:])
		}
	}
	return sums
}

// allSecrets returns every secret the server was given or made.
func (s *isoServer) allSecrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []string{s.RootKey}
	for k := range s.secrets {
		out = append(out, k)
	}
	for k := range s.webhooks {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var (
	keySecretPattern     = regexp.MustCompile(`rmk_[a-z2-7]{39}`)
	webhookSecretPattern = regexp.MustCompile(`whsec_[A-Za-z0-9+/=_-]{8,}`)
	hexHashPattern       = regexp.MustCompile(`(?i)\b[0-9a-f]{64}\b`)
)

// checkNoLeaks checks every response and log line of the server's life: a
// key secret shows only in the answer that created it, a webhook secret
// likewise, no hash of a secret shows anywhere, and the log holds no secret.
func (s *isoServer) checkNoLeaks(t testing.TB) {
	t.Helper()
	secrets := s.allSecrets()
	hashes := make(map[string]bool)
	for _, sec := range secrets {
		hashes[runmerge.HashKeySecret(sec)] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.exchanges {
		body := string(r.Body)
		for _, sec := range keySecretPattern.FindAllString(body, -1) {
			if at, ok := s.secrets[sec]; !ok || at != i {
				t.Errorf("%s %s (%d) shows a key secret it did not create: %.300s", r.Method, r.Path, r.Status, body)
			}
		}
		for _, sec := range webhookSecretPattern.FindAllString(body, -1) {
			if at, ok := s.webhooks[sec]; !ok || at != i {
				t.Errorf("%s %s (%d) shows a webhook secret it did not create: %.300s", r.Method, r.Path, r.Status, body)
			}
		}
		if strings.Contains(body, s.RootKey) {
			t.Errorf("%s %s (%d) shows the root key", r.Method, r.Path, r.Status)
		}
		for _, h := range hexHashPattern.FindAllString(body, -1) {
			if hashes[strings.ToLower(h)] {
				t.Errorf("%s %s (%d) shows the hash of a secret: %.300s", r.Method, r.Path, r.Status, body)
			}
		}
		if strings.Contains(body, `"hash"`) {
			t.Errorf("%s %s (%d) has a hash member: %.300s", r.Method, r.Path, r.Status, body)
		}
	}
	logs := s.logs.String()
	for _, sec := range secrets {
		if strings.Contains(logs, sec) {
			t.Errorf("the log shows a secret (%.8s…)", sec)
		}
	}
	if m := keySecretPattern.FindString(logs); m != "" {
		t.Errorf("the log shows a key secret (%.8s…)", m)
	}
	if len(s.exchanges) > 0 {
		t.Logf("checked %d responses and %d bytes of log for %d secrets", len(s.exchanges), len(logs), len(secrets))
	}
}

// checkFilesHoldNoSecret looks for every raw secret in every file of the
// data directory, the catalog and its WAL among them.
func (s *isoServer) checkFilesHoldNoSecret(t testing.TB, when string) {
	t.Helper()
	secrets := s.allSecrets()
	err := filepath.WalkDir(s.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, sec := range secrets {
			if strings.Contains(string(b), sec) {
				t.Errorf("%s, %s holds a secret (%.8s…)", when, filepath.Base(p), sec)
			}
		}
		if m := keySecretPattern.Find(b); m != nil {
			t.Errorf("%s, %s holds a key secret (%.8s…)", when, filepath.Base(p), m)
		}
		return nil
	})
	if err != nil {
		t.Errorf("walk %s: %v", s.DataDir, err)
	}
}

// TestIsolationRoutesDeclareActions walks Echo's router: every route it
// serves must have declared an action the policy knows, so that no route
// is served without the policy deciding who may call it.
func TestIsolationRoutesDeclareActions(t *testing.T) {
	s := startIsoServer(t, isoOptions{})
	declared := s.HTTP.Routes()
	served := s.HTTP.EchoRoutes()
	if len(served) == 0 {
		t.Fatal("the router serves no route")
	}
	for _, r := range served {
		action, ok := declared[r]
		switch {
		case !ok:
			t.Errorf("route %s declares no action", r)
		case !runmerge.KnownAction(action):
			t.Errorf("route %s declares action %q, which the policy does not know", r, action)
		}
	}
	for r := range declared {
		if !slices.Contains(served, r) {
			t.Errorf("action declared for %s, which the router does not serve", r)
		}
	}
	t.Logf("%d routes, each with its action", len(served))
}

// TestIsolationUndeclaredRouteRefused checks that the server fails closed on
// a route added to Echo without declaring its action: it answers with an
// error and never runs the handler, with a key or without.
func TestIsolationUndeclaredRouteRefused(t *testing.T) {
	store, err := tenantstore.Open(context.Background(), tenantstore.Config{DataDir: t.TempDir(), MaxOpen: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(context.Background())
	root := "root-" + rand.Text() + rand.Text()
	srv := handlers.New(handlers.Config{MaxBodyBytes: 1 << 20, RootKey: root}, store,
		slog.New(slog.DiscardHandler))
	defer srv.Close()
	e, ok := srv.Handler().(*echo.Echo)
	if !ok {
		t.Skip("the handler is not Echo")
	}
	ran := false
	e.GET("/v1/undeclared", func(c echo.Context) error {
		ran = true
		return c.String(http.StatusOK, "data")
	})
	for _, key := range []string{"", root} {
		req := httptest.NewRequest(http.MethodGet, "/v1/undeclared", nil)
		if key != "" {
			req.Header.Set("X-Api-Key", key)
		}
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, req)
		if w.Code < 400 || ran {
			t.Errorf("undeclared route, key sent %t: status %d, handler ran %t", key != "", w.Code, ran)
		}
	}
}

// isoTenant is a tenant of the fixture: two events, one record linked to
// each in every other collection, and an admin, an event manager (of the
// first event) and a read-only key.
type isoTenant struct {
	ID       string
	EventIn  string // the event manager's event
	EventOut string // another event of the tenant
	// Records holds, per collection, the records within the event
	// manager's reach ("in") and outside it ("out").
	Records map[string]map[string]string
	Keys    map[string]*isoKey // by kind: admin, em, ro
	Webhook string             // a webhook of the tenant
}

// isoKey is a key of the fixture.
type isoKey struct {
	Name   string // "admin@iso-alpha", "padmin"
	Kind   string // padmin, pro, admin, em, ro
	Secret string
	ID     string
	Tenant *isoTenant // nil for platform keys
}

// isoFixture is three tenants with their keys, and two platform keys.
type isoFixture struct {
	Tenants  []*isoTenant
	Platform map[string]*isoKey // padmin, pro
	Webhook  string             // a webhook of no tenant, hearing every tenant
}

// isoWebhookBody is a webhook body for tenant (none when ""). Deliveries go
// to a closed local port, and only for a type the matrix seldom causes.
func isoWebhookBody(tenant string) string {
	b := map[string]any{"url": "http://127.0.0.1:1/iso", "eventTypes": []string{"tenant.updated"},
		"description": "isolation test"}
	if tenant != "" {
		b["tenantId"] = tenant
	}
	return isoJSON(b)
}

// isoRecordBody returns a valid body of collection coll: with linked, its
// eventId (sessions) or relationships.linkedEventIds (the others) names
// those events. extra members are added as they are.
func isoRecordBody(coll string, linked []string, extra map[string]any) map[string]any {
	b := map[string]any{}
	switch coll {
	case "events":
		b = map[string]any{"name": "Conf " + rand.Text()[:6], "startDate": "2026-05-01T09:00:00Z",
			"endDate": "2026-05-03T18:00:00Z"}
	case "people":
		b = map[string]any{"firstName": "Ada", "lastName": "Lovelace",
			"email": "ada." + strings.ToLower(rand.Text()[:6]) + "@example.com"}
	case "sessions":
		b = map[string]any{"name": "Keynote", "startDate": "2026-05-01T09:00:00Z",
			"endDate": "2026-05-01T10:00:00Z"}
	case "exhibitors", "sponsors":
		b = map[string]any{"name": "Booth " + rand.Text()[:6]}
	case "tickets":
		b = map[string]any{"ticketType": "VIP", "price": 120, "currency": "EUR", "status": "valid"}
	case "resources":
		b = map[string]any{"name": "Slides", "resourceType": "Document", "url": "https://example.com/s.pdf"}
	}
	switch {
	case len(linked) == 0:
	case coll == "sessions":
		b["eventId"] = linked[0]
		if len(linked) > 1 {
			b["relationships"] = map[string]any{"linkedEventIds": linked[1:]}
		}
	default:
		b["relationships"] = map[string]any{"linkedEventIds": linked}
	}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

func isoJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// newIsoFixture builds three tenants, their records and keys, and the
// platform keys, all through the API with the root key.
func newIsoFixture(t testing.TB, s *isoServer) *isoFixture {
	t.Helper()
	f := &isoFixture{Platform: make(map[string]*isoKey)}
	for _, id := range []string{"iso-alpha", "iso-bravo", "iso-charlie"} {
		s.post(t, s.RootKey, "/v1/tenants", `{"id":"`+id+`"}`).want(t, http.StatusCreated)
		tn := &isoTenant{ID: id, Records: make(map[string]map[string]string), Keys: make(map[string]*isoKey)}
		q := "?tenantId=" + id
		tn.EventIn = s.post(t, s.RootKey, "/v1/events"+q, isoJSON(isoRecordBody("events", nil, nil))).
			want(t, http.StatusCreated).id(t)
		tn.EventOut = s.post(t, s.RootKey, "/v1/events"+q, isoJSON(isoRecordBody("events", nil, nil))).
			want(t, http.StatusCreated).id(t)
		tn.Records["events"] = map[string]string{"in": tn.EventIn, "out": tn.EventOut}
		for _, c := range runmerge.CollectionNames[1:] {
			tn.Records[c] = map[string]string{}
			for scope, event := range map[string]string{"in": tn.EventIn, "out": tn.EventOut} {
				body := isoJSON(isoRecordBody(c, []string{event}, nil))
				tn.Records[c][scope] = s.post(t, s.RootKey, "/v1/"+c+q, body).want(t, http.StatusCreated).id(t)
			}
		}
		for kind, body := range map[string]string{
			"admin": `{"name":"admin","tenantId":"` + id + `","role":"admin"}`,
			"em":    `{"name":"em","tenantId":"` + id + `","role":"event_manager","eventIds":["` + tn.EventIn + `"]}`,
			"ro":    `{"name":"ro","tenantId":"` + id + `","role":"read_only"}`,
		} {
			secret, keyID := s.createKey(t, body)
			tn.Keys[kind] = &isoKey{Name: kind + "@" + id, Kind: kind, Secret: secret, ID: keyID, Tenant: tn}
		}
		tn.Webhook = s.post(t, s.RootKey, "/v1/webhooks", isoWebhookBody(id)).want(t, http.StatusCreated).id(t)
		f.Tenants = append(f.Tenants, tn)
	}
	for kind, role := range map[string]string{"padmin": "admin", "pro": "read_only"} {
		secret, keyID := s.createKey(t, `{"name":"`+kind+`","role":"`+role+`"}`)
		f.Platform[kind] = &isoKey{Name: kind, Kind: kind, Secret: secret, ID: keyID}
	}
	f.Webhook = s.post(t, s.RootKey, "/v1/webhooks", isoWebhookBody("")).want(t, http.StatusCreated).id(t)
	return f
}

// keys returns every key of the fixture: the tenants' first, then the
// platform read-only and admin keys.
func (f *isoFixture) keys() []*isoKey {
	var out []*isoKey
	for _, tn := range f.Tenants {
		for _, kind := range []string{"admin", "em", "ro"} {
			out = append(out, tn.Keys[kind])
		}
	}
	return append(out, f.Platform["pro"], f.Platform["padmin"])
}

// readLines returns the lines of a file, for the permissions table.
func readLines(t testing.TB, name string) []string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return lines
}

// permRule is one line of testdata/permissions.txt: seven patterns, for
// the key kind, method, route, action, q, id and body of a call, and the
// answer expected.
type permRule struct {
	Line     int
	Patterns [7][]string
	Expect   string
}

// loadPermissions reads the expected-permissions table.
func loadPermissions(t testing.TB) []permRule {
	t.Helper()
	var rules []permRule
	for i, line := range readLines(t, filepath.Join("testdata", "permissions.txt")) {
		if j := strings.Index(line, "#"); j >= 0 {
			line = line[:j]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 8 {
			t.Fatalf("permissions.txt:%d: %d columns, want 8", i+1, len(f))
		}
		r := permRule{Line: i + 1, Expect: f[7]}
		for j := range 7 {
			r.Patterns[j] = strings.Split(f[j], "|")
			for _, p := range r.Patterns[j] {
				if _, err := path.Match(p, ""); err != nil {
					t.Fatalf("permissions.txt:%d: pattern %q: %v", i+1, p, err)
				}
			}
		}
		if !validExpect(r.Expect) {
			t.Fatalf("permissions.txt:%d: expect %q: want a status, 2xx, deny or any", i+1, r.Expect)
		}
		rules = append(rules, r)
	}
	return rules
}

func validExpect(e string) bool {
	if e == "2xx" || e == "deny" || e == "any" {
		return true
	}
	var n int
	_, err := fmt.Sscanf(e, "%d", &n)
	return err == nil && n >= 100 && n < 600
}

// matchField reports whether value matches one of patterns: "*" matches
// anything, any other pattern as path.Match says.
func matchField(patterns []string, value string) bool {
	for _, p := range patterns {
		if p == "*" {
			return true
		}
		if ok, _ := path.Match(p, value); ok {
			return true
		}
	}
	return false
}

// expectation returns the first rule that matches c.
func expectation(rules []permRule, c *isoCall) (permRule, bool) {
	values := [7]string{c.Key.Kind, c.Method, c.Route, c.Action, c.Q, c.ID, c.Body}
	for _, r := range rules {
		ok := true
		for i, v := range values {
			if !matchField(r.Patterns[i], v) {
				ok = false
				break
			}
		}
		if ok {
			return r, true
		}
	}
	return permRule{}, false
}

// allows reports whether expect e lets the call succeed.
func allows(e string) bool {
	return e == "2xx" || e == "any" || strings.HasPrefix(e, "2")
}

// meets reports whether status meets expectation e.
func meets(e string, status int) bool {
	switch e {
	case "2xx":
		return status >= 200 && status < 300
	case "deny":
		return status >= 400 && status < 500
	case "any":
		return status < 500
	}
	return e == fmt.Sprint(status)
}

// isoCall is one call of the isolation matrix.
type isoCall struct {
	Key    *isoKey
	Method string
	Route  string // as Echo spells it: /v1/people/:id
	Action string // the route's declared action; "-" when it does not serve Method
	Family string // records, keys, tenants, public or other

	// Labels, matched against the permissions table; see its header.
	Q, ID, Body string

	Target  *isoTenant // the tenant the call names (home when q is none); nil when missing
	Path    string
	Payload string
	Rule    permRule

	// throwaway, when set, makes the call's target just before the key's
	// calls run, so that an allowed destructive call spends nothing of the
	// fixture.
	throwaway func(t testing.TB)
}

// writeMethods change things when allowed.
var writeMethods = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "DELETE": true}

// matrixMethods are the methods every route is called with.
var matrixMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

// isoMatrix plans and runs the isolation matrix.
type isoMatrix struct {
	s     *isoServer
	f     *isoFixture
	rules []permRule

	// What exists, for the checks that no answer shows what its key may
	// not see: records by id (their tenant and whether the event manager
	// reaches them), keys by id (their tenant, "" for platform keys).
	records    map[string]isoRecord
	keyIDs     map[string]string
	webhookIDs map[string]string // webhook id → its tenant, "" for none

	calls      int
	allowed    int
	unexpected []string // allowed where the table says deny
	mismatches []string // other answers the table does not expect
	leaks      []string
	notFound   map[string][]*isoResponse // 404s by key, method and route, for comparison
	missing404 map[string]map[string]bool
}

// isoRecord is what the matrix knows of a record.
type isoRecord struct {
	Tenant string
	In     bool // within the event manager's reach
}

func newIsoMatrix(t testing.TB, s *isoServer, f *isoFixture) *isoMatrix {
	m := &isoMatrix{s: s, f: f, rules: loadPermissions(t), records: make(map[string]isoRecord),
		keyIDs: make(map[string]string), webhookIDs: make(map[string]string),
		notFound:   make(map[string][]*isoResponse),
		missing404: make(map[string]map[string]bool)}
	for _, tn := range f.Tenants {
		for _, byScope := range tn.Records {
			for scope, id := range byScope {
				m.records[id] = isoRecord{Tenant: tn.ID, In: scope == "in"}
			}
		}
		for _, k := range tn.Keys {
			m.keyIDs[k.ID] = tn.ID
		}
		m.webhookIDs[tn.Webhook] = tn.ID
	}
	for _, k := range f.Platform {
		m.keyIDs[k.ID] = ""
	}
	m.webhookIDs[f.Webhook] = ""
	return m
}

// home is the tenant a key's calls name by default: its own, or for a
// platform key the first tenant.
func (m *isoMatrix) home(k *isoKey) *isoTenant {
	if k.Tenant != nil {
		return k.Tenant
	}
	return m.f.Tenants[0]
}

// others are the fixture's tenants but t.
func (m *isoMatrix) others(t *isoTenant) []*isoTenant {
	var out []*isoTenant
	for _, o := range m.f.Tenants {
		if o != t {
			out = append(out, o)
		}
	}
	return out
}

// target is one choice of tenantId for a call.
type isoTarget struct {
	Q      string
	Tenant *isoTenant // nil when q is missing
}

func (m *isoMatrix) targets(k *isoKey) []isoTarget {
	h := m.home(k)
	out := []isoTarget{{"none", h}, {"home", h}}
	for _, o := range m.others(h) {
		out = append(out, isoTarget{"other", o})
	}
	return append(out, isoTarget{"missing", nil})
}

func query(tg isoTarget) string {
	switch tg.Q {
	case "none":
		return ""
	case "missing":
		return "?tenantId=iso-nowhere"
	}
	return "?tenantId=" + tg.Tenant.ID
}

// plan returns every call key k makes: every route, every method, with
// ids, tenantIds and bodies of its own tenant, of the others, of events out
// of its reach, and of nothing at all.
func (m *isoMatrix) plan(t testing.TB, k *isoKey) []*isoCall {
	t.Helper()
	declared := m.s.HTTP.Routes()
	var paths []string
	for _, r := range m.s.HTTP.EchoRoutes() {
		p := strings.SplitN(r, " ", 2)[1]
		if !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var calls []*isoCall
	for _, p := range paths {
		for _, method := range matrixMethods {
			action, ok := declared[method+" "+p]
			base := &isoCall{Key: k, Method: method, Route: p, Action: string(action), Family: family(p, action)}
			if !ok || k.Kind == "nokey" {
				if !ok {
					base.Action = "-"
				}
				calls = append(calls, m.unserved(base))
				continue
			}
			var cs []*isoCall
			switch base.Family {
			case "records":
				cs = m.recordCalls(base)
			case "keys":
				cs = m.keyCalls(base)
			case "tenants":
				cs = m.tenantCalls(base)
			case "public":
				base.Q, base.ID, base.Body, base.Path = "none", "-", "-", p
				cs = []*isoCall{base}
			default:
				cs = m.otherCalls(base)
			}
			calls = append(calls, cs...)
		}
	}
	for _, c := range calls {
		r, ok := expectation(m.rules, c)
		if !ok {
			t.Fatalf("no line of permissions.txt matches %s", c)
		}
		c.Rule = r
	}
	m.planThrowaways(t, calls)
	return calls
}

func (c *isoCall) String() string {
	return fmt.Sprintf("%s %s %s [action %s, q %s, id %s, body %s]", c.Key.Name, c.Method, c.Route,
		c.Action, c.Q, c.ID, c.Body)
}

// family sorts a route into the kinds of call the matrix knows how to
// aim. Routes it does not know fall to the table's default lines.
func family(p string, action runmerge.Action) string {
	switch {
	case action == runmerge.ActionPublic:
		return "public"
	case p == "/v1/keys" || p == "/v1/keys/:id":
		return "keys"
	case p == "/v1/tenants" || p == "/v1/tenants/:id":
		return "tenants"
	}
	seg := strings.Split(strings.TrimPrefix(p, "/v1/"), "/")
	if _, ok := runmerge.CollectionByName(seg[0]); ok && strings.HasPrefix(p, "/v1/") &&
		(len(seg) == 1 || len(seg) == 2 && (seg[1] == "bulk" || seg[1] == ":id")) {
		return "records"
	}
	return "other"
}

var pathParam = regexp.MustCompile(`:[A-Za-z0-9_]+`)

// unserved is the one call of a method a route does not serve.
func (m *isoMatrix) unserved(c *isoCall) *isoCall {
	h := m.home(c.Key)
	c.Q, c.ID, c.Body, c.Target = "none", "-", "-", h
	c.Path = pathParam.ReplaceAllString(c.Route, h.EventIn)
	if writeMethods[c.Method] {
		c.Payload = "{}"
	}
	return c
}

func (m *isoMatrix) variant(base *isoCall, tg isoTarget, id, body, p, payload string) *isoCall {
	c := *base
	c.Q, c.Target, c.ID, c.Body = tg.Q, tg.Tenant, id, body
	c.Path = p + query(tg)
	c.Payload = payload
	return &c
}

// recordCalls aims a record route at every tenant and scope.
func (m *isoMatrix) recordCalls(base *isoCall) []*isoCall {
	coll := strings.Split(strings.TrimPrefix(base.Route, "/v1/"), "/")[0]
	var out []*isoCall
	home := m.home(base.Key)
	switch {
	case base.Method == "GET" && !strings.Contains(base.Route, ":id"):
		for _, tg := range m.targets(base.Key) {
			out = append(out, m.variant(base, tg, "-", "-", base.Route, ""))
		}
	case base.Method == "POST":
		bulk := strings.HasSuffix(base.Route, "/bulk")
		for _, tg := range m.targets(base.Key) {
			bodies := []string{"in"}
			if tg.Q == "none" || tg.Q == "home" {
				bodies = []string{"in", "out", "mixed", "foreign", "none"}
				if bulk {
					bodies = append(bodies, "upsert-in", "upsert-out")
				}
			}
			for _, b := range bodies {
				payload := m.createBody(coll, tg.Tenant, b)
				if bulk {
					payload = `{"records":[` + payload + `]}`
				}
				out = append(out, m.variant(base, tg, "-", b, base.Route, payload))
			}
		}
	default: // GET, PATCH, DELETE of one record
		for _, tg := range m.targets(base.Key) {
			var ids []string
			switch tg.Q {
			case "none":
				ids = []string{"in", "out", "foreign", "foreign", "missing"}
			case "home", "other":
				ids = []string{"in", "foreign", "missing"}
			case "missing":
				ids = []string{"in"}
			}
			seen := 0
			for _, id := range ids {
				idValue := m.recordID(coll, tg.Tenant, home, id, seen)
				if id == "foreign" {
					seen++
				}
				bodies := []string{"-"}
				if base.Method == "PATCH" {
					bodies = []string{"plain"}
					if id == "in" && (tg.Q == "none" || tg.Q == "home") {
						bodies = append(bodies, "addout", "moveout", "foreign")
					}
				}
				for _, b := range bodies {
					p := strings.Replace(base.Route, ":id", idValue, 1)
					out = append(out, m.variant(base, tg, id, b, p, m.patchBody(coll, tg.Tenant, b)))
				}
			}
		}
	}
	return out
}

// recordID returns the id of a record of collection coll, in or out of the
// event manager's reach in tenant tg, of another tenant (foreign, the n-th
// other), or of nothing.
func (m *isoMatrix) recordID(coll string, tg, home *isoTenant, label string, n int) string {
	if tg == nil {
		tg = home
		if label == "in" {
			return home.Records[coll]["in"]
		}
	}
	switch label {
	case "in", "out":
		return tg.Records[coll][label]
	case "foreign":
		others := m.others(tg)
		return others[n%len(others)].Records[coll]["in"]
	}
	return uuid.Must(uuid.NewV7()).String()
}

// createBody returns a record body for a create in tenant tg, linking to:
// in, its event manager's event; out, its other event; mixed, both;
// foreign, another tenant's event; none, nothing. upsert-in and upsert-out
// are filled in by the throwaway made for the call.
func (m *isoMatrix) createBody(coll string, tg *isoTenant, label string) string {
	if tg == nil {
		tg = m.f.Tenants[0]
	}
	var linked []string
	switch label {
	case "in", "upsert-in":
		linked = []string{tg.EventIn}
	case "out", "upsert-out":
		linked = []string{tg.EventOut}
	case "mixed":
		linked = []string{tg.EventIn, tg.EventOut}
	case "foreign":
		linked = []string{m.others(tg)[0].EventIn}
	}
	return isoJSON(isoRecordBody(coll, linked, nil))
}

// plainField is a field of each collection a patch may change without
// touching links.
var plainField = map[string]string{
	"events": "description", "people": "jobTitle", "sessions": "description", "exhibitors": "description",
	"sponsors": "description", "tickets": "seatNumber", "resources": "description",
}

// patchBody returns a merge patch for a record of tg linked to its in
// event: plain changes no link; addout adds the other event; moveout swaps
// the in event for it; foreign adds another tenant's event.
func (m *isoMatrix) patchBody(coll string, tg *isoTenant, label string) string {
	if label == "-" {
		return ""
	}
	if tg == nil {
		tg = m.f.Tenants[0]
	}
	foreign := m.others(tg)[0].EventIn
	links := func(ids ...string) map[string]any {
		return map[string]any{"relationships": map[string]any{"linkedEventIds": ids}}
	}
	switch {
	case label == "plain":
		return isoJSON(map[string]any{plainField[coll]: "patched " + rand.Text()[:6]})
	case coll == "events":
		if label == "foreign" {
			return isoJSON(links(foreign))
		}
		return isoJSON(links(tg.EventOut))
	case coll == "sessions":
		switch label {
		case "addout":
			return isoJSON(links(tg.EventOut))
		case "moveout":
			return isoJSON(map[string]any{"eventId": tg.EventOut})
		}
		return isoJSON(map[string]any{"eventId": foreign})
	}
	switch label {
	case "addout":
		return isoJSON(links(tg.EventIn, tg.EventOut))
	case "moveout":
		return isoJSON(links(tg.EventOut))
	}
	return isoJSON(links(tg.EventIn, foreign))
}

// keyCalls aims the key routes at keys of every tenant and of the platform.
func (m *isoMatrix) keyCalls(base *isoCall) []*isoCall {
	home := m.home(base.Key)
	others := m.others(home)
	none := isoTarget{"none", home}
	var out []*isoCall
	switch {
	case base.Method == "GET" && base.Route == "/v1/keys":
		for _, tg := range m.targets(base.Key) {
			out = append(out, m.variant(base, tg, "-", "-", base.Route, ""))
		}
	case base.Method == "POST":
		key := func(tenant any, role string, events ...string) string {
			b := map[string]any{"name": "matrix", "role": role}
			if tenant != nil {
				b["tenantId"] = tenant
			}
			if events != nil {
				b["eventIds"] = events
			}
			return isoJSON(b)
		}
		bodies := []struct{ label, body string }{
			{"home-admin", key(home.ID, "admin")},
			{"home-ro", key(home.ID, "read_only")},
			{"home-em", key(home.ID, "event_manager", home.EventIn)},
			{"home-em-out", key(home.ID, "event_manager", home.EventOut)},
			{"home-em-foreign", key(home.ID, "event_manager", others[0].EventIn)},
			{"notenant-admin", key(nil, "admin")},
			{"notenant-ro", key(nil, "read_only")},
			{"other-admin", key(others[0].ID, "admin")},
			{"other-admin", key(others[1].ID, "admin")},
			{"other-em", key(others[1].ID, "event_manager", others[1].EventIn)},
			{"missing-ro", key("iso-nowhere", "read_only")},
			{"empty-ro", key("", "read_only")},
		}
		for _, b := range bodies {
			out = append(out, m.variant(base, none, "-", b.label, base.Route, b.body))
		}
		for _, tg := range m.targets(base.Key)[2:] { // another tenant, and none, in the query
			out = append(out, m.variant(base, tg, "-", bodies[1].label, base.Route, bodies[1].body))
		}
	default: // GET or DELETE /v1/keys/:id
		ids := []struct{ label, id string }{
			{"in", home.Keys["ro"].ID},
			{"foreign", others[0].Keys["admin"].ID},
			{"foreign", others[1].Keys["ro"].ID},
			{"platform", m.f.Platform["pro"].ID},
			{"missing", uuid.Must(uuid.NewV7()).String()},
		}
		for _, id := range ids {
			p := strings.Replace(base.Route, ":id", id.id, 1)
			out = append(out, m.variant(base, none, id.label, "-", p, ""))
		}
		for _, tg := range m.targets(base.Key)[2:] {
			p := strings.Replace(base.Route, ":id", ids[0].id, 1)
			out = append(out, m.variant(base, tg, ids[0].label, "-", p, ""))
		}
	}
	return out
}

// tenantCalls aims the tenant routes at the key's tenant, the others and
// one that does not exist.
func (m *isoMatrix) tenantCalls(base *isoCall) []*isoCall {
	home := m.home(base.Key)
	none := isoTarget{"none", home}
	if base.Route == "/v1/tenants" {
		if base.Method == "POST" {
			body := `{"id":"iso-new-` + strings.ToLower(rand.Text()[:10]) + `"}`
			return []*isoCall{m.variant(base, none, "-", "new", base.Route, body)}
		}
		return []*isoCall{m.variant(base, none, "-", "-", base.Route, "")}
	}
	ids := []struct{ label, id string }{{"in", home.ID}, {"missing", "iso-nowhere"}}
	for _, o := range m.others(home) {
		ids = append(ids, struct{ label, id string }{"foreign", o.ID})
	}
	var out []*isoCall
	for _, id := range ids {
		body, payload := "-", ""
		if base.Method == "PATCH" {
			body, payload = "rename", `{"name":"Renamed by the matrix"}`
		}
		p := strings.Replace(base.Route, ":id", id.id, 1)
		out = append(out, m.variant(base, none, id.label, body, p, payload))
	}
	return out
}

// otherCalls aims a route the matrix has no special knowledge of (webhooks,
// the stream, export and import, whatever comes next) at the key's tenant,
// another and none, with bodies naming either. The first path parameter
// names a tenant under /v1/tenants/:id, a webhook under /v1/webhooks/:id,
// and a record elsewhere; further parameters name nothing.
func (m *isoMatrix) otherCalls(base *isoCall) []*isoCall {
	home := m.home(base.Key)
	other := m.others(home)[0]
	hasParams := pathParam.MatchString(base.Route)
	webhooks := strings.HasPrefix(base.Route, "/v1/webhooks/:")
	type pair struct {
		tg isoTarget
		id string
	}
	pairs := []pair{{isoTarget{"none", home}, "in"}, {isoTarget{"home", home}, "in"},
		{isoTarget{"other", other}, "in"}, {isoTarget{"missing", nil}, "in"}}
	if hasParams {
		pairs = append(pairs, pair{isoTarget{"none", home}, "foreign"}, pair{isoTarget{"none", home}, "missing"},
			pair{isoTarget{"other", other}, "foreign"})
		if webhooks {
			pairs = append(pairs, pair{isoTarget{"none", home}, "platform"})
		}
	}
	bodies := []string{"-"}
	switch {
	case webhooks && base.Method == "PATCH":
		bodies = []string{"plain"}
	case base.Method == "POST" && strings.HasSuffix(base.Route, "/retry"):
	case base.Method == "POST" || base.Method == "PUT" || base.Method == "PATCH":
		bodies = []string{"home", "other"}
	}
	var out []*isoCall
	for _, pr := range pairs {
		for _, b := range bodies {
			id := pr.id
			if !hasParams {
				id = "-"
			}
			c := m.variant(base, pr.tg, id, b, "", m.otherBody(b, home, other))
			c.Path = m.otherPath(c) + query(pr.tg)
			out = append(out, c)
		}
	}
	return out
}

// otherPath fills the parameters of a call of a route otherCalls aims.
func (m *isoMatrix) otherPath(c *isoCall) string {
	tg := c.Target
	if tg == nil {
		tg = m.home(c.Key)
	}
	first := true
	return pathParam.ReplaceAllStringFunc(c.Route, func(string) string {
		if !first {
			return uuid.Must(uuid.NewV7()).String()
		}
		first = false
		switch {
		case c.ID == "missing" && strings.HasPrefix(c.Route, "/v1/tenants/:"):
			return "iso-nowhere"
		case c.ID == "missing":
			return uuid.Must(uuid.NewV7()).String()
		case strings.HasPrefix(c.Route, "/v1/tenants/:"):
			if c.ID == "foreign" {
				return m.others(tg)[0].ID
			}
			return tg.ID
		case strings.HasPrefix(c.Route, "/v1/webhooks/:"):
			switch c.ID {
			case "foreign":
				return m.others(tg)[0].Webhook
			case "platform":
				return m.f.Webhook
			}
			return tg.Webhook
		case c.ID == "foreign":
			return m.others(tg)[0].EventIn
		}
		return tg.EventIn
	})
}

// otherBody is the body of a call of a route otherCalls aims: a webhook
// for the key's tenant or another, or a harmless change.
func (m *isoMatrix) otherBody(label string, home, other *isoTenant) string {
	switch label {
	case "home":
		return isoWebhookBody(home.ID)
	case "other":
		return isoWebhookBody(other.ID)
	case "plain":
		return `{"description":"changed by the matrix"}`
	}
	return ""
}

// planThrowaways gives every allowed destructive call a target of its own,
// made before the key's calls start, so that the fixture survives. Calls of
// routes the matrix does not know are aimed at nothing instead.
func (m *isoMatrix) planThrowaways(t testing.TB, calls []*isoCall) {
	t.Helper()
	for _, c := range calls {
		c := c
		allowed := allows(c.Rule.Expect)
		switch c.Family {
		case "other":
			destructive := c.Method == "DELETE" || c.Method == "PUT" || c.Method == "PATCH"
			if !allowed || !destructive || c.ID == "missing" || c.ID == "-" {
				continue
			}
			if strings.HasPrefix(c.Route, "/v1/webhooks/:") {
				// A webhook of its own, of the tenant the label names.
				tenant := ""
				if c.ID != "platform" {
					tg := c.Target
					if tg == nil {
						tg = m.home(c.Key)
					}
					if tenant = tg.ID; c.ID == "foreign" {
						tenant = m.others(tg)[0].ID
					}
				}
				c.throwaway = func(t testing.TB) {
					id := m.s.post(t, m.s.RootKey, "/v1/webhooks", isoWebhookBody(tenant)).
						want(t, http.StatusCreated).id(t)
					m.webhookIDs[id] = tenant
					c.Path = strings.Replace(c.Route, ":id", id, 1) + query(isoTarget{c.Q, c.Target})
				}
				continue
			}
			// Anything else the matrix cannot make: aim at nothing.
			c.ID = "missing"
			c.Path = m.otherPath(c) + query(isoTarget{c.Q, c.Target})
			c.Rule, _ = expectation(m.rules, c)
		case "records":
			coll := strings.Split(strings.TrimPrefix(c.Route, "/v1/"), "/")[0]
			upsert := strings.HasPrefix(c.Body, "upsert-")
			linkChange := c.Method == "PATCH" && c.Body != "plain"
			if !upsert && !(allowed && (c.Method == "DELETE" || linkChange) && (c.ID == "in" || c.ID == "out")) {
				continue
			}
			tg := c.Target
			if tg == nil {
				tg = m.home(c.Key)
			}
			c.throwaway = func(t testing.TB) {
				scope := c.ID
				if upsert {
					scope = strings.TrimPrefix(c.Body, "upsert-")
				}
				id, body := m.throwawayRecord(t, coll, tg, scope, upsert)
				if upsert {
					c.Payload = `{"records":[` + body + `]}`
					return
				}
				c.Path = strings.Replace(c.Route, ":id", id, 1) + query(isoTarget{c.Q, c.Target})
			}
		case "keys":
			if !allowed || c.Method != "DELETE" || c.ID == "missing" {
				continue
			}
			home := m.home(c.Key)
			body := `{"name":"throwaway","tenantId":"` + home.ID + `","role":"read_only"}`
			switch c.ID {
			case "foreign":
				body = `{"name":"throwaway","tenantId":"` + m.others(home)[0].ID + `","role":"read_only"}`
			case "platform":
				body = `{"name":"throwaway","role":"read_only"}`
			}
			c.throwaway = func(t testing.TB) {
				_, id := m.s.createKey(t, body)
				var k struct {
					TenantID *string `json:"tenantId"`
				}
				json.Unmarshal([]byte(body), &k)
				m.keyIDs[id] = ""
				if k.TenantID != nil {
					m.keyIDs[id] = *k.TenantID
				}
				c.Path = strings.Replace(c.Route, ":id", id, 1) + query(isoTarget{c.Q, c.Target})
			}
		case "tenants":
			if !allowed || c.Method != "DELETE" || c.ID == "missing" {
				continue
			}
			c.throwaway = func(t testing.TB) {
				id := "iso-tmp-" + strings.ToLower(rand.Text()[:10])
				m.s.post(t, m.s.RootKey, "/v1/tenants", `{"id":"`+id+`"}`).want(t, http.StatusCreated)
				c.Path = strings.Replace(c.Route, ":id", id, 1)
			}
		}
	}
}

// throwawayRecord makes a record of coll in tenant tg, linked to its in or
// out event, and returns its id and its body; with pair, the body carries a
// sourceId and remoteId pair that a bulk upsert can name.
func (m *isoMatrix) throwawayRecord(t testing.TB, coll string, tg *isoTenant, scope string, pair bool) (string, string) {
	t.Helper()
	var linked []string
	if coll != "events" {
		linked = []string{tg.EventIn}
		if scope == "out" {
			linked = []string{tg.EventOut}
		}
	}
	extra := map[string]any{}
	if pair {
		extra = map[string]any{"sourceId": "matrix", "remoteId": rand.Text()}
	}
	body := isoJSON(isoRecordBody(coll, linked, extra))
	id := m.s.post(t, m.s.RootKey, "/v1/"+coll+"?tenantId="+tg.ID, body).want(t, http.StatusCreated).id(t)
	m.records[id] = isoRecord{Tenant: tg.ID, In: coll != "events" && scope == "in"}
	return id, body
}

// protectedTenants are the tenants whose files key k must not be able to
// change at all: every tenant but its own for a tenant's admin or event
// manager, every tenant for a read-only key, none for a platform admin.
func (m *isoMatrix) protectedTenants(t testing.TB, k *isoKey) []string {
	t.Helper()
	if k.Kind == "padmin" {
		return nil
	}
	var out []string
	for _, f := range testTenantFiles(t, m.s.DataDir) {
		id := strings.TrimSuffix(f, ".db")
		if k.Tenant != nil && id == k.Tenant.ID && (k.Kind == "admin" || k.Kind == "em") {
			continue
		}
		out = append(out, id)
	}
	return out
}

func testTenantFiles(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "tenants"))
	if err != nil {
		t.Fatalf("read tenants: %v", err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".db") {
			out = append(out, e.Name())
		}
	}
	return out
}

// runKey makes every call of key k, and checks that the files k may not
// change did not change.
func (m *isoMatrix) runKey(t *testing.T, k *isoKey) {
	t.Helper()
	calls := m.plan(t, k)
	for _, c := range calls {
		if c.throwaway != nil {
			c.throwaway(t)
		}
	}
	protected := m.protectedTenants(t, k)
	before := m.s.fileSums(t, protected)
	for _, c := range calls {
		m.run(t, c)
	}
	after := m.s.fileSums(t, protected)
	for name, sum := range before {
		if after[name] != sum {
			m.leaks = append(m.leaks, fmt.Sprintf("%s changed %s, a file it may not change", k.Name, name))
		}
	}
	t.Logf("%s: %d calls; %d tenant files unchanged", k.Name, len(calls), len(before))
}

// run makes one call and checks its answer against the table, what it
// shows against what its key may see, and, when it is a write the table
// refuses, that it changed nothing.
func (m *isoMatrix) run(t *testing.T, c *isoCall) {
	t.Helper()
	denied := writeMethods[c.Method] && !allows(c.Rule.Expect)
	var before string
	if denied {
		before = m.state(t, c)
	}
	r := m.s.do(t, isoReq{Key: c.Key.Secret, Method: c.Method, Path: c.Path, Body: c.Payload})
	m.calls++
	ok2xx := r.Status >= 200 && r.Status < 300
	if ok2xx {
		m.allowed++
	}
	if !meets(c.Rule.Expect, r.Status) {
		msg := fmt.Sprintf("%s → %d, want %s (permissions.txt:%d) %s: %.200s", c, r.Status, c.Rule.Expect,
			c.Rule.Line, c.Path, r.Body)
		if ok2xx {
			m.unexpected = append(m.unexpected, msg)
		} else {
			m.mismatches = append(m.mismatches, msg)
		}
	}
	if denied {
		if after := m.state(t, c); after != before {
			m.leaks = append(m.leaks, fmt.Sprintf("%s, refused with %d, changed %s → %s", c, r.Status, before, after))
		}
	}
	m.checkVisible(c, r)
	m.learn(t, c, r)
	m.collect404(c, r)
}

// state describes what a write of c could change: the records and change
// events of the tenant it names, and the catalog's keys.
func (m *isoMatrix) state(t testing.TB, c *isoCall) string {
	t.Helper()
	n, err := m.s.Store.Catalog.CountKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st := fmt.Sprintf("%d keys, %d tenant files", n, len(testTenantFiles(t, m.s.DataDir)))
	if c.Target != nil {
		st += "; " + m.s.changeCount(t, c.Target.ID)
	}
	return st
}

var idMember = regexp.MustCompile(`"(id|tenantId)":"([^"]+)"`)

// checkVisible looks at every id and tenantId an answer shows: no record,
// key or tenant its key may not see may be among them.
func (m *isoMatrix) checkVisible(c *isoCall, r *isoResponse) {
	k := c.Key
	if k.Kind == "nokey" && r.Status < 400 {
		// What answers without a key (health, metrics, the API
		// description) names no tenant.
		for _, tn := range m.f.Tenants {
			if strings.Contains(string(r.Body), tn.ID) {
				m.leaks = append(m.leaks, fmt.Sprintf("%s → %d names tenant %s", c, r.Status, tn.ID))
			}
		}
	}
	if k.Kind == "padmin" || k.Kind == "nokey" && r.Status >= 400 {
		return
	}
	for _, sm := range idMember.FindAllStringSubmatch(string(r.Body), -1) {
		member, v := sm[1], sm[2]
		why := ""
		if rec, ok := m.records[v]; ok && member == "id" && k.Tenant != nil {
			switch {
			case rec.Tenant != k.Tenant.ID:
				why = "a record of tenant " + rec.Tenant
			case k.Kind == "em" && !rec.In:
				why = "a record outside its events"
			}
		}
		if tenant, ok := m.webhookIDs[v]; ok && member == "id" {
			switch {
			case k.Kind == "em" || k.Kind == "ro" || k.Kind == "nokey":
				why = "a webhook"
			case k.Kind == "admin" && tenant != k.Tenant.ID:
				why = "a webhook of tenant " + tenant
			}
		}
		if tenant, ok := m.keyIDs[v]; ok && member == "id" {
			switch {
			case k.Kind == "pro" || k.Kind == "em" || k.Kind == "ro" || k.Kind == "nokey":
				why = "a key"
			case k.Kind == "admin" && tenant != k.Tenant.ID:
				why = "a key of tenant " + tenant
			}
		}
		if strings.HasPrefix(v, "iso-") && k.Tenant != nil && v != k.Tenant.ID {
			why = "tenant " + v
		}
		if why != "" {
			m.leaks = append(m.leaks, fmt.Sprintf("%s → %d shows %s (%s %s): %.200s", c, r.Status, why, member, v, r.Body))
		}
	}
}

// learn records what an allowed call made or changed: keys, and records
// with whether the event manager reaches them now.
func (m *isoMatrix) learn(t testing.TB, c *isoCall, r *isoResponse) {
	if r.Status < 200 || r.Status > 299 || c.Method == "GET" {
		return
	}
	if c.Family == "keys" && c.Method == "POST" {
		var k struct {
			ID       string  `json:"id"`
			TenantID *string `json:"tenantId"`
		}
		json.Unmarshal(r.Body, &k)
		tenant := ""
		if k.TenantID != nil {
			tenant = *k.TenantID
		}
		m.keyIDs[k.ID] = tenant
		if c.Key.Tenant != nil && tenant != c.Key.Tenant.ID {
			m.leaks = append(m.leaks, fmt.Sprintf("%s made a key of tenant %q: %s", c, tenant, r.Body))
		}
		return
	}
	if c.Method == "POST" && c.Route == "/v1/webhooks" {
		var w struct {
			ID       string  `json:"id"`
			TenantID *string `json:"tenantId"`
		}
		json.Unmarshal(r.Body, &w)
		m.webhookIDs[w.ID] = ""
		if w.TenantID != nil {
			m.webhookIDs[w.ID] = *w.TenantID
		}
		if c.Key.Tenant != nil && (w.TenantID == nil || *w.TenantID != c.Key.Tenant.ID) {
			m.leaks = append(m.leaks, fmt.Sprintf("%s made a webhook of tenant %v: %s", c, w.TenantID, r.Body))
		}
		return
	}
	if c.Family != "records" || c.Target == nil {
		return
	}
	var list []map[string]any
	var page struct {
		Data []map[string]any `json:"data"`
	}
	if json.Unmarshal(r.Body, &page) == nil && page.Data != nil {
		list = page.Data
	} else if obj := map[string]any(nil); json.Unmarshal(r.Body, &obj) == nil && obj != nil {
		list = []map[string]any{obj}
	}
	coll := strings.Split(strings.TrimPrefix(c.Route, "/v1/"), "/")[0]
	for _, rec := range list {
		id, _ := rec["id"].(string)
		if id == "" {
			continue
		}
		in := id == c.Target.EventIn
		if coll != "events" {
			in = slices.Contains(recordEvents(rec), c.Target.EventIn)
		}
		m.records[id] = isoRecord{Tenant: c.Target.ID, In: in}
	}
}

// recordEvents returns the events a record as the API shows it links to.
func recordEvents(rec map[string]any) []string {
	var out []string
	if e, ok := rec["eventId"].(string); ok {
		out = append(out, e)
	}
	rel, _ := rec["relationships"].(map[string]any)
	ids, _ := rel["linkedEventIds"].([]any)
	for _, id := range ids {
		if s, ok := id.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// collect404 keeps every 404 by key, method and route. Those for ids and
// tenants that do not exist are the reference every other 404 of the group
// must equal: what a key cannot reach must look exactly like nothing.
func (m *isoMatrix) collect404(c *isoCall, r *isoResponse) {
	// A bulk upsert of a record out of reach answers 404 where one of a
	// pair no record holds creates: sourceId and remoteId are unique in a
	// tenant, as a create taking a pair in use (409) shows too.
	if r.Status != http.StatusNotFound || strings.HasPrefix(c.Body, "upsert-") {
		return
	}
	group := c.Key.Name + " " + c.Method + " " + c.Route
	outOfReach := c.ID == "out" || c.ID == "foreign" || c.ID == "platform" || c.Q == "other" ||
		strings.HasPrefix(c.Body, "other")
	if c.ID == "missing" || c.Q == "missing" || c.Body == "missing-ro" {
		if m.missing404[group] == nil {
			m.missing404[group] = make(map[string]bool)
		}
		m.missing404[group][r.normalized()] = true
		return
	}
	if outOfReach {
		m.notFound[group] = append(m.notFound[group], r)
	}
}

// check404s compares each 404 for something that exists, out of reach,
// with the 404s of its group for things that do not exist.
func (m *isoMatrix) check404s(t *testing.T) {
	compared := 0
	for group, list := range m.notFound {
		refs := m.missing404[group]
		if len(refs) == 0 {
			continue
		}
		for _, r := range list {
			compared++
			if !refs[r.normalized()] {
				var want []string
				for b := range refs {
					want = append(want, b)
				}
				m.leaks = append(m.leaks, fmt.Sprintf("%s %s: a 404 unlike those for what does not exist: %s; those: %s",
					group, r.Path, r.normalized(), strings.Join(want, " | ")))
			}
		}
	}
	t.Logf("%d answers 404 for what exists out of reach, each like those for what does not", compared)
}

// report fails the test with what went wrong, a few lines of each kind.
func report(t *testing.T, what string, lines []string) {
	t.Helper()
	if len(lines) == 0 {
		return
	}
	const most = 40
	t.Errorf("%d %s", len(lines), what)
	for i, l := range lines {
		if i == most {
			t.Errorf("… and %d more", len(lines)-most)
			break
		}
		t.Error("  " + l)
	}
}

// TestIsolationMatrix calls every route with every method as every key of
// three tenants and of the platform, aiming at the key's own tenant, the
// others, events out of its reach and things that do not exist, in the
// path, the query and the body; and compares each answer with
// testdata/permissions.txt.
func TestIsolationMatrix(t *testing.T) {
	s := startIsoServer(t, isoOptions{})
	f := newIsoFixture(t, s)
	m := newIsoMatrix(t, s, f)
	start := time.Now()
	keys := append(f.keys(), &isoKey{Name: "no key", Kind: "nokey"})
	for _, k := range keys {
		m.runKey(t, k)
	}
	m.check404s(t)
	t.Logf("isolation matrix: %d calls by %d keys in %v, %d answered 2xx",
		m.calls, len(keys), time.Since(start).Round(time.Millisecond), m.allowed)
	report(t, "calls allowed where permissions.txt says deny", m.unexpected)
	report(t, "answers unlike permissions.txt", m.mismatches)
	report(t, "isolation failures", m.leaks)
}

// TestIsolationEventManager checks the event manager's rules of API.md: it
// sees an event it names and the records linked to one (by eventId or
// relationships.linkedEventIds), updates those, creates only records
// linked to its events alone, creates and deletes no event, and a write
// it may not make changes nothing: no record, no change event.
func TestIsolationEventManager(t *testing.T) {
	s := startIsoServer(t, isoOptions{})
	root := s.RootKey
	s.post(t, root, "/v1/tenants", `{"id":"acme"}`).want(t, http.StatusCreated)
	s.post(t, root, "/v1/tenants", `{"id":"globex"}`).want(t, http.StatusCreated)
	create := func(tenant, coll string, linked []string, extra map[string]any) string {
		t.Helper()
		body := isoJSON(isoRecordBody(coll, linked, extra))
		return s.post(t, root, "/v1/"+coll+"?tenantId="+tenant, body).want(t, http.StatusCreated).id(t)
	}
	e1 := create("acme", "events", nil, nil)
	e2 := create("acme", "events", nil, nil)
	foreign := create("globex", "events", nil, nil)
	s1 := create("acme", "sessions", []string{e1}, nil)
	s2 := create("acme", "sessions", []string{e2}, nil)
	p1 := create("acme", "people", []string{e1}, nil)
	p2 := create("acme", "people", []string{e2}, nil)
	p12 := create("acme", "people", []string{e2, e1}, nil)
	p0 := create("acme", "people", nil, nil)
	t1 := create("acme", "tickets", []string{e1}, nil)
	em, _ := s.createKey(t, `{"name":"em","tenantId":"acme","role":"event_manager","eventIds":["`+e1+`"]}`)
	admin, _ := s.createKey(t, `{"name":"admin","tenantId":"acme","role":"admin"}`)

	listIDs := func(p string) []string {
		t.Helper()
		var page struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		r := s.get(t, em, p).want(t, http.StatusOK)
		if err := json.Unmarshal(r.Body, &page); err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		var ids []string
		for _, d := range page.Data {
			ids = append(ids, d.ID)
		}
		sort.Strings(ids)
		return ids
	}
	sorted := func(ids ...string) []string {
		sort.Strings(ids)
		return ids
	}
	t.Run("sees its event and what links to it", func(t *testing.T) {
		for p, want := range map[string][]string{
			"/v1/events":                       {e1},
			"/v1/sessions":                     {s1},
			"/v1/people":                       sorted(p1, p12),
			"/v1/tickets":                      {t1},
			"/v1/people?linkedEventId=" + e2:   {p12},
			"/v1/people?includeDeleted=true":   sorted(p1, p12),
			"/v1/people?tenantId=acme&q=ada":   sorted(p1, p12),
			"/v1/sessions?linkedEventId=" + e2: nil,
		} {
			if got := listIDs(p); !slices.Equal(got, want) {
				t.Errorf("GET %s: %v, want %v", p, got, want)
			}
		}
		for _, p := range []string{"/v1/events/" + e1, "/v1/sessions/" + s1, "/v1/people/" + p1,
			"/v1/people/" + p12, "/v1/tickets/" + t1} {
			s.get(t, em, p).want(t, http.StatusOK)
		}
		missing := s.get(t, em, "/v1/people/"+uuid.NewString()).want(t, http.StatusNotFound).normalized()
		for _, p := range []string{"/v1/events/" + e2, "/v1/sessions/" + s2, "/v1/people/" + p2,
			"/v1/people/" + p0, "/v1/events/" + foreign} {
			r := s.get(t, em, p).want(t, http.StatusNotFound)
			if r.normalized() != missing && !strings.HasPrefix(p, "/v1/events/") {
				t.Errorf("GET %s: %s, unlike the answer for a record that does not exist: %s", p, r.Body, missing)
			}
		}
	})

	// refused sends a write the event manager may not make and checks
	// that it changes nothing in the tenant.
	refused := func(t *testing.T, r isoReq, status int) {
		t.Helper()
		before := s.changeCount(t, "acme")
		r.Key = em
		got := s.do(t, r)
		if got.Status != status {
			t.Errorf("%s %s %s: status %d, want %d: %s", r.Method, r.Path, r.Body, got.Status, status, got.Body)
		}
		if after := s.changeCount(t, "acme"); after != before {
			t.Errorf("%s %s %s, refused, changed acme: %s → %s", r.Method, r.Path, r.Body, before, after)
		}
	}
	t.Run("creates only records linked to its events alone", func(t *testing.T) {
		// Each collection with the events its refused bodies link to.
		for coll, links := range map[string][][]string{
			"events":   {nil},
			"people":   {nil, {e2}, {e1, e2}, {foreign}, {e1, foreign}},
			"sessions": {{e2}, {e1, e2}, {foreign}},
		} {
			for _, linked := range links {
				b := isoRecordBody(coll, linked, nil)
				refused(t, isoReq{Method: "POST", Path: "/v1/" + coll, Body: isoJSON(b)}, http.StatusForbidden)
				refused(t, isoReq{Method: "POST", Path: "/v1/" + coll + "/bulk",
					Body: `{"records":[` + isoJSON(b) + `]}`}, http.StatusForbidden)
			}
		}
		// All or nothing: one refused record of a bulk refuses them all.
		ok := isoJSON(isoRecordBody("people", []string{e1}, nil))
		bad := isoJSON(isoRecordBody("people", []string{e2}, nil))
		refused(t, isoReq{Method: "POST", Path: "/v1/people/bulk", Body: `{"records":[` + ok + `,` + bad + `]}`},
			http.StatusForbidden)
		s.post(t, em, "/v1/people", ok).want(t, http.StatusCreated)
		s.post(t, em, "/v1/sessions", isoJSON(isoRecordBody("sessions", []string{e1}, nil))).want(t, http.StatusCreated)
		s.post(t, em, "/v1/tickets/bulk", `{"records":[`+isoJSON(isoRecordBody("tickets", []string{e1}, nil))+`]}`).
			want(t, http.StatusOK)
	})
	t.Run("updates what it reaches, within its events", func(t *testing.T) {
		links := func(ids ...string) string {
			return isoJSON(map[string]any{"relationships": map[string]any{"linkedEventIds": ids}})
		}
		s.patch(t, em, "/v1/people/"+p1, `{"jobTitle":"Chair"}`).want(t, http.StatusOK)
		s.patch(t, em, "/v1/events/"+e1, `{"description":"Updated by its manager"}`).want(t, http.StatusOK)
		refused(t, isoReq{Method: "PATCH", Path: "/v1/people/" + p1, Body: links(e1, e2)}, http.StatusForbidden)
		refused(t, isoReq{Method: "PATCH", Path: "/v1/people/" + p1, Body: links(e2)}, http.StatusForbidden)
		refused(t, isoReq{Method: "PATCH", Path: "/v1/people/" + p1, Body: links()}, http.StatusForbidden)
		refused(t, isoReq{Method: "PATCH", Path: "/v1/people/" + p1, Body: links(e1, foreign)}, http.StatusForbidden)
		refused(t, isoReq{Method: "PATCH", Path: "/v1/sessions/" + s1, Body: `{"eventId":"` + e2 + `"}`}, http.StatusForbidden)
		refused(t, isoReq{Method: "PATCH", Path: "/v1/events/" + e1, Body: links(e2)}, http.StatusForbidden)
		refused(t, isoReq{Method: "PATCH", Path: "/v1/people/" + p2, Body: `{"jobTitle":"x"}`}, http.StatusNotFound)
		refused(t, isoReq{Method: "PATCH", Path: "/v1/people/" + p0, Body: `{"jobTitle":"x"}`}, http.StatusNotFound)
		refused(t, isoReq{Method: "PATCH", Path: "/v1/events/" + e2, Body: `{"description":"x"}`}, http.StatusNotFound)
		// A record of its event and another keeps the other; it may drop it.
		s.patch(t, em, "/v1/people/"+p12, `{"jobTitle":"Speaker"}`).want(t, http.StatusOK)
		s.patch(t, em, "/v1/people/"+p12, links(e1)).want(t, http.StatusOK)
		// A bulk update through sourceId and remoteId follows the same rules.
		paired := create("acme", "people", []string{e1}, map[string]any{"sourceId": "crm", "remoteId": "r1"})
		body := func(linked ...string) string {
			return `{"records":[` + isoJSON(isoRecordBody("people", linked,
				map[string]any{"sourceId": "crm", "remoteId": "r1"})) + `]}`
		}
		refused(t, isoReq{Method: "POST", Path: "/v1/people/bulk", Body: body(e1, e2)}, http.StatusForbidden)
		s.post(t, em, "/v1/people/bulk", body(e1)).want(t, http.StatusOK)
		create("acme", "people", []string{e2}, map[string]any{"sourceId": "crm", "remoteId": "r2"})
		refused(t, isoReq{Method: "POST", Path: "/v1/people/bulk", Body: strings.Replace(body(e1), "r1", "r2", 1)},
			http.StatusNotFound)
		s.get(t, em, "/v1/people/"+paired).want(t, http.StatusOK)
	})
	t.Run("deletes no event", func(t *testing.T) {
		refused(t, isoReq{Method: "DELETE", Path: "/v1/events/" + e1}, http.StatusForbidden)
		refused(t, isoReq{Method: "DELETE", Path: "/v1/events/" + e2}, http.StatusNotFound)
		refused(t, isoReq{Method: "DELETE", Path: "/v1/people/" + p2}, http.StatusNotFound)
		s.get(t, em, "/v1/events/"+e1).want(t, http.StatusOK)
		s.del(t, em, "/v1/tickets/"+t1).want(t, http.StatusNoContent)
	})
	t.Run("follows in the stream only what it reaches", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/v1/stream", nil)
		req.Header.Set("X-Api-Key", em)
		resp, err := s.httpc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET /v1/stream: %d %s", resp.StatusCode, b)
		}
		var got isoBuffer
		done := make(chan struct{})
		go func() {
			defer close(done)
			io.Copy(&got, resp.Body)
		}()
		in := create("acme", "people", []string{e1}, nil)
		out := create("acme", "people", []string{e2}, nil)
		s.patch(t, admin, "/v1/people/"+p2, `{"jobTitle":"Out of reach"}`).want(t, http.StatusOK)
		refused(t, isoReq{Method: "POST", Path: "/v1/people", Body: isoJSON(isoRecordBody("people", []string{e2}, nil))},
			http.StatusForbidden)
		last := create("acme", "sessions", []string{e1}, nil)
		for start := time.Now(); !strings.Contains(got.String(), last) && time.Since(start) < 5*time.Second; {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		<-done
		body := []byte(got.String())
		if !strings.Contains(string(body), last) {
			t.Fatalf("the stream never showed session %s: %s", last, body)
		}
		s.keep(&isoResponse{Method: "GET", Path: "/v1/stream", Status: resp.StatusCode, Body: body})
		if !strings.Contains(string(body), in) {
			t.Errorf("the stream does not show person %s, linked to the manager's event: %s", in, body)
		}
		for _, id := range []string{out, p2} {
			if strings.Contains(string(body), id) {
				t.Errorf("the stream shows %s, outside the manager's events: %s", id, body)
			}
		}
	})
	t.Run("sees no counts of what it does not reach", func(t *testing.T) {
		if st := s.get(t, em, "/v1/tenants/acme").want(t, http.StatusOK).object(t)["stats"]; st != nil {
			t.Errorf("an event manager sees the tenant's stats: %v", st)
		}
		if st := s.get(t, admin, "/v1/tenants/acme").want(t, http.StatusOK).object(t)["stats"]; st == nil {
			t.Error("a tenant admin sees no stats")
		}
	})
}
