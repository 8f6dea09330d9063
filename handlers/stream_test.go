package handlers_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runmerge/runmerge"
)

// TestStreamResume disconnects a stream client, makes changes, and
// reconnects with Last-Event-ID: it gets exactly the changes it missed, in
// order, first from memory and then, after a restart, from the change log.
func TestStreamResume(t *testing.T) {
	a := startChangeAPI(t, "", changeOptions{})
	a.tenant("acme")
	_, admin := a.key("acme", runmerge.RoleAdmin)

	// The tenant's own tenant.created may reach the stream after it opens:
	// the change is collected from the catalog a moment after it commits.
	// This test is about record changes, so it asks for those alone.
	const people = "?eventTypes=person.created,person.updated,person.deleted,event.created"
	s := a.openStream(people, admin, "")
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, a.createRecord("acme", "people", personJSON(i)))
	}
	var last sseEvent
	for i := 0; i < 3; i++ {
		last = s.next(t, 5*time.Second)
		c := decodeChange(t, last.Data)
		if last.Event != "person.created" || c.EventType != "person.created" || c.TenantID != "acme" ||
			!strings.Contains(string(c.Data), ids[i]) {
			t.Fatalf("event %d: %+v", i, last)
		}
	}
	s.close()

	missed := func(n int) []string {
		var want []string
		for i := 0; i < n; i++ {
			switch i % 3 {
			case 0:
				ids = append(ids, a.createRecord("acme", "people", personJSON(100+len(ids))))
				want = append(want, "person.created "+ids[len(ids)-1])
			case 1:
				id := ids[len(ids)-1]
				a.must(200, "PATCH", "/v1/people/"+id+"?tenantId=acme", a.RootKey, `{"jobTitle":"CTO"}`)
				want = append(want, "person.updated "+id)
			case 2:
				id := ids[len(ids)-1]
				a.must(204, "DELETE", "/v1/people/"+id+"?tenantId=acme", a.RootKey, "")
				want = append(want, "person.deleted "+id)
			}
		}
		return want
	}
	check := func(s *sseClient, want []string) sseEvent {
		t.Helper()
		var ev sseEvent
		for i, w := range want {
			ev = s.next(t, 5*time.Second)
			c := decodeChange(t, ev.Data)
			typ, id, _ := strings.Cut(w, " ")
			if c.EventType != typ || ev.Event != typ || !strings.Contains(string(c.Data), id) {
				t.Fatalf("missed change %d: got %s %s, want %s", i, ev.Event, c.Data, w)
			}
		}
		s.quiet(t, 300*time.Millisecond)
		return ev
	}

	// From memory.
	want := missed(5)
	s = a.openStream(people, admin, last.ID)
	last = check(s, want)
	s.close()

	// From the change log, after a restart empties memory.
	want = missed(4)
	a.restart()
	s = a.openStream(people, admin, last.ID)
	last = check(s, want)

	// And the stream goes on live after the catch-up.
	id := a.createRecord("acme", "events", eventJSON(1))
	ev := s.next(t, 5*time.Second)
	if ev.Event != "event.created" || !strings.Contains(ev.Data, id) || atoi(ev.ID) <= atoi(last.ID) {
		t.Errorf("live event after resume: %+v", ev)
	}
}

// TestStreamParameters checks the stream's filters and its refusals.
func TestStreamParameters(t *testing.T) {
	a := startChangeAPI(t, "", changeOptions{})
	a.tenant("acme")
	a.tenant("globex")
	_, acme := a.key("acme", runmerge.RoleAdmin)

	for _, tc := range []struct {
		query, key, lastID string
		status             int
	}{
		{"?tenantId=globex", acme, "", 404},
		{"?tenantId=nope", a.RootKey, "", 404},
		{"?eventTypes=person.exploded", acme, "", 400},
		{"?eventType=person.created", acme, "", 400},
		{"", acme, "yesterday", 400},
		{"", acme, "-5", 400},
	} {
		if _, status, body := a.tryStream(tc.query, tc.key, tc.lastID); status != tc.status {
			t.Errorf("stream%s (Last-Event-ID %q): %d %s, want %d", tc.query, tc.lastID, status, body, tc.status)
		}
	}
	a.must(200, "PATCH", "/v1/tenants/globex", a.RootKey, `{"status":"suspended"}`)
	if _, status, _ := a.tryStream("?tenantId=globex", a.RootKey, ""); status != 403 {
		t.Errorf("stream of a suspended tenant: %d, want 403", status)
	}

	people := a.openStream("?eventTypes=person.created,person.deleted", acme, "")
	platform := a.openStream("?tenantId=acme&eventTypes=event.created", a.RootKey, "")
	everything := a.openStream("", a.RootKey, "")
	pid := a.createRecord("acme", "people", personJSON(1))
	a.must(200, "PATCH", "/v1/people/"+pid+"?tenantId=acme", a.RootKey, `{"jobTitle":"CTO"}`)
	eid := a.createRecord("acme", "events", eventJSON(1))
	a.must(200, "PATCH", "/v1/tenants/acme", a.RootKey, `{"name":"Acme Events"}`)

	if ev := people.next(t, 5*time.Second); ev.Event != "person.created" || !strings.Contains(ev.Data, pid) {
		t.Errorf("filtered stream: %+v", ev)
	}
	people.quiet(t, 200*time.Millisecond)
	if ev := platform.next(t, 5*time.Second); ev.Event != "event.created" || !strings.Contains(ev.Data, eid) {
		t.Errorf("platform stream of acme: %+v", ev)
	}
	platform.quiet(t, 100*time.Millisecond)
	// A tenant's records keep their order; tenant.* events come from the
	// catalog and may interleave differently.
	var types []string
	for i := 0; i < 4; i++ {
		types = append(types, everything.next(t, 5*time.Second).Event)
	}
	if i := slices.Index(types, "tenant.updated"); i >= 0 {
		types = slices.Delete(types, i, i+1)
	}
	if strings.Join(types, " ") != "person.created person.updated event.created" {
		t.Errorf("platform stream of everything: %v", types)
	}
}

// TestStreamKeepAliveAndLimits checks the keep-alive comments, the cap on
// streams per key, and that a stream ends when its key is revoked.
func TestStreamKeepAliveAndLimits(t *testing.T) {
	a := startChangeAPI(t, "", changeOptions{maxPerKey: 2, keepAlive: 50 * time.Millisecond})
	a.tenant("acme")
	keyID, key := a.key("acme", runmerge.RoleReadOnly)

	first := a.openStream("", key, "")
	second := a.openStream("", key, "")
	if _, status, body := a.tryStream("", key, ""); status != 429 || !strings.Contains(body, "rate_limited") {
		t.Errorf("third stream of one key: %d %s", status, body)
	}
	time.Sleep(300 * time.Millisecond)
	first.mu.Lock()
	comments := first.comments
	first.mu.Unlock()
	if comments < 3 {
		t.Errorf("%d comments in 300ms with a 50ms keep-alive", comments)
	}

	second.close()
	waitUntil(t, 5*time.Second, "room for another stream", func() bool {
		s, status, _ := a.tryStream("", key, "")
		if status == 200 {
			s.close()
		}
		return status == 200
	})

	if err := a.Store.Catalog.RevokeKey(context.Background(), keyID); err != nil {
		t.Fatal(err)
	}
	if !first.ended(5 * time.Second) {
		t.Error("the stream of a revoked key is still open")
	}
}

// TestStreamEndsOnShutdown checks that shutting down ends open streams at
// once rather than waiting for them through the grace period.
func TestStreamEndsOnShutdown(t *testing.T) {
	a := startChangeAPI(t, "", changeOptions{})
	a.tenant("acme")
	s := a.openStream("", a.RootKey, "")
	start := time.Now()
	a.stop()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %s with a stream open", took)
	}
	if !s.ended(time.Second) {
		t.Error("the stream is still open after shutdown")
	}
}
