package handlers_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/runmerge/runmerge/internal/testserver"
)

var validTenantID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// FuzzCreateTenantID creates tenants with any id at all. A valid id gets a
// file of its own at tenants/<id>.db; anything else gets 422 and leaves no
// file anywhere.
func FuzzCreateTenantID(f *testing.F) {
	for _, id := range []string{
		"acme", "a", strings.Repeat("a", 63), strings.Repeat("a", 64), "../x", "a/b", ".", "..",
		"x.db", "", "ACME", "café", "a\x00b", "-a", "a-", "tenants", "catalog", `..\x`, "a\u202eb",
	} {
		f.Add(id)
	}
	s := testserver.Start(f, testserver.Options{MaxOpen: 20})
	taken := map[string]bool{}

	f.Fuzz(func(t *testing.T, id string) {
		body, _ := json.Marshal(map[string]string{"id": id})
		r := serveHTTP(s, "POST", "/v1/tenants", string(body))
		switch {
		case !validTenantID.MatchString(id):
			wantProblem(t, r, http.StatusUnprocessableEntity)
		case taken[id]:
			wantProblem(t, r, http.StatusConflict)
		default:
			if r.Status != http.StatusCreated {
				t.Fatalf("id %q: status %d, want 201: %s", id, r.Status, r.Body)
			}
			taken[id] = true
			if _, err := os.Stat(filepath.Join(s.DataDir, "tenants", id+".db")); err != nil {
				t.Fatalf("created %q without its file: %v", id, err)
			}
		}
		checkDataDir(t, s.DataDir, taken)
	})
}

// FuzzCreateTenantBody posts any bytes as a JSON body. The answer is 201 or
// a 4xx problem, never a 5xx, and only a 201 leaves a file.
func FuzzCreateTenantBody(f *testing.F) {
	for _, b := range []string{
		`{"id":"acme"}`, `{"name":"x"}`, `{}`, `{"id":"a","id":"b"}`, `{"id":null}`,
		`{"id":"a","name":null}`, `[]`, `null`, `{"id":"a"} x`, `{"id":"\u0000"}`, `{"id":"..\/x"}`,
		`{"status":"active"}`, `{"id":1e999}`, `{"name":"` + strings.Repeat("n", 300) + `"}`, "\xff\xfe",
	} {
		f.Add([]byte(b))
	}
	s := testserver.Start(f, testserver.Options{MaxOpen: 20, MaxBodyBytes: 4096})
	taken := map[string]bool{}

	f.Fuzz(func(t *testing.T, body []byte) {
		r := serveHTTP(s, "POST", "/v1/tenants", string(body))
		if r.Status == http.StatusCreated {
			var tn testserver.Tenant
			r.JSON(t, &tn)
			if !validTenantID.MatchString(tn.ID) || taken[tn.ID] {
				t.Fatalf("created id %q from %q", tn.ID, body)
			}
			taken[tn.ID] = true
		} else {
			wantProblem(t, r, 0)
		}
		checkDataDir(t, s.DataDir, taken)
	})
}

// FuzzListTenantsQuery lists tenants with any query string: the answer is
// a page or a 400 invalid_parameter, never a 5xx and never a page that
// ignored a parameter.
func FuzzListTenantsQuery(f *testing.F) {
	for _, q := range []string{
		"", "limit=1", "limit=500", "limit=0", "limit=1&limit=2", "cursor=eyJhIjoiYSJ9", "cursor=!!",
		"limit=%zz", "tenantId=acme", "x=1", "limit=1&cursor=eyJhIjoiYSJ9", ";", "&&", "limit",
	} {
		f.Add(q)
	}
	s := testserver.Start(f, testserver.Options{})
	for _, id := range []string{"a", "b", "c"} {
		s.CreateTenant(f, id)
	}

	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest("GET", "/v1/tenants", nil)
		req.URL.RawQuery = query
		req.Header.Set("X-Api-Key", s.Key)
		r := record(s, req)
		if r.Status == http.StatusOK {
			var page testserver.TenantPage
			r.JSON(t, &page)
			return
		}
		if p := wantProblem(t, r, http.StatusBadRequest); p.Code != "invalid_parameter" {
			t.Fatalf("query %q: code %q, want invalid_parameter", query, p.Code)
		}
	})
}

// serveHTTP runs one request through the server's handler in the test's
// goroutine, which is quicker than a connection per input.
func serveHTTP(s *testserver.Server, method, path, body string) *testserver.Response {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", s.Key)
	return record(s, req)
}

func record(s *testserver.Server, req *http.Request) *testserver.Response {
	w := httptest.NewRecorder()
	s.HTTP.Handler().ServeHTTP(w, req)
	return &testserver.Response{Status: w.Code, Header: w.Header(), Body: w.Body.Bytes()}
}

// wantProblem checks that r is a 4xx problem+json, of the given status
// unless it is 0, and returns it.
func wantProblem(t *testing.T, r *testserver.Response, status int) testserver.Problem {
	t.Helper()
	if r.Status < 400 || r.Status >= 500 || (status != 0 && r.Status != status) {
		t.Fatalf("status %d, want a 4xx (%d): %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q on a %d", ct, r.Status)
	}
	var p testserver.Problem
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	if err := dec.Decode(&p); err != nil || p.Status != r.Status || p.Code == "" || p.RequestID == "" {
		t.Fatalf("problem %s (%v)", r.Body, err)
	}
	return p
}

// checkDataDir fails the test when the data directory holds a file other
// than the catalog and the files of the tenants created, or when a file
// appeared beside the data directory.
func checkDataDir(t *testing.T, dir string, tenants map[string]bool) {
	t.Helper()
	for _, f := range testserver.Files(t, filepath.Dir(dir)) {
		if !strings.HasPrefix(f, filepath.Base(dir)+"/") {
			t.Fatalf("unexpected file %s beside the data directory", f)
		}
	}
	for _, f := range testserver.Files(t, dir) {
		base := strings.TrimSuffix(strings.TrimSuffix(f, "-wal"), "-shm")
		if base == "catalog.db" {
			continue
		}
		id, ok := strings.CutPrefix(base, "tenants/")
		if !ok || !strings.HasSuffix(id, ".db") || !tenants[strings.TrimSuffix(id, ".db")] {
			t.Fatalf("unexpected file %s in the data directory", f)
		}
	}
}
