package handlers_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runmerge/runmerge/handlers"
	"github.com/runmerge/runmerge/internal/testserver"
	"github.com/runmerge/runmerge/tenantstore"
)

// startMetricsServer serves the API with metrics on or off over a new data
// directory.
func startMetricsServer(t *testing.T, enabled bool) (*httptest.Server, *handlers.Server, *tenantstore.Store, string) {
	t.Helper()
	store, err := tenantstore.Open(context.Background(), tenantstore.Config{DataDir: t.TempDir(), MaxOpen: 10})
	if err != nil {
		t.Fatal(err)
	}
	rootKey := testserver.RootKey()
	srv := handlers.New(handlers.Config{MaxBodyBytes: 1 << 20, MaxImportBytes: 1 << 20, RootKey: rootKey,
		MetricsEnabled: enabled}, store, testserver.Logger(t))
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
		store.Close(context.Background())
	})
	return ts, srv, store, rootKey
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return string(b)
}

func TestMetrics(t *testing.T) {
	ts, srv, store, rootKey := startMetricsServer(t, true)
	c := testserver.NewClient(ts.URL, rootKey)
	const secretTenant = "tenant-name-never-in-metrics"
	c.CreateTenant(t, secretTenant)
	c.Get(t, "/v1/tenants/"+secretTenant).WantStatus(t, http.StatusOK)
	c.Get(t, "/v1/tenants/"+secretTenant).WantStatus(t, http.StatusOK)
	c.Get(t, "/v1/no/such/"+secretTenant).WantStatus(t, http.StatusNotFound)
	c.Do(t, testserver.Request{Method: "GET", Path: "/v1/tenants", NoKey: true}).WantStatus(t, http.StatusUnauthorized)

	b, err := store.NewBackups(tenantstore.BackupConfig{Dir: t.TempDir(), Interval: time.Hour, Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.MonitorBackups(b); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RunCycle(context.Background()); err != nil {
		t.Fatal(err)
	}

	body := scrape(t, ts.URL)
	for _, want := range []string{
		`runmerge_http_requests_total{method="GET",route="/v1/tenants/:id",status="200"} 2`,
		`runmerge_http_requests_total{method="POST",route="/v1/tenants",status="201"} 1`,
		`runmerge_http_requests_total{method="GET",route="/v1/tenants",status="401"} 1`,
		`runmerge_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`runmerge_http_request_duration_seconds_bucket{method="GET",route="/v1/tenants/:id",le="+Inf"} 2`,
		`runmerge_pool_open_tenants 1`,
		`runmerge_pool_hits_total`,
		`runmerge_pool_misses_total`,
		`runmerge_pool_evictions_total 0`,
		`runmerge_pool_open_seconds_total`,
		`runmerge_pool_lease_wait_seconds_total`,
		`runmerge_sqlite_memory_bytes`,
		`runmerge_backup_cycles_total 1`,
		`runmerge_backup_snapshots_total 0`,
		`runmerge_backup_failures_total 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, secretTenant) {
		t.Errorf("metrics name a tenant")
	}
	// Every label value is a route, a method or a status: none grows with
	// tenants, keys or records.
	label := regexp.MustCompile(`(\w+)="([^"]*)"`)
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "runmerge_") {
			continue
		}
		for _, m := range label.FindAllStringSubmatch(line, -1) {
			switch {
			case m[1] == "method" || m[1] == "status" || m[1] == "le":
			case m[1] == "route" && (m[2] == "unmatched" || strings.HasPrefix(m[2], "/")):
			default:
				t.Errorf("unexpected label %s in %s", m[0], line)
			}
		}
	}
}

func TestMetricsDisabled(t *testing.T) {
	ts, _, _, _ := startMetricsServer(t, false)
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics with metrics off: %d, want 404", resp.StatusCode)
	}
}
