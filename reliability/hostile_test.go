package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/runmerge/runmerge/internal/testserver"
)

var (
	fuzzRequests = flag.Int("hostile.requests", 3000, "requests the HTTP fuzzer sends")
	fuzzTime     = flag.Duration("hostile.time", 20*time.Second, "longest the HTTP fuzzer runs")
	fuzzSeed     = flag.Uint64("hostile.seed", 0, "seed of the HTTP fuzzer; 0 picks one")
)

// TestHostileHTTP sends malformed, huge, deeply nested, mistyped and
// invalid-UTF-8 requests to every route of the server's route table, with
// overlong headers, query strings and bad cursors among them. No answer
// may be a 5xx, every error body must be problem+json with every member
// API.md names, and the server's log must show no panic and no error.
func TestHostileHTTP(t *testing.T) {
	srv := startBinary(t, t.TempDir(), testserver.RootKey(), procOptions{})
	f := newFuzzer(t, srv.Client, routeTable(t))

	seed := *fuzzSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -hostile.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	deadline := time.Now().Add(*fuzzTime)
	sent, byStatus := 0, map[int]int{}
	for sent < *fuzzRequests && time.Now().Before(deadline) {
		route := f.routes[rng.IntN(len(f.routes))]
		req := f.request(rng, route)
		status := f.send(t, route, req)
		byStatus[status]++
		sent++
		if t.Failed() {
			break
		}
	}
	// Every route once more with nothing hostile but a bad key, and once
	// with no key: the ordinary refusals must be well-formed too.
	for _, route := range f.routes {
		for _, key := range []string{"", "rmk_not-a-key"} {
			req := f.plain(route)
			req.key = key
			byStatus[f.send(t, route, req)]++
			sent++
		}
	}
	if l := srv.Log.String(); srv.logShowsPanic() || strings.Contains(l, "level=ERROR") {
		t.Errorf("the server logged a panic or an error:\n%s", l)
	}
	var codes []string
	for s, n := range byStatus {
		codes = append(codes, fmt.Sprintf("%d:%d", s, n))
	}
	sort.Strings(codes)
	t.Logf("%d requests to %d routes; statuses %s", sent, len(f.routes), strings.Join(codes, " "))
}

// fuzzer knows the routes and a few ids that exist, so that some hostile
// requests reach a handler past its lookups.
type fuzzer struct {
	srv      *testserver.Client
	routes   []string
	recordID string
	client   *http.Client
}

func newFuzzer(t *testing.T, srv *testserver.Client, routes []string) *fuzzer {
	t.Helper()
	srv.CreateTenant(t, "acme")
	r := srv.Post(t, "/v1/events?tenantId=acme", eventBody)
	r.WantStatus(t, http.StatusCreated)
	var rec struct {
		ID string `json:"id"`
	}
	json.Unmarshal(r.Body, &rec)
	return &fuzzer{srv: srv, routes: routes, recordID: rec.ID,
		client: &http.Client{Timeout: 10 * time.Second}}
}

// routeTable returns every route the server registers, from the route
// table of an in-process server, sorted.
func routeTable(t *testing.T) []string {
	t.Helper()
	var routes []string
	for route := range testserver.Start(t, testserver.Options{}).HTTP.Routes() {
		routes = append(routes, route)
	}
	sort.Strings(routes)
	return routes
}

// hostileRequest is one request before it is sent.
type hostileRequest struct {
	method, path, query string
	body                []byte
	header              map[string]string
	key                 string
}

// plain returns an ordinary request to route: real ids, an empty JSON
// object as the body, the root key.
func (f *fuzzer) plain(route string) hostileRequest {
	method, pattern, _ := strings.Cut(route, " ")
	path := pattern
	id := f.recordID
	if strings.HasPrefix(pattern, "/v1/tenants/") {
		id = "acme"
	}
	if method == http.MethodDelete {
		id = "no-such-thing" // keep the fixtures alive
	}
	path = strings.ReplaceAll(path, ":deliveryId", "no-such-delivery")
	path = strings.ReplaceAll(path, ":id", id)
	req := hostileRequest{method: method, path: path, query: "tenantId=acme",
		header: map[string]string{}, key: f.srv.Key}
	if method != http.MethodGet && method != http.MethodDelete {
		req.body = []byte("{}")
		req.header["Content-Type"] = "application/json"
	}
	if strings.HasSuffix(pattern, "/import") {
		req.header["Content-Type"] = "application/vnd.sqlite3"
		req.body = []byte("SQLite format 3\x00not really")
	}
	return req
}

// hostileBodies are bodies no server should choke on.
var hostileBodies = []func(*rand.Rand) []byte{
	func(*rand.Rand) []byte { return []byte(`{"name":`) },
	func(*rand.Rand) []byte { return []byte(`{"name":"x",}`) },
	func(*rand.Rand) []byte { return []byte(`[1,2,3]`) },
	func(*rand.Rand) []byte { return []byte(`null`) },
	func(*rand.Rand) []byte { return []byte(`"just a string"`) },
	func(*rand.Rand) []byte { return []byte(`{"records":null}`) },
	func(*rand.Rand) []byte { return []byte(`{"records":[null,1,"x",[]]}`) },
	func(*rand.Rand) []byte { return []byte(`{"capacity":1e999999,"price":-0}`) },
	func(*rand.Rand) []byte { return []byte(`{"name":"\ud800","email":"\udfff@x"}`) },
	func(*rand.Rand) []byte { return []byte("{\"name\":\"\xff\xfe\xfd\"}") },
	func(*rand.Rand) []byte { return []byte("\xef\xbb\xbf{}") },
	func(*rand.Rand) []byte { return []byte(`{"name":"a","name":"b"}`) },
	func(*rand.Rand) []byte { return []byte(`{"id":"x","version":7,"tenantId":"other"}`) },
	func(*rand.Rand) []byte { return []byte(`{"relationships":{"linkedEventIds":[1,{},null]}}`) },
	func(*rand.Rand) []byte { return []byte(`{"customFields":[{"fieldType":"nope"}],"sourceRawData":[]}`) },
	func(*rand.Rand) []byte { return []byte(`{"eventTypes":"*","url":"javascript:alert(1)"}`) },
	func(*rand.Rand) []byte { return []byte(`{"role":"root","eventIds":{},"expiresAt":"yesterday"}`) },
	func(*rand.Rand) []byte { return []byte(`{"status":"suspended","name":null}`) },
	func(r *rand.Rand) []byte { return bytes.Repeat([]byte("["), 1000+r.IntN(200000)) },
	func(r *rand.Rand) []byte {
		n := 100 + r.IntN(20000)
		return []byte(strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n))
	},
	func(r *rand.Rand) []byte {
		return []byte(`{"name":"` + strings.Repeat("x", (1<<20)+r.IntN(1<<20)) + `"}`)
	},
	func(r *rand.Rand) []byte {
		var b bytes.Buffer
		b.WriteString(`{"records":[`)
		for i := range 1001 + r.IntN(100) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"name":"n"}`)
		}
		b.WriteString(`]}`)
		return b.Bytes()
	},
	func(r *rand.Rand) []byte {
		b := make([]byte, r.IntN(4096))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return b
	},
}

var hostileContentTypes = []string{
	"text/plain", "application/xml", "application/x-www-form-urlencoded",
	"multipart/form-data; boundary=x", "application/json; charset=latin1",
	"application/json;;;", "", "\x01", "application/problem+json",
}

var hostileQueries = []func(*rand.Rand) string{
	func(*rand.Rand) string { return "cursor=not-a-cursor" },
	func(*rand.Rand) string { return "cursor=" + url.QueryEscape("eyJ0IjoiMjAyNiJ9") },
	func(*rand.Rand) string { return "cursor=%ff%fe%00" },
	func(*rand.Rand) string { return "cursor=" + strings.Repeat("A", 10000) },
	func(*rand.Rand) string { return "limit=-1" },
	func(*rand.Rand) string { return "limit=99999999999999999999" },
	func(*rand.Rand) string { return "limit=abc&limit=2" },
	func(*rand.Rand) string { return "updatedAfter=yesterday" },
	func(*rand.Rand) string { return "updatedAfter=9999-99-99T99:99:99Z" },
	func(*rand.Rand) string { return "sourceRawData=maybe&includeDeleted=2" },
	func(*rand.Rand) string { return "q=%ff%fe&status=%00" },
	func(*rand.Rand) string { return "q=" + strings.Repeat("%27%22%25", 2000) },
	func(*rand.Rand) string { return "tenantId=..%2F..%2Fcatalog" },
	func(*rand.Rand) string { return "tenantId=" + strings.Repeat("a", 300) },
	func(*rand.Rand) string { return "tenantId=%ff" },
	func(*rand.Rand) string { return "eventTypes=" + strings.Repeat("x,", 5000) },
	func(*rand.Rand) string { return "%zz=1&;;&=&" },
	func(*rand.Rand) string { return "misspelt=1" },
	func(r *rand.Rand) string { return "q=" + strings.Repeat("a", 8000+r.IntN(40000)) },
}

var hostileIDs = []string{
	"%00", "..%2F..%2Fcatalog", "%ff%fe", strings.Repeat("9", 3000), "acme%00.db",
	"00000000-0000-0000-0000-000000000000", "%E2%80%AE", "a%20b",
}

var hostileHeaders = []func(*rand.Rand) (string, string){
	func(r *rand.Rand) (string, string) { return "X-Pad", strings.Repeat("h", 1000+r.IntN(80<<10)) },
	func(*rand.Rand) (string, string) { return "If-Match", `W/"1", *, "x"` },
	func(*rand.Rand) (string, string) { return "If-Match", strings.Repeat(`"9"`, 1000) },
	func(*rand.Rand) (string, string) { return "Idempotency-Key", strings.Repeat("k", 300) },
	func(*rand.Rand) (string, string) { return "Idempotency-Key", "\xff\xfe" },
	func(*rand.Rand) (string, string) { return "Last-Event-ID", "-1" },
	func(*rand.Rand) (string, string) { return "Last-Event-ID", "\xff" + strings.Repeat("9", 100) },
	func(*rand.Rand) (string, string) { return "Authorization", "Bearer " + strings.Repeat("x", 4000) },
	func(*rand.Rand) (string, string) { return "x-integration-key", "\xff\xfe" },
	func(*rand.Rand) (string, string) { return "Content-Length", "0" },
	func(*rand.Rand) (string, string) { return "Accept", "application/xml" },
}

// request builds a hostile request to route from one to three mutations of
// the plain one.
func (f *fuzzer) request(rng *rand.Rand, route string) hostileRequest {
	req := f.plain(route)
	for range 1 + rng.IntN(3) {
		switch rng.IntN(6) {
		case 0, 1:
			req.body = hostileBodies[rng.IntN(len(hostileBodies))](rng)
			if req.header["Content-Type"] == "" {
				req.header["Content-Type"] = "application/json"
			}
		case 2:
			req.header["Content-Type"] = hostileContentTypes[rng.IntN(len(hostileContentTypes))]
		case 3:
			req.query += "&" + hostileQueries[rng.IntN(len(hostileQueries))](rng)
		case 4:
			if strings.Contains(route, ":id") {
				method, pattern, _ := strings.Cut(route, " ")
				id := hostileIDs[rng.IntN(len(hostileIDs))]
				if method == http.MethodDelete && strings.HasPrefix(id, "0000") {
					break
				}
				req.path = strings.ReplaceAll(strings.ReplaceAll(pattern, ":deliveryId", id), ":id", id)
			}
		case 5:
			k, v := hostileHeaders[rng.IntN(len(hostileHeaders))](rng)
			req.header[k] = v
		}
	}
	return req
}

// send sends req and checks the answer: never a 5xx, and every 4xx a
// well-formed problem+json. It returns the status.
func (f *fuzzer) send(t *testing.T, route string, req hostileRequest) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := f.srv.URL + req.path
	if req.query != "" {
		u += "?" + req.query
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return 0 // a request Go refuses to build never reaches the server
	}
	if req.key != "" {
		hr.Header.Set("X-Api-Key", req.key)
	}
	for k, v := range req.header {
		if k == "Content-Length" {
			continue
		}
		hr.Header[http.CanonicalHeaderKey(k)] = []string{v}
	}
	what := fmt.Sprintf("%s (%s %.200s, %d-byte body)", route, req.method, u, len(req.body))
	resp, err := f.client.Do(hr)
	if err != nil {
		if strings.Contains(err.Error(), "invalid header") || strings.Contains(err.Error(), "invalid byte") {
			return 0 // refused by Go's client, not sent
		}
		t.Errorf("%s: no answer: %v", what, err)
		return 0
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode // a stream that opened: nothing more to read
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%s: read the answer: %v", what, err)
	}
	if resp.StatusCode >= 500 {
		t.Errorf("%s: status %d: %.500s", what, resp.StatusCode, b)
		return resp.StatusCode
	}
	if resp.StatusCode == http.StatusRequestHeaderFieldsTooLarge && resp.Header.Get("X-Request-Id") == "" {
		// Go's HTTP server answers headers over MaxHeaderBytes itself, in
		// plain text, before any of Runmerge's code runs.
		return resp.StatusCode
	}
	if resp.StatusCode >= 400 {
		checkProblem(t, what, resp, b)
	}
	return resp.StatusCode
}

// checkProblem fails the test unless b is a problem+json body with every
// member API.md names, the status of the response and the request id of its
// X-Request-Id header, showing no path, SQL or stack.
func checkProblem(t *testing.T, what string, resp *http.Response, b []byte) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: status %d with Content-Type %q: %.300s", what, resp.StatusCode, ct, b)
		return
	}
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		t.Errorf("%s: problem body is not JSON: %v: %.300s", what, err, b)
		return
	}
	for _, m := range []string{"type", "title", "status", "detail", "code", "requestId"} {
		if v, ok := p[m]; !ok || v == "" {
			t.Errorf("%s: problem body lacks %q: %.300s", what, m, b)
		}
	}
	if s, _ := p["status"].(float64); int(s) != resp.StatusCode {
		t.Errorf("%s: problem status %v, response status %d", what, p["status"], resp.StatusCode)
	}
	if id := resp.Header.Get("X-Request-Id"); id == "" || p["requestId"] != id {
		t.Errorf("%s: requestId %v, X-Request-Id %q", what, p["requestId"], id)
	}
	testserver.LeaksNothing(t, string(b))
}
