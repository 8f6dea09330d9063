package webhook

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// idleConfig is testConfig with a dispatcher that stops following soon
// after its last subscriber goes.
func idleConfig(dir string) Config {
	cfg := testConfig(dir)
	cfg.IdleAfter = 50 * time.Millisecond
	return cfg
}

// createPerson writes one person to tenant id, marked first as a request
// would.
func createPerson(t *testing.T, d *Dispatcher, store *tenantstore.Store, id string, n int) *runmerge.Record {
	t.Helper()
	var rec *runmerge.Record
	write(t, d, store, id, func(db *tenantstore.DB) error {
		var err error
		rec, err = db.CreateRecord(context.Background(), platformAdmin,
			collection(t, runmerge.CollectionPeople), personBody(n), nil, nil)
		return err
	})
	return rec
}

// waitIdle waits for d to stop following the tenant files.
func waitIdle(t *testing.T, d *Dispatcher) {
	t.Helper()
	waitFor(t, 5*time.Second, "the dispatcher to stop following", func() bool {
		return !d.following.Load()
	})
}

// eventsAfter returns the change events after pos that EventsAfter finds
// within a second, waiting for at least want of them.
func eventsAfter(t *testing.T, d *Dispatcher, pos int64, want int) []*Event {
	t.Helper()
	var got []*Event
	waitFor(t, 5*time.Second, "the change events", func() bool {
		list, _, err := d.EventsAfter(context.Background(), pos, "", func(*Event) bool { return true }, 100)
		if err != nil {
			t.Fatal(err)
		}
		got = list
		return len(got) >= want
	})
	return got
}

// TestIdleTakesNothing checks that with no webhook and no stream the
// dispatcher takes no change into the change log, that a webhook made
// then hears only what is written after it, and that the dispatcher stops
// following once the webhook is gone.
func TestIdleTakesNothing(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	d := startDispatcher(t, store, idleConfig(dir))
	ctx := context.Background()
	mustCreateTenant(t, store, "acme")
	d.NotifyTenants()
	for i := 0; i < 3; i++ {
		createPerson(t, d, store, "acme", i)
	}
	time.Sleep(100 * time.Millisecond)
	if st := d.Stats(); st.Logged != 0 || st.TenantReads != 0 || d.following.Load() {
		t.Fatalf("idle dispatcher logged %d changes and read %d tenants", st.Logged, st.TenantReads)
	}

	// The webhook is made once the changes so far are in the change log:
	// it hears none of them.
	recv := newReceiver(t)
	w, secret, err := d.CreateWebhook(ctx, platformAdmin, WebhookInput{TenantID: "acme", URL: recv.URL(),
		EventTypes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	recv.addSecret(secret)
	if n := d.Stats().Logged; n != 4 {
		t.Fatalf("after the catch-up %d changes logged, want 4 (tenant.created and 3 people)", n)
	}
	after := createPerson(t, d, store, "acme", 10)
	waitFor(t, 5*time.Second, "the delivery", func() bool { return len(recv.deliveries()) == 1 })
	time.Sleep(100 * time.Millisecond)
	if got := recv.deliveries(); len(got) != 1 || got[0].Event.EventType != "person.created" ||
		!containsID(got[0].Event.Data, after.ID) {
		t.Fatalf("deliveries %+v, want only the person made after the webhook", got)
	}
	recv.check()

	if err := d.DeleteWebhook(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, d)
	logged := d.Stats().Logged
	createPerson(t, d, store, "acme", 11)
	time.Sleep(100 * time.Millisecond)
	if n := d.Stats().Logged; n != logged {
		t.Errorf("idle again: %d changes logged, want %d", n, logged)
	}
}

// TestIdleStreamResumes checks that a stream resuming from a position
// gets what was written while nobody listened, after a restart too, and
// that a stream from the present starts after it.
func TestIdleStreamResumes(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	ctx := context.Background()
	mustCreateTenant(t, store, "acme")
	d := startDispatcher(t, store, idleConfig(dir))

	detach, err := d.Attach(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	pos := d.Position()
	detach()
	waitIdle(t, d)
	first := createPerson(t, d, store, "acme", 1)

	// A stream resuming from pos gets the change written while idle.
	detach, err = d.Attach(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := eventsAfter(t, d, pos, 1); len(got) != 1 || got[0].ID == "" || !containsID(got[0].Body, first.ID) {
		t.Fatalf("resumed stream got %d events, want the person written while idle", len(got))
	}
	detach()
	waitIdle(t, d)

	// After a restart too: the mark leads the new dispatcher to it.
	second := createPerson(t, d, store, "acme", 2)
	d.Stop(ctx)
	d = startDispatcher(t, store, idleConfig(dir))
	detach, err = d.Attach(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	got := eventsAfter(t, d, pos, 2)
	if len(got) != 2 || !containsID(got[1].Body, second.ID) {
		t.Fatalf("resumed stream after a restart got %d events, want both people", len(got))
	}
	detach()
	waitIdle(t, d)

	// A stream from the present starts after what was written while idle.
	createPerson(t, d, store, "acme", 3)
	detach, err = d.Attach(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	present := d.Position()
	if all := eventsAfter(t, d, pos, 3); all[len(all)-1].Position != present {
		t.Errorf("stream from the present starts at %d, the change written while idle is at %d",
			present, all[len(all)-1].Position)
	}
}

// TestIdlePrunes checks that while nobody listens the outbox still loses
// changes older than the retention, and that what is written later is
// taken as usual.
func TestIdlePrunes(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	cfg := idleConfig(dir)
	cfg.Retention = 300 * time.Millisecond
	cfg.PruneInterval = 50 * time.Millisecond
	d := startDispatcher(t, store, cfg)
	ctx := context.Background()
	mustCreateTenant(t, store, "acme")
	for i := 0; i < 3; i++ {
		createPerson(t, d, store, "acme", i)
	}
	waitFor(t, 5*time.Second, "the outbox pruned", func() bool {
		l, err := store.Pool.Acquire(ctx, "acme")
		if err != nil {
			return false
		}
		defer l.Release()
		outbox, _ := l.DB().ChangesAfter(ctx, 0, 100)
		return len(outbox) == 0
	})
	if cur, _, err := store.Catalog.Feed(ctx, "acme"); err != nil || cur.Seq != 3 {
		t.Errorf("feed at %+v (%v), want past the pruned changes", cur, err)
	}

	last := createPerson(t, d, store, "acme", 10)
	detach, err := d.Attach(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	// tenant.created stays: tenant events are pruned from the catalog.
	var people []*Event
	for _, e := range eventsAfter(t, d, 0, 2) {
		if e.Type == "person.created" {
			people = append(people, e)
		}
	}
	if len(people) != 1 || !containsID(people[0].Body, last.ID) {
		t.Errorf("after pruning the stream got %d people, want the one written since", len(people))
	}
}

// containsID reports whether a change event's JSON names record id.
func containsID(body []byte, id string) bool {
	return id != "" && strings.Contains(string(body), id)
}
