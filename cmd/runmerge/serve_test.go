package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runmerge/runmerge/internal/testserver"
)

// TestServeEndToEnd runs the server as `runmerge serve` does, on port 0 over
// a temporary data directory, drives the tenants API over HTTP, and restarts
// it twice on the same directory.
func TestServeEndToEnd(t *testing.T) {
	clearEnv(t)
	dataDir := t.TempDir()
	cfg := testConfig(t, dataDir, nil)

	// First start: a platform admin key is made and printed, once.
	srv := startServe(t, cfg)
	key := bootstrapKeyIn(t, srv.stdout.String())
	if n := strings.Count(srv.stdout.String(), "rmk_"); n != 1 {
		t.Errorf("stdout shows %d keys, want 1:\n%s", n, srv.stdout)
	}
	c := testserver.NewClient("http://"+srv.addr, key)

	var madeUpID string
	steps := []struct {
		name   string
		req    testserver.Request
		status int
		code   string // for errors
		check  func(t *testing.T, r *testserver.Response)
	}{
		{name: "liveness without a key", req: noKey(get("/healthz")), status: 200},
		{name: "readiness without a key", req: noKey(get("/readyz")), status: 200},
		{name: "create", req: post("/v1/tenants", `{"id":"acme","name":"Acme Events"}`), status: 201,
			check: func(t *testing.T, r *testserver.Response) {
				var tn testserver.Tenant
				r.JSON(t, &tn)
				if tn.ID != "acme" || tn.Name != "Acme Events" || tn.Status != "active" ||
					!testserver.TimeFormat.MatchString(tn.CreatedAt) || tn.UpdatedAt != tn.CreatedAt {
					t.Errorf("created %s", r.Body)
				}
				if r.Header.Get("Location") != "/v1/tenants/acme" {
					t.Errorf("Location %q", r.Header.Get("Location"))
				}
			}},
		{name: "create without an id", req: post("/v1/tenants", `{"name":"Made-up id"}`), status: 201,
			check: func(t *testing.T, r *testserver.Response) {
				var tn testserver.Tenant
				r.JSON(t, &tn)
				madeUpID = tn.ID
			}},
		{name: "taken id", req: post("/v1/tenants", `{"id":"acme"}`), status: 409, code: "conflict"},
		{name: "id that climbs out", req: post("/v1/tenants", `{"id":"../acme"}`), status: 422,
			code: "validation_failed"},
		{name: "first page", req: get("/v1/tenants?limit=1"), status: 200,
			check: func(t *testing.T, r *testserver.Response) {
				var page testserver.TenantPage
				r.JSON(t, &page)
				if len(page.Data) != 1 || page.NextCursor == nil {
					t.Errorf("page %s, want one tenant and a cursor", r.Body)
				}
			}},
		{name: "read with stats", req: get("/v1/tenants/acme"), status: 200,
			check: func(t *testing.T, r *testserver.Response) {
				var tn testserver.Tenant
				r.JSON(t, &tn)
				if tn.Stats == nil || tn.Stats.FileSizeBytes == 0 || len(tn.Stats.Records) != 7 {
					t.Errorf("stats in %s", r.Body)
				}
			}},
		{name: "suspend", req: patch("/v1/tenants/acme", `{"status":"suspended"}`), status: 200},
		{name: "rename", req: patch("/v1/tenants/acme", `{"name":"Acme"}`), status: 200},
		{name: "delete a missing tenant", req: testserver.Request{Method: "DELETE", Path: "/v1/tenants/x"},
			status: 404, code: "not_found"},
		{name: "wrong method", req: testserver.Request{Method: "PUT", Path: "/v1/tenants/acme", Body: "{}"},
			status: 405, code: "method_not_allowed"},
		{name: "unknown route", req: get("/v2/tenants"), status: 404, code: "not_found"},
		{name: "no key", req: noKey(get("/v1/tenants")), status: 401, code: "unauthorized"},
		{name: "bad limit", req: get("/v1/tenants?limit=1000"), status: 400, code: "invalid_parameter"},
		{name: "not JSON", req: withContentType(post("/v1/tenants", `{}`), "text/csv"), status: 415,
			code: "unsupported_media_type"},
		{name: "malformed JSON", req: post("/v1/tenants", `{"id":"x",}`),
			status: 400, code: "invalid_json"},
		{name: "body over limits.max_body_bytes",
			req:    post("/v1/tenants", `{"name":"`+strings.Repeat("x", int(cfg.Limits.MaxBodyBytes))+`"}`),
			status: 413, code: "body_too_large"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := c.Do(t, st.req)
			if r.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			if st.code != "" {
				r.Problem(t, st.status, st.code)
				return
			}
			r.WantStatus(t, st.status)
			if st.check != nil {
				st.check(t, r)
			}
		})
	}
	c.Delete(t, "/v1/tenants/"+madeUpID).WantStatus(t, http.StatusNoContent)
	c.Get(t, "/v1/tenants/"+madeUpID).Problem(t, http.StatusNotFound, "not_found")
	var before testserver.Tenant
	c.Get(t, "/v1/tenants/acme").JSON(t, &before)

	srv.stop(t)
	if open := testserver.OpenFiles(t, dataDir); len(open) > 0 {
		t.Errorf("files still open after serve returned: %v", open)
	}

	// Second start: no new key, the first still works, the tenants are kept.
	srv = startServe(t, cfg)
	if out := srv.stdout.String(); out != "" {
		t.Errorf("the second start printed %q", out)
	}
	c.URL = "http://" + srv.addr
	var after testserver.Tenant
	c.Get(t, "/v1/tenants/acme").JSON(t, &after)
	if after.Name != "Acme" || after.Status != "suspended" || after.CreatedAt != before.CreatedAt ||
		after.UpdatedAt != before.UpdatedAt {
		t.Errorf("after a restart acme is %+v; before it was %+v", after, before)
	}
	if after.Stats.Open {
		t.Error("acme reports open: true before anything used it since the restart")
	}
	c.Get(t, "/v1/tenants/"+madeUpID).Problem(t, http.StatusNotFound, "not_found")
	c.CreateTenant(t, "globex")
	wantFiles(t, dataDir, "acme", "globex")
	srv.stop(t)

	// Third start: both tenants, each in its own file and nowhere else.
	srv = startServe(t, cfg)
	c.URL = "http://" + srv.addr
	if ids := listIDs(t, c); !slices.Equal(ids, []string{"acme", "globex"}) {
		t.Errorf("tenants after two restarts: %v", ids)
	}
	wantFiles(t, dataDir, "acme", "globex")
	srv.stop(t)
}

// TestServeRootKey checks that auth.root_key is a platform admin key, that
// no key is printed while it is set, and that it stops working once the
// operator removes it from the configuration.
func TestServeRootKey(t *testing.T) {
	clearEnv(t)
	dataDir := t.TempDir()
	rootKey := testserver.RootKey()

	srv := startServe(t, testConfig(t, dataDir, map[string]string{"auth.root_key": rootKey}))
	if out := srv.stdout.String(); out != "" {
		t.Errorf("a start with auth.root_key printed %q", out)
	}
	c := testserver.NewClient("http://"+srv.addr, rootKey)
	c.CreateTenant(t, "acme")
	c.Key = rootKey[:len(rootKey)-1]
	c.Get(t, "/v1/tenants").Problem(t, http.StatusUnauthorized, "unauthorized")
	srv.stop(t)

	// Without it, and with no key in the catalog, the server makes one.
	srv = startServe(t, testConfig(t, dataDir, nil))
	c = testserver.NewClient("http://"+srv.addr, rootKey)
	c.Get(t, "/v1/tenants").Problem(t, http.StatusUnauthorized, "unauthorized")
	c.Key = bootstrapKeyIn(t, srv.stdout.String())
	if ids := listIDs(t, c); !slices.Equal(ids, []string{"acme"}) {
		t.Errorf("tenants %v", ids)
	}
	srv.stop(t)
}

// TestServeShutdownWithRequestsInFlight stops the server while a slow
// upload and a crowd of creates are under way. Every request that got in
// must be answered properly, serve must return nil, no tenant file may stay
// open, and after a restart exactly the tenants whose create was answered
// 201 must exist.
func TestServeShutdownWithRequestsInFlight(t *testing.T) {
	clearEnv(t)
	dataDir := t.TempDir()
	cfg := testConfig(t, dataDir, nil)
	srv := startServe(t, cfg)
	key := bootstrapKeyIn(t, srv.stdout.String())
	c := testserver.NewClient("http://"+srv.addr, key)
	c.CreateTenant(t, "before")

	slow := testserver.StartSlowRequest(t, srv.addr, "POST", "/v1/tenants", key)
	slow.Send(t, `{"id":"slow",`)
	slow.WaitReading(t)

	// A crowd of clients creating tenants as fast as they can.
	var (
		mu       sync.Mutex
		created  = []string{"before", "slow"}
		answered = map[int]int{}
		wg       sync.WaitGroup
		stop     = make(chan struct{})
	)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 30 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("c-%d-%d", g, i)
				body := strings.NewReader(`{"id":"` + id + `"}`)
				req, _ := http.NewRequest("POST", c.URL+"/v1/tenants", body)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Api-Key", key)
				resp, err := client.Do(req)
				if err != nil {
					continue // refused: the server no longer listens
				}
				resp.Body.Close()
				mu.Lock()
				answered[resp.StatusCode]++
				if resp.StatusCode == http.StatusCreated {
					created = append(created, id)
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)

	stopped := make(chan error, 1)
	go func() { stopped <- srv.stopErr() }()
	testserver.WaitRefused(t, srv.addr)
	for range 5 {
		slow.Send(t, strings.Repeat(" ", 20_000))
		time.Sleep(20 * time.Millisecond)
	}
	slow.Send(t, `"name":"Slow upload"}`)
	slow.Finish(t).WantStatus(t, http.StatusCreated)

	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("serve returned %v, want nil", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not return")
	}
	close(stop)
	wg.Wait()
	if open := testserver.OpenFiles(t, dataDir); len(open) > 0 {
		t.Errorf("files still open after serve returned: %v", open)
	}
	for status, n := range answered {
		if status != http.StatusCreated {
			t.Errorf("%d creates answered %d during shutdown", n, status)
		}
	}
	if answered[http.StatusCreated] == 0 {
		t.Error("no create got through; the test proves nothing")
	}

	srv = startServe(t, cfg)
	c.URL = "http://" + srv.addr
	slices.Sort(created)
	if ids := listIDs(t, c); !slices.Equal(ids, created) {
		t.Errorf("after the restart the tenants are\n%v\nthe creates answered 201 were\n%v",
			ids, created)
	}
	wantFiles(t, dataDir, created...)
	srv.stop(t)
}

// TestServeListenFailure checks that an address in use stops serve with an
// error naming it, and leaves no file open.
func TestServeListenFailure(t *testing.T) {
	clearEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dataDir := t.TempDir()
	cfg := testConfig(t, dataDir, map[string]string{"server.addr": ln.Addr().String()})

	err = serve(context.Background(), cfg, testserver.Logger(t), &testserver.SyncBuffer{}, nil)
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("serve on a taken address returned %v, want an error naming it", err)
	}
	if open := testserver.OpenFiles(t, dataDir); len(open) > 0 {
		t.Errorf("files still open: %v", open)
	}
}

// served is a call of serve running in the test's process.
type served struct {
	addr   string
	stdout *testserver.SyncBuffer
	cancel context.CancelFunc
	done   chan error

	once sync.Once
	err  error
}

// startServe runs serve with cfg until the test calls stop or ends.
func startServe(t *testing.T, cfg *Config) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{stdout: &testserver.SyncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan string, 1)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { s.done <- serve(ctx, cfg, log, s.stdout, ready) }()
	select {
	case s.addr = <-ready:
	case err := <-s.done:
		cancel()
		t.Fatalf("serve returned before listening: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve did not start listening")
	}
	t.Cleanup(func() { s.stopErr() })
	return s
}

// stopErr cancels serve's context, as SIGTERM does, and returns what serve
// returned.
func (s *served) stopErr() error {
	s.once.Do(func() {
		s.cancel()
		select {
		case s.err = <-s.done:
		case <-time.After(60 * time.Second):
			s.err = fmt.Errorf("serve did not return within 60s of its context ending")
		}
	})
	return s.err
}

// stop stops serve and fails the test unless it returned nil.
func (s *served) stop(t *testing.T) {
	t.Helper()
	if err := s.stopErr(); err != nil {
		t.Fatalf("serve returned %v, want nil", err)
	}
}

// testConfig loads a configuration for a server on 127.0.0.1:0 over
// dataDir, with the given keys set in its config file.
func testConfig(t *testing.T, dataDir string, keys map[string]string) *Config {
	t.Helper()
	values := map[string]string{"data_dir": dataDir, "server.addr": "127.0.0.1:0",
		"server.shutdown_timeout": "20s"}
	for k, v := range keys {
		values[k] = v
	}
	var b strings.Builder
	sections := map[string][]string{}
	for k, v := range values {
		section, name, nested := strings.Cut(k, ".")
		if !nested {
			fmt.Fprintf(&b, "%s: %q\n", k, v)
			continue
		}
		sections[section] = append(sections[section], fmt.Sprintf("  %s: %q\n", name, v))
	}
	for section, lines := range sections {
		b.WriteString(section + ":\n" + strings.Join(lines, ""))
	}
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return mustLoad(t, file, nil)
}

var bootstrapKeyLine = regexp.MustCompile(`(?m)^\s+(rmk_[a-z2-7]{39})$`)

// bootstrapKeyIn returns the key the first start printed in stdout.
func bootstrapKeyIn(t *testing.T, stdout string) string {
	t.Helper()
	m := bootstrapKeyLine.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no platform admin key in stdout %q", stdout)
	}
	return m[1]
}

// listIDs pages through GET /v1/tenants and returns every id.
func listIDs(t *testing.T, c *testserver.Client) []string {
	t.Helper()
	var ids []string
	path := "/v1/tenants?limit=7"
	for {
		var page testserver.TenantPage
		c.Get(t, path).JSON(t, &page)
		for _, tn := range page.Data {
			ids = append(ids, tn.ID)
		}
		if page.NextCursor == nil {
			return ids
		}
		path = "/v1/tenants?limit=7&cursor=" + *page.NextCursor
	}
}

// wantFiles checks that the tenant files of dataDir are exactly those of ids.
func wantFiles(t *testing.T, dataDir string, ids ...string) {
	t.Helper()
	var want []string
	for _, id := range ids {
		want = append(want, id+".db")
	}
	slices.Sort(want)
	if got := testserver.TenantFiles(t, dataDir); !slices.Equal(got, want) {
		t.Errorf("tenant files\n%v\nwant\n%v", got, want)
	}
}

func get(path string) testserver.Request { return testserver.Request{Method: "GET", Path: path} }

func post(path, body string) testserver.Request {
	return testserver.Request{Method: "POST", Path: path, Body: body}
}

func patch(path, body string) testserver.Request {
	return testserver.Request{Method: "PATCH", Path: path, Body: body}
}

func noKey(r testserver.Request) testserver.Request {
	r.NoKey = true
	return r
}

func withContentType(r testserver.Request, ct string) testserver.Request {
	r.Header = map[string]string{"Content-Type": ct}
	return r
}
