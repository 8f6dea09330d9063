// Package reliability holds tests of the whole server under faults, races
// and hostile input: concurrent writers, an HTTP fuzzer, slow clients, crashes,
// shutdown under load and a failing disk. See docs/reliability.md.
package reliability

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/runmerge/runmerge/internal/testserver"
)

const eventBody = `{"name":"Launch","startDate":"2026-05-01T09:00:00Z","endDate":"2026-05-01T17:00:00Z"}`

// TestConcurrentPatchSameIfMatch sends 100 PATCHes at once, all with the
// ETag of version 1: exactly one may win, every other must get 412, and the
// record must end at version 2.
func TestConcurrentPatchSameIfMatch(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	// A connection the client dialled for the race but never used stays
	// new to the server, and Go's Shutdown waits 5s before it counts a
	// new connection as idle: close them before the server shuts down.
	t.Cleanup(srv.Client.HTTP.CloseIdleConnections)
	srv.CreateTenant(t, "acme")
	r := srv.Post(t, "/v1/events?tenantId=acme", eventBody)
	r.WantStatus(t, http.StatusCreated)
	var rec struct {
		ID      string `json:"id"`
		Version int64  `json:"version"`
	}
	json.Unmarshal(r.Body, &rec)
	etag := r.Header.Get("ETag")
	if etag != `"1"` {
		t.Fatalf("ETag %q, want \"1\"", etag)
	}

	const n = 100
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			resp := srv.Do(t, testserver.Request{
				Method: http.MethodPatch,
				Path:   "/v1/events/" + rec.ID + "?tenantId=acme",
				Body:   fmt.Sprintf(`{"description":"writer %d"}`, i),
				Header: map[string]string{"If-Match": etag},
			})
			statuses[i] = resp.Status
			if resp.Status != http.StatusOK {
				resp.Problem(t, http.StatusPreconditionFailed, problemCode(resp))
			}
		})
	}
	close(start)
	wg.Wait()

	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[http.StatusOK] != 1 || count[http.StatusPreconditionFailed] != n-1 {
		t.Fatalf("statuses %v, want exactly one 200 and %d 412", count, n-1)
	}
	got := srv.Get(t, "/v1/events/"+rec.ID+"?tenantId=acme")
	got.WantStatus(t, http.StatusOK)
	if e := got.Header.Get("ETag"); e != `"2"` {
		t.Fatalf("after the race the ETag is %s, want \"2\"", e)
	}
}

// TestConcurrentIdempotentPost sends 50 POSTs at once with one
// Idempotency-Key and body: exactly one record may exist afterwards, and
// every answer is the 201 (first or replayed, with the same id) or 409.
func TestConcurrentIdempotentPost(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	// A connection the client dialled for the race but never used stays
	// new to the server, and Go's Shutdown waits 5s before it counts a
	// new connection as idle: close them before the server shuts down.
	t.Cleanup(srv.Client.HTTP.CloseIdleConnections)
	srv.CreateTenant(t, "acme")

	const n = 50
	type answer struct {
		status int
		id     string
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			resp := srv.Do(t, testserver.Request{
				Method: http.MethodPost,
				Path:   "/v1/events?tenantId=acme",
				Body:   eventBody,
				Header: map[string]string{"Idempotency-Key": "launch-1"},
			})
			answers[i].status = resp.Status
			switch resp.Status {
			case http.StatusCreated:
				var rec struct {
					ID string `json:"id"`
				}
				json.Unmarshal(resp.Body, &rec)
				answers[i].id = rec.ID
			case http.StatusConflict:
				resp.Problem(t, http.StatusConflict, problemCode(resp))
			default:
				t.Errorf("status %d, want 201 or 409: %s", resp.Status, resp.Body)
			}
		})
	}
	close(start)
	wg.Wait()

	ids := map[string]bool{}
	created := 0
	for _, a := range answers {
		if a.status == http.StatusCreated {
			created++
			ids[a.id] = true
		}
	}
	if created == 0 || len(ids) != 1 {
		t.Fatalf("%d answers of 201 naming %d distinct records, want at least one naming one", created, len(ids))
	}
	list := srv.Get(t, "/v1/events?tenantId=acme&limit=500")
	list.WantStatus(t, http.StatusOK)
	var page struct {
		Data []json.RawMessage `json:"data"`
	}
	json.Unmarshal(list.Body, &page)
	if len(page.Data) != 1 {
		t.Fatalf("%d events stored, want 1", len(page.Data))
	}
}

// problemCode returns the code of a problem body, so that a check of its
// shape does not depend on which code the server chose.
func problemCode(r *testserver.Response) string {
	var p struct {
		Code string `json:"code"`
	}
	json.Unmarshal(r.Body, &p)
	return p.Code
}
