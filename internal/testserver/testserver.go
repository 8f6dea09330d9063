// Package testserver starts a real Runmerge HTTP server over a temporary data
// directory and talks to it, for tests of the HTTP API. Every helper fails the
// test on its own when something goes wrong, so that tests read as a list of
// requests and what a client should see.
package testserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runmerge/runmerge/handlers"
	"github.com/runmerge/runmerge/tenantstore"
)

// Server is a Runmerge server listening on a port of 127.0.0.1 chosen by the
// system, over its own data directory.
type Server struct {
	*Client
	DataDir string
	Store   *tenantstore.Store
	HTTP    *handlers.Server
}

// Options change how Start builds the server. The zero value is the
// server's defaults with a fresh root key.
type Options struct {
	MaxBodyBytes int64 // 0 for 1 MiB
	MaxOpen      int   // pool.max_open; 0 for 100

	// Logger receives the server's log; nil sends warnings and errors to
	// the test's log.
	Logger *slog.Logger
}

// Start opens a store in a new temporary directory, serves the HTTP API on
// 127.0.0.1:0 and stops both when the test ends. Its Client carries a
// platform admin key (the configured root key).
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.MaxOpen == 0 {
		opts.MaxOpen = 100
	}
	if opts.Logger == nil {
		opts.Logger = Logger(t)
	}
	dir := t.TempDir()
	store, err := tenantstore.Open(context.Background(), tenantstore.Config{
		DataDir: dir,
		MaxOpen: opts.MaxOpen,
		Logger:  opts.Logger,
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	rootKey := RootKey()
	srv := handlers.New(handlers.Config{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxBodyBytes:      opts.MaxBodyBytes,
		MaxImportBytes:    16 << 20,
		RootKey:           rootKey,
	}, store, opts.Logger)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		store.Close(context.Background())
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shut down server: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := store.Close(ctx); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &Server{
		Client:  NewClient("http://"+ln.Addr().String(), rootKey),
		DataDir: dir,
		Store:   store,
		HTTP:    srv,
	}
}

// RootKey returns a new random root key of the length auth.root_key needs.
func RootKey() string {
	b := make([]byte, 24)
	rand.Read(b)
	return "root-" + hex.EncodeToString(b)
}

// Logger returns a logger that writes warnings and errors to the test's log,
// where they show up when the test fails or runs with -v.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// Client sends requests to a Runmerge server with an API key.
type Client struct {
	URL  string // the server's base URL, without a trailing slash
	Key  string // sent as x-api-key unless a request says otherwise
	HTTP *http.Client
}

// NewClient returns a client of the server at url with key.
func NewClient(url, key string) *Client {
	return &Client{URL: url, Key: key, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Request is one request of a test. A JSON body is sent as
// application/json unless Header sets another Content-Type.
type Request struct {
	Method string
	Path   string // with the query string, if any
	Body   string
	Header map[string]string
	NoKey  bool // send no API key
}

// Response is what the server answered, with the body read in full.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends r and returns the response. A request that gets no response fails
// the test.
func (c *Client) Do(t testing.TB, r Request) *Response {
	t.Helper()
	resp, err := c.send(r)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.Path, err)
	}
	return resp
}

func (c *Client) send(r Request) (*Response, error) {
	var body io.Reader
	if r.Body != "" {
		body = strings.NewReader(r.Body)
	}
	req, err := http.NewRequest(r.Method, c.URL+r.Path, body)
	if err != nil {
		return nil, err
	}
	if r.Body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if !r.NoKey && c.Key != "" {
		req.Header.Set("X-Api-Key", c.Key)
	}
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Get, Post, Patch and Delete are Do for the common cases.
func (c *Client) Get(t testing.TB, path string) *Response {
	t.Helper()
	return c.Do(t, Request{Method: http.MethodGet, Path: path})
}

// Post sends body as JSON.
func (c *Client) Post(t testing.TB, path, body string) *Response {
	t.Helper()
	return c.Do(t, Request{Method: http.MethodPost, Path: path, Body: body})
}

// Patch sends body as JSON.
func (c *Client) Patch(t testing.TB, path, body string) *Response {
	t.Helper()
	return c.Do(t, Request{Method: http.MethodPatch, Path: path, Body: body})
}

// Delete sends a DELETE.
func (c *Client) Delete(t testing.TB, path string) *Response {
	t.Helper()
	return c.Do(t, Request{Method: http.MethodDelete, Path: path})
}

// CreateTenant creates tenant id and fails the test unless it gets 201.
func (c *Client) CreateTenant(t testing.TB, id string) Tenant {
	t.Helper()
	r := c.Post(t, "/v1/tenants", `{"id":"`+id+`","name":"Tenant `+id+`"}`)
	r.WantStatus(t, http.StatusCreated)
	var tn Tenant
	r.JSON(t, &tn)
	return tn
}

// Tenant is a tenant as the API shows it.
type Tenant struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	CreatedAt string `json:"createdAt"`
	UpdatedAt string `json:"updatedAt"`
	Stats     *struct {
		FileSizeBytes int64            `json:"fileSizeBytes"`
		Records       map[string]int64 `json:"records"`
		Open          bool             `json:"open"`
	} `json:"stats"`
}

// TenantPage is a page of GET /v1/tenants.
type TenantPage struct {
	Data       []Tenant `json:"data"`
	NextCursor *string  `json:"nextCursor"`
}

// Problem is a problem+json body.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	RequestID string `json:"requestId"`
	Errors    []struct {
		Pointer string `json:"pointer"`
		Code    string `json:"code"`
		Detail  string `json:"detail"`
	} `json:"errors"`
}

// WantStatus fails the test unless the response has the status.
func (r *Response) WantStatus(t testing.TB, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body: %s", r.Status, status, r.Body)
	}
}

// JSON decodes the body into v, refusing members v does not have, so that a
// field the API must not show makes the test fail.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want application/json; body: %s", ct, r.Body)
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Problem checks that the response is a problem+json body of the given
// status and code, with every member RFC 9457 and API.md ask for, and the
// request id the X-Request-Id header carries. It returns the problem.
func (r *Response) Problem(t testing.TB, status int, code string) Problem {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body: %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &members); err != nil {
		t.Fatalf("problem body %s: %v", r.Body, err)
	}
	for _, m := range []string{"type", "title", "status", "detail", "code", "requestId"} {
		if _, ok := members[m]; !ok {
			t.Errorf("problem body lacks %q: %s", m, r.Body)
		}
	}
	var p Problem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.Body, err)
	}
	if p.Status != status || p.Code != code {
		t.Errorf("problem status %d code %q, want %d %q: %s", p.Status, p.Code, status, code, r.Body)
	}
	if p.Type == "" || p.Title == "" || p.Detail == "" {
		t.Errorf("problem with an empty type, title or detail: %s", r.Body)
	}
	if id := r.Header.Get("X-Request-Id"); id == "" || p.RequestID != id {
		t.Errorf("problem requestId %q, X-Request-Id header %q", p.RequestID, id)
	}
	LeaksNothing(t, string(r.Body))
	return p
}

// leaks are things no response body may show: file paths, SQL, Go internals.
var leaks = regexp.MustCompile(`(?i)/tmp/|\.db\b|sqlite|select |insert |goroutine |\.go:\d`)

// LeaksNothing fails the test when body shows a file path, SQL or a stack.
func LeaksNothing(t testing.TB, body string) {
	t.Helper()
	if m := leaks.FindString(body); m != "" {
		t.Errorf("body shows %q: %s", m, body)
	}
}

// TimeFormat matches the times the server writes: UTC, milliseconds.
var TimeFormat = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// Files returns the path, relative to dir, of every regular file under dir,
// sorted.
func Files(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	sort.Strings(out)
	return out
}

// TenantFiles returns the tenant files of data directory dir, with their
// -wal and -shm companions left out, sorted.
func TenantFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	for _, f := range Files(t, dir) {
		if strings.HasPrefix(f, "tenants/") && strings.HasSuffix(f, ".db") {
			out = append(out, strings.TrimPrefix(f, "tenants/"))
		}
	}
	return out
}

// OpenFiles returns the files under dir that this process holds open, read
// from /proc/self/fd. It skips the test where /proc is missing.
func OpenFiles(t testing.TB, dir string) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no /proc/self/fd on this system")
	} else if err != nil {
		t.Fatalf("read /proc/self/fd: %v", err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatalf("resolve %s: %v", dir, err)
	}
	var open []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil {
			continue // closed since ReadDir
		}
		if strings.HasPrefix(target, real+string(filepath.Separator)) {
			open = append(open, target)
		}
	}
	return open
}

// SyncBuffer is a bytes.Buffer that a server's goroutines may write to
// while the test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// SlowRequest is a request whose body the test sends piece by piece, in
// chunks, over a connection of its own: a slow client, or a large upload.
type SlowRequest struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

// StartSlowRequest connects to addr (host:port) and sends the headers of a
// JSON request with no body yet. It asks for 100 Continue, which the server
// sends once the handler starts reading the body; WaitReading waits for it.
func StartSlowRequest(t testing.TB, addr, method, path, key string) *SlowRequest {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	r := &SlowRequest{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
	fmt.Fprintf(r.w, "%s %s HTTP/1.1\r\nHost: %s\r\nX-Api-Key: %s\r\nContent-Type: application/json\r\n"+
		"Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n", method, path, addr, key)
	if err := r.w.Flush(); err != nil {
		t.Fatalf("send headers: %v", err)
	}
	return r
}

// WaitReading waits until the server's handler has begun to read the body.
func (r *SlowRequest) WaitReading(t testing.TB) {
	t.Helper()
	resp, err := http.ReadResponse(r.r, nil)
	if err != nil {
		t.Fatalf("wait for 100 Continue: %v", err)
	}
	if resp.StatusCode != http.StatusContinue {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d before the body was sent, want 100: %s", resp.StatusCode, b)
	}
}

// Send sends one chunk of the body.
func (r *SlowRequest) Send(t testing.TB, chunk string) {
	t.Helper()
	fmt.Fprintf(r.w, "%x\r\n%s\r\n", len(chunk), chunk)
	if err := r.w.Flush(); err != nil {
		t.Fatalf("send a chunk: %v", err)
	}
}

// Finish ends the body and returns the response.
func (r *SlowRequest) Finish(t testing.TB) *Response {
	t.Helper()
	fmt.Fprint(r.w, "0\r\n\r\n")
	if err := r.w.Flush(); err != nil {
		t.Fatalf("end the body: %v", err)
	}
	resp, err := http.ReadResponse(r.r, nil)
	if err != nil {
		t.Fatalf("read the response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the response: %v", err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// WaitRefused waits until addr refuses connections, as a server does once it
// has begun to shut down.
func WaitRefused(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections", addr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
