package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/webhook"
)

// leakChange is one change the leakage test made, as the test itself
// knows it: which record, which version (0 for a delete), and the events
// the record links to after the change (before it, for a delete).
type leakChange struct {
	tenant, collection, record string
	version                    int
	events                     []string
}

// key identifies a change by what a delivery or stream message shows.
func (c leakChange) key() string {
	return fmt.Sprintf("%s/%s/%d", c.tenant, c.record, c.version)
}

// changeKey identifies the change a delivered change event carries.
func changeKey(t testing.TB, ev changeEvent) string {
	var rec struct {
		ID      string `json:"id"`
		Version int    `json:"version"`
		Deleted bool   `json:"deleted"`
	}
	if err := json.Unmarshal(ev.Data, &rec); err != nil {
		t.Fatalf("change data %s: %v", ev.Data, err)
	}
	return fmt.Sprintf("%s/%s/%d", ev.TenantID, rec.ID, rec.Version)
}

// leakReader is a key that reads changes: its tenant and, for an event
// manager, its events.
type leakReader struct {
	name    string
	tenant  string
	role    string
	events  []string
	keyID   string
	secret  string
	recv    *hookReceiver
	stream  *sseClient
	mu      sync.Mutex
	streamd []string
}

// sees decides, by the rules of API.md rather than by the server's code,
// whether r may read change c.
func (r *leakReader) sees(c leakChange) bool {
	if c.tenant != r.tenant {
		return false
	}
	if r.role != runmerge.RoleEventManager {
		return true
	}
	if c.collection == "events" {
		return slices.Contains(r.events, c.record)
	}
	for _, e := range c.events {
		if slices.Contains(r.events, e) {
			return true
		}
	}
	return false
}

// TestChangeLeakage makes 1,000 mixed changes in three tenants, moving
// records into and out of event managers' reach, and checks that the
// subscriptions and streams of event-manager and read-only keys carry
// exactly the changes those keys may read: nothing outside their reach,
// and nothing within it missing.
func TestChangeLeakage(t *testing.T) {
	if testing.Short() {
		t.Skip("long: 1,000 changes")
	}
	a := startChangeAPI(t, "", changeOptions{maxPerKey: 10})
	ctx := context.Background()
	tenants := []string{"t0", "t1", "t2"}
	events := make(map[string][]string)
	for _, tenant := range tenants {
		a.tenant(tenant)
		for i := 0; i < 4; i++ {
			events[tenant] = append(events[tenant], a.createRecord(tenant, "events", eventJSON(i)))
		}
	}

	readers := []*leakReader{
		{name: "t0 event manager", tenant: "t0", role: runmerge.RoleEventManager, events: events["t0"][:2]},
		{name: "t0 read-only", tenant: "t0", role: runmerge.RoleReadOnly},
		{name: "t1 event manager", tenant: "t1", role: runmerge.RoleEventManager, events: events["t1"][2:3]},
		{name: "t2 read-only", tenant: "t2", role: runmerge.RoleReadOnly},
		{name: "t0 admin", tenant: "t0", role: runmerge.RoleAdmin},
	}
	for _, r := range readers {
		r.keyID, r.secret = a.key(r.tenant, r.role, r.events...)
		r.recv = newHookReceiver(t)
		// The policy lets only admins make webhooks over the API; the
		// dispatcher holds every subscription to its owner's reach
		// whoever made it, so make them directly.
		owner := &runmerge.Principal{KeyID: r.keyID, TenantID: r.tenant, Role: r.role, EventIDs: r.events}
		_, secret, err := a.D.CreateWebhook(ctx, owner, webhook.WebhookInput{TenantID: r.tenant,
			URL: r.recv.URL(), EventTypes: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		r.recv.addSecret(secret)
		r.stream = a.openStream("", r.secret, "")
		go func(r *leakReader) {
			for ev := range r.stream.events {
				c := decodeChange(t, ev.Data)
				r.mu.Lock()
				r.streamd = append(r.streamd, changeKey(t, c))
				r.mu.Unlock()
			}
		}(r)
	}

	// The changes: people, sessions and tickets created linked to some of
	// the tenant's events, relinked, renamed and deleted; events renamed.
	rng := rand.New(rand.NewPCG(5, 5))
	type record struct {
		collection, id string
		version        int
		events         []string
	}
	live := make(map[string][]*record)
	var made []leakChange
	pickEvents := func(tenant string) []string {
		var out []string
		for _, e := range events[tenant] {
			if rng.IntN(3) == 0 {
				out = append(out, e)
			}
		}
		return out
	}
	linkJSON := func(ids []string) string {
		b, _ := json.Marshal(ids)
		return string(b)
	}
	for n := 0; n < 1000; n++ {
		tenant := tenants[max(0, rng.IntN(5)-2)] // t0 most
		recs := live[tenant]
		switch op := rng.IntN(20); {
		case op < 8 || len(recs) == 0:
			links := pickEvents(tenant)
			var coll, body string
			switch rng.IntN(3) {
			case 0:
				coll = "people"
				body = fmt.Sprintf(`{"firstName":"A","lastName":"B%d","email":"p%d@example.com",`+
					`"relationships":{"linkedEventIds":%s}}`, n, n, linkJSON(links))
			case 1:
				if len(links) == 0 {
					links = events[tenant][:1]
				}
				links = links[:1]
				coll = "sessions"
				body = fmt.Sprintf(`{"name":"S%d","startDate":"2026-05-01T09:00:00Z",`+
					`"endDate":"2026-05-01T10:00:00Z","eventId":%q}`, n, links[0])
			default:
				coll = "tickets"
				body = fmt.Sprintf(`{"ticketType":"GA","price":10,"currency":"EUR","status":"valid",`+
					`"relationships":{"linkedEventIds":%s}}`, linkJSON(links))
			}
			id := a.createRecord(tenant, coll, body)
			r := &record{collection: coll, id: id, version: 1, events: links}
			live[tenant] = append(recs, r)
			made = append(made, leakChange{tenant, coll, id, 1, links})
		case op < 13:
			r := recs[rng.IntN(len(recs))]
			body := `{"status":"used"}`
			switch r.collection {
			case "people":
				r.events = pickEvents(tenant)
				body = `{"relationships":{"linkedEventIds":` + linkJSON(r.events) + `}}`
			case "sessions":
				r.events = []string{events[tenant][rng.IntN(4)]}
				body = `{"eventId":"` + r.events[0] + `"}`
			}
			a.must(200, "PATCH", "/v1/"+r.collection+"/"+r.id+"?tenantId="+tenant, a.RootKey, body)
			r.version++
			made = append(made, leakChange{tenant, r.collection, r.id, r.version, r.events})
		case op < 16:
			i := rng.IntN(len(recs))
			r := recs[i]
			a.must(204, "DELETE", "/v1/"+r.collection+"/"+r.id+"?tenantId="+tenant, a.RootKey, "")
			live[tenant] = slices.Delete(recs, i, i+1)
			made = append(made, leakChange{tenant, r.collection, r.id, 0, r.events})
		default:
			e := events[tenant][rng.IntN(4)]
			b := a.must(200, "PATCH", "/v1/events/"+e+"?tenantId="+tenant, a.RootKey,
				fmt.Sprintf(`{"description":"change %d"}`, n))
			var rec struct{ Version int }
			json.Unmarshal(b, &rec)
			made = append(made, leakChange{tenant, "events", e, rec.Version, []string{e}})
		}
	}

	// Wait for the admin of t0 and the read-only keys to hear all of their
	// tenants' changes; the others have then had their chance too.
	expected := func(r *leakReader) map[string]bool {
		m := make(map[string]bool)
		for _, c := range made {
			if r.sees(c) {
				m[c.key()] = true
			}
		}
		return m
	}
	for _, r := range readers {
		want := expected(r)
		waitUntil(t, 30*time.Second, r.name+"'s changes", func() bool {
			r.mu.Lock()
			n := len(r.streamd)
			r.mu.Unlock()
			return len(r.recv.deliveries()) >= len(want) && n >= len(want)
		})
	}
	time.Sleep(300 * time.Millisecond) // anything extra would show now

	for _, r := range readers {
		want := expected(r)
		var hooked []string
		for _, d := range r.recv.deliveries() {
			hooked = append(hooked, changeKey(t, d.Event))
		}
		r.mu.Lock()
		streamed := append([]string(nil), r.streamd...)
		r.mu.Unlock()
		for via, got := range map[string][]string{"webhook": hooked, "stream": streamed} {
			seen := make(map[string]bool)
			for _, k := range got {
				if !want[k] {
					t.Errorf("%s's %s carried %s, outside its reach", r.name, via, k)
				}
				seen[k] = true
			}
			for k := range want {
				if !seen[k] {
					t.Errorf("%s's %s missed %s", r.name, via, k)
				}
			}
		}
		r.recv.check()
		t.Logf("%s: %d of %d changes in reach; webhook %d, stream %d", r.name, len(want), len(made),
			len(hooked), len(streamed))
	}
	if !strings.HasPrefix(readers[0].name, "t0 event") || len(expected(readers[0])) == 0 {
		t.Fatal("the event manager reaches nothing: the test proves little")
	}
}
