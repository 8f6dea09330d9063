package handlers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/handlers"
	"github.com/runmerge/runmerge/tenantstore"
)

// recAPI is a Runmerge server over a real store in a temporary directory,
// listening on 127.0.0.1, and a client with the root key. Unless the test
// says otherwise, every answer the client gets is checked against the
// server's own OpenAPI document when the test ends.
type recAPI struct {
	URL     string
	Key     string
	DataDir string
	Store   *tenantstore.Store
	Server  *handlers.Server

	client   *http.Client
	recorder *recorder
}

// recOptions change how startRecAPI builds the server.
type recOptions struct {
	noOpenAPICheck bool // benchmarks: record nothing
	logger         *slog.Logger
}

// startRecAPI starts a server and stops it when the test ends.
func startRecAPI(tb testing.TB, opts ...recOptions) *recAPI {
	tb.Helper()
	var o recOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	dir := tb.TempDir()
	store, err := tenantstore.Open(context.Background(), tenantstore.Config{
		DataDir: dir, MaxOpen: 20, Logger: o.logger,
	})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	b := make([]byte, 24)
	rand.Read(b)
	key := "root-" + hex.EncodeToString(b)
	srv := handlers.New(handlers.Config{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxBodyBytes:      4 << 20,
		MaxImportBytes:    16 << 20,
		RootKey:           key,
	}, store, o.logger)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	a := &recAPI{URL: "http://" + ln.Addr().String(), Key: key, DataDir: dir, Store: store, Server: srv}
	transport := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
	a.client = &http.Client{Timeout: 60 * time.Second, Transport: transport}
	tb.Cleanup(func() {
		transport.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("shut down: %v", err)
		}
		if err := <-served; err != nil {
			tb.Errorf("serve: %v", err)
		}
		if err := store.Close(ctx); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	if !o.noOpenAPICheck {
		a.recorder = &recorder{next: transport}
		a.client.Transport = a.recorder
		// Cleanups run last first: this one runs while the server still
		// serves the document.
		tb.Cleanup(func() { a.checkAgainstOpenAPI(tb) })
	}
	return a
}

// recResp is an answer, its body read in full.
type recResp struct {
	Method, Path string
	Status       int
	Header       http.Header
	Body         []byte
}

// do sends a request with the root key; body, when not empty, goes as
// application/json. header holds name, value pairs that override that.
func (a *recAPI) do(tb testing.TB, method, path, body string, header ...string) *recResp {
	tb.Helper()
	r, err := a.send(method, path, body, header...)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (a *recAPI) send(method, path, body string, header ...string) (*recResp, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.URL+path, rd)
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Api-Key", a.Key)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &recResp{Method: method, Path: path, Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

func (a *recAPI) get(tb testing.TB, path string) *recResp {
	tb.Helper()
	return a.do(tb, http.MethodGet, path, "")
}

func (a *recAPI) post(tb testing.TB, path, body string, header ...string) *recResp {
	tb.Helper()
	return a.do(tb, http.MethodPost, path, body, header...)
}

func (a *recAPI) patch(tb testing.TB, path, body string, header ...string) *recResp {
	tb.Helper()
	return a.do(tb, http.MethodPatch, path, body, header...)
}

func (a *recAPI) delete(tb testing.TB, path string, header ...string) *recResp {
	tb.Helper()
	return a.do(tb, http.MethodDelete, path, "", header...)
}

// tenant creates tenant id and fails the test unless that works.
func (a *recAPI) tenant(tb testing.TB, id string) {
	tb.Helper()
	a.post(tb, "/v1/tenants", `{"id":"`+id+`"}`).want(tb, http.StatusCreated)
}

// create posts body to collection coll of tenant and returns the record.
func (a *recAPI) create(tb testing.TB, tenant, coll string, body any) jsonObj {
	tb.Helper()
	r := a.post(tb, "/v1/"+coll+"?tenantId="+tenant, mustJSON(tb, body))
	r.want(tb, http.StatusCreated)
	return r.object(tb)
}

// list fetches every page of path (which has a query string), limit
// records a page, and returns the records.
func (a *recAPI) list(tb testing.TB, path string, limit int) []jsonObj {
	tb.Helper()
	var all []jsonObj
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 100_000 {
			tb.Fatalf("%s: no last page", path)
		}
		p := fmt.Sprintf("%s&limit=%d", path, limit)
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		var pg recPage
		a.get(tb, p).decode(tb, http.StatusOK, &pg)
		if len(pg.Data) > limit {
			tb.Fatalf("%s: a page of %d records", p, len(pg.Data))
		}
		all = append(all, pg.Data...)
		if pg.NextCursor == nil {
			return all
		}
		if len(pg.Data) == 0 {
			tb.Fatalf("%s: an empty page with a next cursor", p)
		}
		cursor = *pg.NextCursor
	}
}

// ids returns the id of each record.
func ids(list []jsonObj) []string {
	out := make([]string, len(list))
	for i, r := range list {
		out[i], _ = r["id"].(string)
	}
	return out
}

// jsonObj is a JSON object as decoded with numbers kept as json.Number.
type jsonObj = map[string]any

// recPage is the body of a list.
type recPage struct {
	Data       []jsonObj `json:"data"`
	NextCursor *string   `json:"nextCursor"`
}

// recProblem is a problem+json body.
type recProblem struct {
	Type      string                `json:"type"`
	Title     string                `json:"title"`
	Status    int                   `json:"status"`
	Detail    string                `json:"detail"`
	Code      string                `json:"code"`
	RequestID string                `json:"requestId"`
	Errors    []runmerge.FieldError `json:"errors"`
}

// want fails the test unless the answer has status.
func (r *recResp) want(tb testing.TB, status int) {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("%s %s: status %d, want %d; body: %s", r.Method, r.Path, r.Status, status, r.Body)
	}
}

// decode checks the status and the JSON content type and decodes the body
// into v, numbers as json.Number.
func (r *recResp) decode(tb testing.TB, status int, v any) {
	tb.Helper()
	r.want(tb, status)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Fatalf("%s %s: Content-Type %q", r.Method, r.Path, ct)
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		tb.Fatalf("%s %s: decode %s: %v", r.Method, r.Path, r.Body, err)
	}
}

// object decodes a JSON object body of any 2xx status.
func (r *recResp) object(tb testing.TB) jsonObj {
	tb.Helper()
	var m jsonObj
	r.decode(tb, r.Status, &m)
	return m
}

// problem checks that the answer is a problem+json body of status and code
// and returns it.
func (r *recResp) problem(tb testing.TB, status int, code string) recProblem {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("%s %s: status %d, want %d; body: %s", r.Method, r.Path, r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		tb.Fatalf("%s %s: Content-Type %q, want application/problem+json", r.Method, r.Path, ct)
	}
	var p recProblem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		tb.Fatalf("%s %s: problem %s: %v", r.Method, r.Path, r.Body, err)
	}
	if p.Status != status || p.Code != code {
		tb.Fatalf("%s %s: problem %d %q, want %d %q: %s", r.Method, r.Path, p.Status, p.Code,
			status, code, r.Body)
	}
	if p.RequestID == "" || p.RequestID != r.Header.Get("X-Request-Id") {
		tb.Errorf("%s %s: requestId %q, X-Request-Id %q", r.Method, r.Path, p.RequestID,
			r.Header.Get("X-Request-Id"))
	}
	return p
}

// hasError reports whether p lists a field error at pointer, with code
// unless code is "".
func (p recProblem) hasError(pointer, code string) bool {
	for _, e := range p.Errors {
		if e.Pointer == pointer && (code == "" || e.Code == code) {
			return true
		}
	}
	return false
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// recorder is an http.RoundTripper that keeps each request and answer, so
// that they can be checked against the OpenAPI document.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	log  []exchange
}

type exchange struct {
	req    *http.Request
	status int
	header http.Header
	body   []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	r.log = append(r.log, exchange{req: req, status: resp.StatusCode, header: resp.Header.Clone(), body: body})
	r.mu.Unlock()
	return resp, nil
}

// openAPIDocs caches parsed documents by the hash of their text.
var openAPIDocs sync.Map // [32]byte → *openAPIDoc

type openAPIDoc struct {
	doc    *openapi3.T
	router routers.Router
	err    error
}

// loadOpenAPI fetches GET /v1/openapi.json, without a key, and loads and
// validates it with kin-openapi.
func (a *recAPI) loadOpenAPI(tb testing.TB) *openAPIDoc {
	tb.Helper()
	resp, err := http.Get(a.URL + "/v1/openapi.json")
	if err != nil {
		tb.Fatalf("get openapi.json: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("get openapi.json: %d %v: %s", resp.StatusCode, err, body)
	}
	sum := sha256.Sum256(body)
	if d, ok := openAPIDocs.Load(sum); ok {
		return d.(*openAPIDoc)
	}
	d := &openAPIDoc{}
	loader := openapi3.NewLoader()
	d.doc, d.err = loader.LoadFromData(body)
	if d.err == nil {
		d.err = d.doc.Validate(loader.Context)
	}
	if d.err == nil {
		d.router, d.err = gorillamux.NewRouter(d.doc)
	}
	openAPIDocs.Store(sum, d)
	return d
}

// checkAgainstOpenAPI validates every answer the client got against the
// OpenAPI document: status, headers and body.
func (a *recAPI) checkAgainstOpenAPI(tb testing.TB) {
	tb.Helper()
	d := a.loadOpenAPI(tb)
	if d.err != nil {
		tb.Errorf("the OpenAPI document does not load: %v", d.err)
		return
	}
	a.recorder.mu.Lock()
	log := a.recorder.log
	a.recorder.log = nil
	a.recorder.mu.Unlock()
	failures := 0
	for _, x := range log {
		if err := validateExchange(d, x); err != nil {
			failures++
			if failures <= 10 {
				tb.Errorf("%s %s answered %d, which the OpenAPI document does not allow: %v\nbody: %.600s",
					x.req.Method, x.req.URL.RequestURI(), x.status, err, x.body)
			}
		}
	}
	if failures > 10 {
		tb.Errorf("... and %d more answers the OpenAPI document does not allow", failures-10)
	}
}

// errNoRoute is an exchange whose request matches no route of the document:
// requests to routes that do not exist, which have nothing to check.
var errNoRoute = errors.New("no route")

func validateExchange(d *openAPIDoc, x exchange) error {
	route, params, err := d.router.FindRoute(x.req)
	if err != nil {
		if x.status == http.StatusNotFound || x.status == http.StatusMethodNotAllowed {
			return nil // a route the server does not have either
		}
		return fmt.Errorf("%w: %v", errNoRoute, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: x.req, PathParams: params, Route: route,
		},
		Status:  x.status,
		Header:  x.header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(x.body)
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// newUUID returns a random id that names no record.
func newUUID() string { return uuid.NewString() }
