package handlers_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runmerge/runmerge/handlers"
)

// The benchmarks of this file run client and server in one process on the
// same cores, over real HTTP with keep-alive, as the figures in
// docs/benchmarks.md were measured:
//
//	go test ./handlers -run '^$' -bench . -benchtime 5s
//
// Each reports req/s (or rows/s) besides ns/op; ns/op is the wall time per
// request divided by the clients running at once.

// benchClients is how many client goroutines run per CPU.
const benchClients = 16

// benchClient returns a keep-alive client for as many connections as the
// benchmark's goroutines.
func benchClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 1024,
	}}
}

// runRequests runs newReq b.N times over the benchmark's goroutines, failing
// on any status but want, and reports requests per second.
func runRequests(b *testing.B, client *http.Client, want int, newReq func(i int64) *http.Request) {
	b.Helper()
	var n atomic.Int64
	b.SetParallelism(benchClients)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Do(newReq(n.Add(1)))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				b.Errorf("status %d, want %d", resp.StatusCode, want)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

func quietAPI(b *testing.B) *recAPI {
	b.Helper()
	return startRecAPI(b, recOptions{noOpenAPICheck: true, logger: slog.New(slog.DiscardHandler)})
}

// BenchmarkCeiling is a trivial Echo handler answering a small JSON object:
// what this machine's HTTP stack serves at most, the yardstick of the
// others.
func BenchmarkCeiling(b *testing.B) {
	ts := httptest.NewServer(handlers.Ceiling())
	defer ts.Close()
	client := benchClient()
	runRequests(b, client, 200, func(int64) *http.Request {
		req, _ := http.NewRequest("GET", ts.URL+"/ceiling", nil)
		return req
	})
}

// BenchmarkGetRecord reads one record by id, of 1,000 people in a warm
// tenant, with the root key.
func BenchmarkGetRecord(b *testing.B) {
	a := quietAPI(b)
	a.tenant(b, "acme")
	ids := benchPeople(b, a, "acme", 1000)
	client := benchClient()
	runRequests(b, client, 200, func(i int64) *http.Request {
		req, _ := http.NewRequest("GET", a.URL+"/v1/people/"+ids[i%int64(len(ids))]+"?tenantId=acme", nil)
		req.Header.Set("X-Api-Key", a.Key)
		return req
	})
}

// BenchmarkCreateRecord creates one person per request, from many clients
// at once, in one tenant: every write goes through the tenant's single
// writer, and concurrent writes share a commit.
func BenchmarkCreateRecord(b *testing.B) {
	a := quietAPI(b)
	a.tenant(b, "acme")
	client := benchClient()
	runRequests(b, client, 201, func(i int64) *http.Request {
		body := fmt.Sprintf(`{"firstName":"Ada","lastName":"Lovelace","email":"ada%d@example.com",`+
			`"type":"Attendee","status":"Active","sourceId":"bench","remoteId":"%d"}`, i, i)
		req, _ := http.NewRequest("POST", a.URL+"/v1/people?tenantId=acme", strings.NewReader(body))
		req.Header.Set("X-Api-Key", a.Key)
		req.Header.Set("Content-Type", "application/json")
		return req
	})
}

// BenchmarkBulkUpsertHTTP posts bulks of 1,000 new people, one request at a
// time, and reports rows per second.
func BenchmarkBulkUpsertHTTP(b *testing.B) {
	a := quietAPI(b)
	a.tenant(b, "acme")
	client := benchClient()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		var sb strings.Builder
		sb.WriteString(`{"records":[`)
		for j := range 1000 {
			if j > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"firstName":"Ada","lastName":"L","email":"a%d.%d@example.com",`+
				`"type":"Attendee","sourceId":"bench","remoteId":"%d.%d"}`, i, j, i, j)
		}
		sb.WriteString(`]}`)
		req, _ := http.NewRequest("POST", a.URL+"/v1/people/bulk?tenantId=acme", strings.NewReader(sb.String()))
		req.Header.Set("X-Api-Key", a.Key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.ReportMetric(float64(b.N*1000)/time.Since(start).Seconds(), "rows/s")
}

// benchPeople creates n people in tenant by bulk and returns their ids.
func benchPeople(b *testing.B, a *recAPI, tenant string, n int) []string {
	b.Helper()
	var ids []string
	for start := 0; start < n; start += 1000 {
		var recs []any
		for i := start; i < min(n, start+1000); i++ {
			recs = append(recs, validBody("people", i))
		}
		var pg recPage
		a.post(b, "/v1/people/bulk?tenantId="+tenant, mustJSON(b, jsonObj{"records": recs})).decode(b, 200, &pg)
		ids = append(ids, idsOf(pg.Data)...)
	}
	return ids
}

func idsOf(list []jsonObj) []string { return ids(list) }
