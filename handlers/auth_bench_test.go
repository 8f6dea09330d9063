package handlers

// Benchmarks of what keys and isolation cost a request, and a test of the
// authentication cache under revocation. Figures: docs/benchmarks.md.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// openBenchStore opens a store in a temporary directory.
func openBenchStore(tb testing.TB, maxOpen int) *tenantstore.Store {
	tb.Helper()
	cfg := tenantstore.Config{DataDir: tb.TempDir(), MaxOpen: maxOpen}
	store, err := tenantstore.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close(context.Background()) })
	return store
}

// addBenchKey stores a key of role in tenant and returns its secret.
func addBenchKey(tb testing.TB, c *tenantstore.Catalog, tenant, role string) (secret, id string) {
	tb.Helper()
	secret = runmerge.NewKeySecret()
	k := &runmerge.Key{ID: uuid.Must(uuid.NewV7()).String(), Name: "bench", TenantID: tenant, Role: role,
		Hash: runmerge.HashKeySecret(secret), CreatedAt: runmerge.Now()}
	if err := c.CreateKey(context.Background(), k); err != nil {
		tb.Fatal(err)
	}
	return secret, k.ID
}

// TestIsolationRevokedKeyNotRecached revokes keys while lookups of them are
// in flight: a lookup that read the key before the revocation must not put
// it back in the cache after it was emptied, or the key would work on for
// up to a poll interval.
func TestIsolationRevokedKeyNotRecached(t *testing.T) {
	store := openBenchStore(t, 10)
	a := newAuthenticator(store.Catalog, "", slog.New(slog.DiscardHandler))
	defer a.close()
	ctx := context.Background()
	const rounds = 200
	stale := 0
	for range rounds {
		secret, id := addBenchKey(t, store.Catalog, "", runmerge.RoleReadOnly)
		var stop atomic.Bool
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					a.principal(ctx, secret)
				}
			}()
		}
		// Keep the cache emptying, as changes to other keys do, so that
		// lookups are in flight when the revocation commits.
		var churned atomic.Bool
		churn := make(chan struct{})
		go func() {
			defer close(churn)
			for !churned.Load() {
				a.forget()
				time.Sleep(10 * time.Microsecond)
			}
		}()
		time.Sleep(time.Millisecond)
		if err := store.Catalog.RevokeKey(ctx, id); err != nil {
			t.Fatal(err)
		}
		churned.Store(true)
		<-churn
		a.forget() // as DELETE /v1/keys/:id does once the revocation committed
		stop.Store(true)
		wg.Wait()
		if _, err := a.principal(ctx, secret); err == nil {
			stale++
		}
	}
	if stale > 0 {
		t.Errorf("%d of %d revoked keys still authenticated after the revocation returned", stale, rounds)
	}
}

// BenchmarkAuthenticateSeenKey measures what authenticating a valid key
// that has been seen before adds to a request: hashing the secret,
// checking its form and finding it in the cache. It reports the median
// and 99th percentile of batches of calls.
func BenchmarkAuthenticateSeenKey(b *testing.B) {
	store := openBenchStore(b, 10)
	a := newAuthenticator(store.Catalog, "", slog.New(slog.DiscardHandler))
	defer a.close()
	secret, _ := addBenchKey(b, store.Catalog, "", runmerge.RoleAdmin)
	ctx := context.Background()
	if _, err := a.principal(ctx, secret); err != nil {
		b.Fatal(err)
	}
	const batch = 64
	var samples []float64
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		for range batch {
			if _, err := a.principal(ctx, secret); err != nil {
				b.Fatal(err)
			}
		}
		samples = append(samples, float64(time.Since(start).Nanoseconds())/batch)
	}
	b.ReportMetric(percentile(samples, 0.50), "p50-ns/auth")
	b.ReportMetric(percentile(samples, 0.99), "p99-ns/auth")
}

// BenchmarkListAcrossTenants measures a platform key's list without
// tenantId over 1,000 tenants of which 10 have people: GET /v1/people,
// served in process. It reports the median and 99th percentile.
func BenchmarkListAcrossTenants(b *testing.B) {
	store := openBenchStore(b, 1000)
	root := "root-" + strings.Repeat("k", 40)
	s := New(Config{MaxBodyBytes: 1 << 20, RootKey: root}, store, slog.New(slog.DiscardHandler))
	defer s.Close()
	ctx := context.Background()
	const tenants, withPeople, perTenant = 1000, 10, 20
	for i := range tenants {
		id := fmt.Sprintf("t%04d", i)
		if _, err := store.CreateTenant(ctx, id, id); err != nil {
			b.Fatal(err)
		}
		if i%(tenants/withPeople) != 0 {
			continue
		}
		for j := range perTenant {
			body := fmt.Sprintf(`{"firstName":"Ada","lastName":"L%d","email":"ada%d@example.com"}`, j, j)
			w := benchRequest(s, root, http.MethodPost, "/v1/people?tenantId="+id, body)
			if w.Code != http.StatusCreated {
				b.Fatalf("create person: %d %s", w.Code, w.Body)
			}
		}
	}
	check := benchRequest(s, root, http.MethodGet, "/v1/people?limit=500", "")
	n := strings.Count(check.Body.String(), `"firstName"`)
	if check.Code != http.StatusOK || n != withPeople*perTenant {
		b.Fatalf("list across tenants: %d, %d people: %.200s", check.Code, n, check.Body)
	}
	var samples []float64
	for b.Loop() {
		start := time.Now()
		if w := benchRequest(s, root, http.MethodGet, "/v1/people?limit=500", ""); w.Code != http.StatusOK {
			b.Fatalf("list: %d", w.Code)
		}
		samples = append(samples, float64(time.Since(start).Microseconds())/1000)
	}
	b.ReportMetric(percentile(samples, 0.50), "p50-ms/list")
	b.ReportMetric(percentile(samples, 0.99), "p99-ms/list")
}

func benchRequest(s *Server, key, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Api-Key", key)
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return w
}

// percentile returns the p-th quantile of samples, sorting them.
func percentile(samples []float64, p float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	sort.Float64s(samples)
	return samples[int(p*float64(len(samples)-1))]
}
