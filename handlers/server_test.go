package handlers_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/handlers"
	"github.com/runmerge/runmerge/internal/testserver"
	"github.com/runmerge/runmerge/tenantstore"
)

// TestErrorsAreProblems sends requests that must fail and checks the status,
// the code and the problem+json shape of each answer.
func TestErrorsAreProblems(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	s.CreateTenant(t, "acme")

	big := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`
	tests := []struct {
		name   string
		req    testserver.Request
		status int
		code   string
	}{
		{"unknown route", get("/nope"), 404, "not_found"},
		{"unknown route under /v1", get("/v1/nope"), 404, "not_found"},
		{"unknown route without key", noKey(get("/v1/nope")), 404, "not_found"},
		{"wrong method on a collection", req("PUT", "/v1/tenants", `{}`), 405, "method_not_allowed"},
		{"wrong method on a tenant", req("POST", "/v1/tenants/acme", `{}`), 405, "method_not_allowed"},
		{"wrong method on healthz", req("DELETE", "/healthz", ""), 405, "method_not_allowed"},
		{"no key", noKey(get("/v1/tenants")), 401, "unauthorized"},
		{"text body", withHeader(req("POST", "/v1/tenants", `{"id":"a"}`), "Content-Type", "text/plain"),
			415, "unsupported_media_type"},
		{"form body", withHeader(req("POST", "/v1/tenants", `id=a`), "Content-Type",
			"application/x-www-form-urlencoded"), 415, "unsupported_media_type"},
		{"no content type", withHeader(req("POST", "/v1/tenants", `{"id":"a"}`), "Content-Type", ""),
			415, "unsupported_media_type"},
		{"patch with text body",
			withHeader(req("PATCH", "/v1/tenants/acme", `{}`), "Content-Type", "text/plain"),
			415, "unsupported_media_type"},
		{"truncated JSON", req("POST", "/v1/tenants", `{"id":`), 400, "invalid_json"},
		{"JSON syntax error", req("POST", "/v1/tenants", `{"id" "a"}`), 400, "invalid_json"},
		{"JSON array", req("POST", "/v1/tenants", `[{"id":"a"}]`), 400, "invalid_json"},
		{"JSON null", req("POST", "/v1/tenants", `null`), 400, "invalid_json"},
		{"JSON string", req("POST", "/v1/tenants", `"acme"`), 400, "invalid_json"},
		{"two JSON objects", req("POST", "/v1/tenants", `{"id":"a"} {"id":"b"}`), 400, "invalid_json"},
		{"blank body", req("POST", "/v1/tenants", `   `), 400, "invalid_json"},
		{"empty body", withHeader(req("POST", "/v1/tenants", ""), "Content-Type", "application/json"),
			400, "invalid_json"},
		{"malformed patch", req("PATCH", "/v1/tenants/acme", `{"name":`), 400, "invalid_json"},
		{"id not a string", req("POST", "/v1/tenants", `{"id":5}`), 422, "validation_failed"},
		{"unknown field", req("POST", "/v1/tenants", `{"id":"b","plan":"gold"}`), 422, "unknown_field"},
		{"server field createdAt",
			req("POST", "/v1/tenants", `{"id":"b","createdAt":"2026-05-01T09:00:00.000Z"}`),
			422, "read_only_field"},
		{"server field status on create", req("POST", "/v1/tenants", `{"id":"b","status":"active"}`),
			422, "read_only_field"},
		{"body over the limit", req("POST", "/v1/tenants", big), 413, "body_too_large"},
		{"limit 0", get("/v1/tenants?limit=0"), 400, "invalid_parameter"},
		{"limit 501", get("/v1/tenants?limit=501"), 400, "invalid_parameter"},
		{"limit not a number", get("/v1/tenants?limit=ten"), 400, "invalid_parameter"},
		{"limit negative", get("/v1/tenants?limit=-1"), 400, "invalid_parameter"},
		{"limit twice", get("/v1/tenants?limit=1&limit=2"), 400, "invalid_parameter"},
		{"cursor not base64", get("/v1/tenants?cursor=!!!"), 400, "invalid_parameter"},
		{"cursor not a cursor", get("/v1/tenants?cursor=bm90LWpzb24"), 400, "invalid_parameter"},
		{"misspelt parameter", get("/v1/tenants?limt=1"), 400, "invalid_parameter"},
		{"unknown parameter on a tenant", get("/v1/tenants/acme?expand=stats"),
			400, "invalid_parameter"},
		{"malformed query", get("/v1/tenants?limit=%zz"), 400, "invalid_parameter"},
		{"missing tenant", get("/v1/tenants/globex"), 404, "not_found"},
		{"missing tenant with a bad id", get("/v1/tenants/..%2Fcatalog"), 404, "not_found"},
		{"patch missing tenant", req("PATCH", "/v1/tenants/globex", `{"name":"G"}`), 404, "not_found"},
		{"delete missing tenant", req("DELETE", "/v1/tenants/globex", ""), 404, "not_found"},
		{"delete a bad id", req("DELETE", "/v1/tenants/ACME", ""), 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.Do(t, tt.req)
			p := r.Problem(t, tt.status, tt.code)
			// A bad parameter is named, so that the client knows what to fix.
			for _, e := range p.Errors {
				path := tt.req.Path
				if tt.code == "invalid_parameter" && !strings.Contains(path, "?"+e.Pointer+"=") &&
					!strings.Contains(path, "&"+e.Pointer+"=") {
					t.Errorf("error names parameter %q, which %s does not have", e.Pointer, path)
				}
			}
		})
	}

	// None of the requests above may have changed anything.
	var list testserver.TenantPage
	s.Get(t, "/v1/tenants").JSON(t, &list)
	if len(list.Data) != 1 || list.Data[0].ID != "acme" || list.Data[0].Name != "Tenant acme" {
		t.Errorf("tenants after failed requests: %+v", list.Data)
	}
	if got := testserver.TenantFiles(t, s.DataDir); !equal(got, []string{"acme.db"}) {
		t.Errorf("tenant files after failed requests: %v", got)
	}
}

// TestRequestIDs checks that every response carries X-Request-Id: the
// client's own when it is plain, else one the server makes.
func TestRequestIDs(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})

	for _, r := range []testserver.Request{
		get("/healthz"), get("/v1/tenants"), get("/nope"), noKey(get("/v1/tenants")),
		req("PUT", "/v1/tenants", "{}"), req("POST", "/v1/tenants", "{"),
	} {
		a, b := s.Do(t, r).Header.Get("X-Request-Id"), s.Do(t, r).Header.Get("X-Request-Id")
		if _, err := uuid.Parse(a); err != nil {
			t.Errorf("%s %s: X-Request-Id %q is not a server-made id", r.Method, r.Path, a)
		}
		if a == b {
			t.Errorf("%s %s: two requests share the id %q", r.Method, r.Path, a)
		}
	}

	for _, tt := range []struct{ sent, want string }{
		{"trace-42.a_B", "trace-42.a_B"},
		{strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{strings.Repeat("a", 65), ""},
		{"has space", ""},
		{"line\tbreak", ""},
		{`<script>`, ""},
	} {
		r := s.Do(t, withHeader(get("/v1/tenants/missing"), "X-Request-Id", tt.sent))
		got := r.Header.Get("X-Request-Id")
		p := r.Problem(t, 404, "not_found")
		switch {
		case tt.want != "" && got != tt.want:
			t.Errorf("sent X-Request-Id %q, got back %q", tt.sent, got)
		case tt.want == "" && (got == tt.sent || got == ""):
			t.Errorf("sent X-Request-Id %q, got back %q; want a server-made id", tt.sent, got)
		case p.RequestID != got:
			t.Errorf("requestId %q in the body, %q in the header", p.RequestID, got)
		}
	}
}

// TestUnauthorized checks that every key that does not authenticate gets the
// same 401 body, so that a caller learns nothing about which keys exist.
func TestUnauthorized(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	expired := addKey(t, s.Store, runmerge.RoleAdmin, time.Now().Add(-time.Minute))
	unknown := runmerge.NewKeySecret()
	mistyped := []byte(unknown)
	mistyped[10] ^= 1 // still the key's alphabet, but the checksum fails

	cases := []struct {
		name   string
		header map[string]string
	}{
		{"no key", nil},
		{"empty x-api-key", map[string]string{"X-Api-Key": ""}},
		{"unknown key", map[string]string{"X-Api-Key": unknown}},
		{"unknown bearer", map[string]string{"Authorization": "Bearer " + unknown}},
		{"mistyped key", map[string]string{"X-Api-Key": string(mistyped)}},
		{"malformed key", map[string]string{"X-Api-Key": "let-me-in"}},
		{"malformed bearer", map[string]string{"Authorization": "Bearer let-me-in"}},
		{"basic auth", map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4="}},
		{"root key with a typo", map[string]string{"X-Api-Key": s.Key + "x"}},
		{"expired key", map[string]string{"X-Api-Key": expired}},
	}
	var first string
	for _, path := range []testserver.Request{
		get("/v1/tenants"), get("/v1/tenants/acme"), req("POST", "/v1/tenants", `{"id":"acme"}`),
		req("PATCH", "/v1/tenants/acme", `{"name":"x"}`), req("DELETE", "/v1/tenants/acme", ""),
	} {
		for _, c := range cases {
			r := path
			r.NoKey = true
			r.Header = c.header
			resp := s.Do(t, r)
			resp.Problem(t, 401, "unauthorized")
			body := withoutRequestID(t, resp.Body)
			if first == "" {
				first = body
			} else if body != first {
				t.Errorf("%s %s, %s: body %s differs from %s", r.Method, r.Path, c.name, body, first)
			}
		}
	}
	if got := testserver.TenantFiles(t, s.DataDir); len(got) != 0 {
		t.Errorf("requests without a valid key made tenant files %v", got)
	}
}

// TestKeys checks that a platform admin key from the catalog works in both
// headers, and that a platform read-only key reads but changes nothing.
func TestKeys(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	s.CreateTenant(t, "acme")
	admin := addKey(t, s.Store, runmerge.RoleAdmin, time.Time{})
	reader := addKey(t, s.Store, runmerge.RoleReadOnly, time.Time{})

	for _, h := range []map[string]string{
		{"X-Api-Key": admin},
		{"Authorization": "Bearer " + admin},
		{"Authorization": "bearer " + admin},
	} {
		r := s.Do(t, testserver.Request{Method: "GET", Path: "/v1/tenants/acme", NoKey: true, Header: h})
		r.WantStatus(t, 200)
	}

	as := func(key string, r testserver.Request) testserver.Request {
		r.NoKey, r.Header = true, map[string]string{"X-Api-Key": key}
		return r
	}
	s.Do(t, as(reader, get("/v1/tenants"))).WantStatus(t, 200)
	s.Do(t, as(reader, get("/v1/tenants/acme"))).WantStatus(t, 200)
	for _, r := range []testserver.Request{
		req("POST", "/v1/tenants", `{"id":"globex"}`),
		req("PATCH", "/v1/tenants/acme", `{"status":"suspended"}`),
		req("DELETE", "/v1/tenants/acme", ""),
	} {
		s.Do(t, as(reader, r)).Problem(t, 403, "forbidden")
	}
	var tn testserver.Tenant
	s.Get(t, "/v1/tenants/acme").JSON(t, &tn)
	if tn.Status != "active" {
		t.Errorf("a read-only key changed the tenant: %+v", tn)
	}
	if got := testserver.TenantFiles(t, s.DataDir); !equal(got, []string{"acme.db"}) {
		t.Errorf("tenant files: %v", got)
	}
}

// TestHealth checks the two probes, which need no key.
func TestHealth(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})

	r := s.Do(t, noKey(get("/healthz")))
	r.WantStatus(t, 200)
	var body map[string]string
	r.JSON(t, &body)
	if body["status"] != "ok" || len(body) != 1 {
		t.Errorf("healthz body %s", r.Body)
	}
	s.Do(t, noKey(get("/readyz"))).WantStatus(t, 200)
}

// TestNotReadyBeforeServing checks that /readyz answers 503 until the server
// listens, so that a load balancer sends no traffic to it yet.
func TestNotReadyBeforeServing(t *testing.T) {
	store, err := tenantstore.Open(context.Background(),
		tenantstore.Config{DataDir: t.TempDir(), MaxOpen: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(context.Background())
	srv := handlers.New(handlers.Config{MaxBodyBytes: 1 << 20}, store, testserver.Logger(t))
	defer srv.Close()

	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
	r := &testserver.Response{Status: w.Code, Header: w.Header(), Body: w.Body.Bytes()}
	r.Problem(t, 503, "unavailable")

	w = httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
	if w.Code != 200 {
		t.Errorf("healthz before serving: %d, want 200", w.Code)
	}
}

// TestChunkedBodyOverLimit sends a body with no Content-Length that grows
// past limits.max_body_bytes: the server must stop reading and answer 413.
func TestChunkedBodyOverLimit(t *testing.T) {
	const limit = 4096
	s := testserver.Start(t, testserver.Options{MaxBodyBytes: limit})

	for _, size := range []int{limit + 1, 10 * limit, 4 << 20} {
		r := rawChunked(t, s.URL, s.Key, `{"id":"big","name":"`+strings.Repeat("x", size)+`"}`)
		r.Problem(t, 413, "body_too_large")
	}
	// Just under the limit is fine, chunked or not.
	body := `{"id":"small","name":"small"}` + strings.Repeat(" ", limit-40)
	rawChunked(t, s.URL, s.Key, body).WantStatus(t, 201)
	s.Post(t, "/v1/tenants", `{"id":"small2"}`+strings.Repeat(" ", limit-20)).WantStatus(t, 201)

	if got := testserver.TenantFiles(t, s.DataDir); !equal(got, []string{"small.db", "small2.db"}) {
		t.Errorf("tenant files: %v", got)
	}
}

// TestAccessLog checks that each request leaves exactly one access-log
// record, carrying its request id, status and route.
func TestAccessLog(t *testing.T) {
	var buf testserver.SyncBuffer
	s := testserver.Start(t, testserver.Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})

	reqs := []testserver.Request{
		req("POST", "/v1/tenants", `{"id":"acme"}`), get("/v1/tenants/acme"), get("/nope"),
		noKey(get("/v1/tenants")), req("PUT", "/v1/tenants", "{}"), req("POST", "/v1/tenants", "{"),
	}
	want := map[string]int{} // request id → status
	for _, r := range reqs {
		resp := s.Do(t, r)
		want[resp.Header.Get("X-Request-Id")] = resp.Status
	}

	got := map[string][]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == "request" {
			id, _ := rec["request_id"].(string)
			got[id] = append(got[id], rec)
		}
	}
	for id, status := range want {
		recs := got[id]
		if len(recs) != 1 {
			t.Errorf("request %s has %d access-log records, want 1", id, len(recs))
			continue
		}
		if s, _ := recs[0]["status"].(float64); int(s) != status {
			t.Errorf("request %s logged with status %v, answered %d", id, recs[0]["status"], status)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d requests logged, %d sent", len(got), len(want))
	}
	if strings.Contains(buf.String(), s.Key) {
		t.Error("the log shows the API key")
	}
}

func get(path string) testserver.Request { return req("GET", path, "") }

func req(method, path, body string) testserver.Request {
	return testserver.Request{Method: method, Path: path, Body: body}
}

func noKey(r testserver.Request) testserver.Request {
	r.NoKey = true
	return r
}

func withHeader(r testserver.Request, k, v string) testserver.Request {
	h := map[string]string{k: v}
	for k2, v2 := range r.Header {
		h[k2] = v2
	}
	r.Header = h
	return r
}

func equal(a, b []string) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

var requestIDMember = regexp.MustCompile(`"requestId":"[^"]*"`)

// withoutRequestID returns body with its requestId member blanked.
func withoutRequestID(t *testing.T, body []byte) string {
	t.Helper()
	if !requestIDMember.Match(body) {
		t.Fatalf("no requestId in %s", body)
	}
	return requestIDMember.ReplaceAllString(string(body), `"requestId":""`)
}

// addKey stores a platform key with role in the catalog and returns its
// secret. A non-zero expires makes it expire then.
func addKey(t *testing.T, store *tenantstore.Store, role string, expires time.Time) string {
	t.Helper()
	secret := runmerge.NewKeySecret()
	k := &runmerge.Key{
		ID:        uuid.NewString(),
		Name:      "test " + role,
		Role:      role,
		Hash:      runmerge.HashKeySecret(secret),
		CreatedAt: runmerge.Now(),
	}
	if !expires.IsZero() {
		k.ExpiresAt = &expires
	}
	if err := store.Catalog.CreateKey(context.Background(), k); err != nil {
		t.Fatalf("create key: %v", err)
	}
	return secret
}

// rawChunked posts body to /v1/tenants in chunks over a connection of its
// own, without Content-Length, and returns the answer. It writes on while
// reading, as a client would, and ignores write errors: the server may stop
// reading and close once the body is too large.
func rawChunked(t *testing.T, baseURL, key, body string) *testserver.Response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))

	go func() {
		w := bufio.NewWriter(conn)
		fmt.Fprintf(w, "POST /v1/tenants HTTP/1.1\r\nHost: test\r\nX-Api-Key: %s\r\n"+
			"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", key)
		for rest := body; rest != ""; {
			n := min(len(rest), 1000)
			fmt.Fprintf(w, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		fmt.Fprint(w, "0\r\n\r\n")
		w.Flush()
	}()

	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return &testserver.Response{Status: resp.StatusCode, Header: resp.Header, Body: b.Bytes()}
}
