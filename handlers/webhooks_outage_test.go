package handlers_test

import (
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// committedChanges reads tenant files through connections of their own,
// apart from the server's, so that what they see is what has committed.
type committedChanges struct {
	dir string
	mu  sync.Mutex
	dbs map[string]*sql.DB
}

func (c *committedChanges) db(t testing.TB, tenant string) *sql.DB {
	c.mu.Lock()
	defer c.mu.Unlock()
	if db := c.dbs[tenant]; db != nil {
		return db
	}
	path := filepath.Join(c.dir, "tenants", tenant+".db")
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(2)
	c.dbs[tenant] = db
	return db
}

// has reports whether change id has committed in tenant's file.
func (c *committedChanges) has(t testing.TB, tenant, id string) bool {
	var n int
	err := c.db(t, tenant).QueryRow(`SELECT count(*) FROM changes WHERE id = ?`, id).Scan(&n)
	return err == nil && n == 1
}

// all returns every change id committed in tenant's file.
func (c *committedChanges) all(t testing.TB, tenant string) []string {
	rows, err := c.db(t, tenant).Query(`SELECT id FROM changes ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		rows.Scan(&id)
		ids = append(ids, id)
	}
	return ids
}

func (c *committedChanges) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, db := range c.dbs {
		db.Close()
	}
}

// TestWebhookOutageAndRestart makes 1,000 changes across 5 tenants while
// the receiver first fails with 500s, then times out, then recovers, and
// restarts the server in the middle. Every change must arrive at least
// once, always under the same webhook-id, and none may arrive before it
// committed (a reader of the tenant file, apart from the server, must
// already see it when the delivery arrives).
func TestWebhookOutageAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("long: 1,000 changes through an outage")
	}
	retry := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}
	for i := 0; i < 60; i++ {
		retry = append(retry, 500*time.Millisecond)
	}
	a := startChangeAPI(t, "", changeOptions{retry: retry, timeout: 300 * time.Millisecond})
	committed := &committedChanges{dir: a.dir, dbs: make(map[string]*sql.DB)}
	defer committed.close()

	const (
		outage500 = iota
		outageTimeout
		recovered
	)
	var phase atomic.Int32
	var early []string
	var earlyMu sync.Mutex
	var restarting sync.RWMutex
	recv := newHookReceiver(t)
	var attempts atomic.Int64
	recv.setRespond(func(r received) int {
		attempts.Add(1)
		if !strings.HasPrefix(r.Event.EventType, "tenant.") {
			restarting.RLock()
			ok := committed.has(t, r.Event.TenantID, r.Event.ID)
			restarting.RUnlock()
			if !ok {
				earlyMu.Lock()
				early = append(early, r.Event.ID)
				earlyMu.Unlock()
			}
		}
		switch phase.Load() {
		case outage500:
			return http.StatusInternalServerError
		case outageTimeout:
			// Longer than the dispatcher waits; the receiver still takes
			// the delivery, as a slow real one would: a duplicate later.
			time.Sleep(400 * time.Millisecond)
		}
		return http.StatusNoContent
	})
	w := a.webhook(a.RootKey, `{"url":"`+recv.URL()+`","eventTypes":["*"]}`)
	recv.addSecret(w.Secret)

	tenants := []string{"t0", "t1", "t2", "t3", "t4"}
	for _, id := range tenants {
		a.tenant(id)
	}

	// Each writer makes its tenant's changes: creates, updates and
	// deletes of people, one change per request.
	const perTenant = 200
	write := func(from, to int) {
		var wg sync.WaitGroup
		for _, tenant := range tenants {
			wg.Add(1)
			go func(tenant string) {
				defer wg.Done()
				var live []string
				for i := from; i < to; i++ {
					switch {
					case i%4 == 3 && len(live) > 0:
						id := live[0]
						live = live[1:]
						a.must(204, "DELETE", "/v1/people/"+id+"?tenantId="+tenant, a.RootKey, "")
					case i%4 == 1 && len(live) > 0:
						a.must(200, "PATCH", "/v1/people/"+live[len(live)-1]+"?tenantId="+tenant, a.RootKey,
							fmt.Sprintf(`{"jobTitle":"Title %d"}`, i))
					default:
						live = append(live, a.createRecord(tenant, "people", personJSON(i)))
					}
				}
			}(tenant)
		}
		wg.Wait()
	}

	start := time.Now()
	write(0, perTenant/2)
	phase.Store(outageTimeout)
	time.Sleep(time.Second)

	restarting.Lock()
	a.restart()
	restarting.Unlock()

	write(perTenant/2, perTenant)
	time.Sleep(500 * time.Millisecond)
	phase.Store(recovered)
	recoveredAt := time.Now()

	want := make(map[string]bool)
	for _, tenant := range tenants {
		for _, id := range committed.all(t, tenant) {
			want[id] = true
		}
	}
	if len(want) != len(tenants)*perTenant {
		t.Fatalf("%d changes committed, want %d", len(want), len(tenants)*perTenant)
	}
	delivered := func() int {
		seen := make(map[string]bool)
		for _, r := range recv.deliveries() {
			if want[r.Event.ID] {
				seen[r.Event.ID] = true
			}
		}
		return len(seen)
	}
	waitUntil(t, 60*time.Second, "every change delivered", func() bool { return delivered() == len(want) })
	drained := time.Since(recoveredAt)
	recv.check()

	webhookIDs := make(map[string]map[string]bool)
	accepted := 0
	for _, r := range recv.deliveries() {
		if !want[r.Event.ID] {
			continue
		}
		accepted++
		if webhookIDs[r.Event.ID] == nil {
			webhookIDs[r.Event.ID] = make(map[string]bool)
		}
		webhookIDs[r.Event.ID][r.WebhookID] = true
	}
	for id, ids := range webhookIDs {
		if len(ids) != 1 {
			t.Errorf("change %s arrived under %d webhook-ids", id, len(ids))
		}
	}
	earlyMu.Lock()
	for _, id := range early {
		t.Errorf("change %s arrived before it committed", id)
	}
	earlyMu.Unlock()
	t.Logf("%d changes committed, %d delivered, %d accepted deliveries (%d duplicates), "+
		"%d requests to the receiver in all; all delivered %s after recovery, %s after the first write",
		len(want), delivered(), accepted, accepted-len(want), attempts.Load(),
		drained.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
