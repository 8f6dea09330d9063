package webhook

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// TestDeliverRecordAndTenantChanges follows changes from a write to a
// receiver: record changes to a tenant webhook, tenant.* events to a
// platform one, each signed and each with a delivery log entry.
func TestDeliverRecordAndTenantChanges(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	d := startDispatcher(t, store, testConfig(dir))
	ctx := context.Background()

	tenantRecv, platformRecv := newReceiver(t), newReceiver(t)
	_, psecret, err := d.CreateWebhook(ctx, platformAdmin, WebhookInput{URL: platformRecv.URL(),
		EventTypes: []string{"tenant.created", "tenant.updated", "tenant.deleted"}})
	if err != nil {
		t.Fatal(err)
	}
	platformRecv.addSecret(psecret)
	mustCreateTenant(t, store, "acme")
	tenantAdmin := &runmerge.Principal{KeyID: "k1", TenantID: "acme", Role: runmerge.RoleAdmin}
	// The owner must be a real key: the dispatcher checks it is not revoked.
	if err := store.Catalog.CreateKey(ctx, &runmerge.Key{ID: "k1", Name: "k1", TenantID: "acme",
		Role: runmerge.RoleAdmin, Hash: "h1", CreatedAt: runmerge.Now()}); err != nil {
		t.Fatal(err)
	}
	th, tsecret, err := d.CreateWebhook(ctx, tenantAdmin, WebhookInput{TenantID: "acme",
		URL: tenantRecv.URL(), EventTypes: []string{"person.created", "person.deleted"}})
	if err != nil {
		t.Fatal(err)
	}
	tenantRecv.addSecret(tsecret)

	people := collection(t, runmerge.CollectionPeople)
	var rec *runmerge.Record
	write(t, d, store, "acme", func(db *tenantstore.DB) error {
		rec, err = db.CreateRecord(ctx, platformAdmin, people, personBody(1), nil, nil)
		return err
	})
	write(t, d, store, "acme", func(db *tenantstore.DB) error {
		_, err := db.UpdateRecord(ctx, platformAdmin, people, rec.ID, map[string]any{"jobTitle": "CTO"}, nil)
		return err
	})
	write(t, d, store, "acme", func(db *tenantstore.DB) error {
		return db.DeleteRecord(ctx, platformAdmin, people, rec.ID, nil)
	})
	mustCreateTenant(t, store, "globex")
	d.NotifyTenants()
	name := "Globex Corp"
	if _, err := store.Catalog.UpdateTenant(ctx, "globex", runmerge.TenantUpdate{Name: &name}); err != nil {
		t.Fatal(err)
	}
	d.NotifyTenants()

	waitFor(t, 5*time.Second, "two record deliveries", func() bool { return len(tenantRecv.deliveries()) == 2 })
	waitFor(t, 5*time.Second, "three tenant deliveries", func() bool { return len(platformRecv.deliveries()) == 3 })
	tenantRecv.check()
	platformRecv.check()

	// Deliveries run in parallel, so they may arrive in any order.
	var types []string
	for _, g := range tenantRecv.deliveries() {
		types = append(types, g.Event.EventType)
		if g.Event.TenantID != "acme" || !strings.Contains(string(g.Event.Data), rec.ID) {
			t.Errorf("%s body %s", g.Event.EventType, g.Body)
		}
	}
	if slices.Sort(types); strings.Join(types, ",") != "person.created,person.deleted" {
		t.Errorf("record deliveries %v", types)
	}
	types = nil
	for _, g := range platformRecv.deliveries() {
		types = append(types, g.Event.EventType+" "+g.Event.TenantID)
	}
	if slices.Sort(types); strings.Join(types, ",") != "tenant.created acme,tenant.created globex,tenant.updated globex" {
		t.Errorf("tenant deliveries %v", types)
	}

	waitFor(t, 5*time.Second, "the delivery log", func() bool {
		log, err := store.Catalog.Deliveries(ctx, th.ID, "", 10)
		if err != nil || len(log) != 2 {
			return false
		}
		for _, l := range log {
			if l.Status != tenantstore.DeliverySucceeded || l.Attempts != 1 || l.ResponseStatus != 204 {
				return false
			}
		}
		return true
	})
}

// TestRetriesAndGone fails deliveries until the schedule is spent, then
// checks that 410 disables the webhook.
func TestRetriesAndGone(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	d := startDispatcher(t, store, testConfig(dir))
	ctx := context.Background()
	mustCreateTenant(t, store, "acme")

	recv := newReceiver(t)
	var calls atomic.Int32
	recv.respond = func(delivery) int {
		if calls.Add(1) <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	w, secret, err := d.CreateWebhook(ctx, platformAdmin, WebhookInput{TenantID: "acme", URL: recv.URL(),
		EventTypes: []string{"person.created"}})
	if err != nil {
		t.Fatal(err)
	}
	recv.addSecret(secret)
	people := collection(t, runmerge.CollectionPeople)
	write(t, d, store, "acme", func(db *tenantstore.DB) error {
		_, err := db.CreateRecord(ctx, platformAdmin, people, personBody(1), nil, nil)
		return err
	})
	waitFor(t, 5*time.Second, "a delivery after two failures", func() bool { return len(recv.deliveries()) == 1 })
	recv.check()
	waitFor(t, 5*time.Second, "three attempts in the log", func() bool {
		log, _ := store.Catalog.Deliveries(ctx, w.ID, "", 10)
		return len(log) == 1 && log[0].Attempts == 3 && log[0].Status == tenantstore.DeliverySucceeded
	})

	// Gone: the webhook is disabled and hears nothing more.
	recv.mu.Lock()
	recv.respond = func(delivery) int { return http.StatusGone }
	recv.mu.Unlock()
	write(t, d, store, "acme", func(db *tenantstore.DB) error {
		_, err := db.CreateRecord(ctx, platformAdmin, people, personBody(2), nil, nil)
		return err
	})
	waitFor(t, 5*time.Second, "the webhook disabled", func() bool {
		got, err := store.Catalog.Webhook(ctx, w.ID)
		return err == nil && got.Status == tenantstore.WebhookDisabled
	})
	waitFor(t, 5*time.Second, "the 410 in the log", func() bool {
		log, _ := store.Catalog.Deliveries(ctx, w.ID, "", 10)
		return len(log) == 2 && log[0].Status == tenantstore.DeliveryFailed && log[0].ResponseStatus == 410
	})
}

// TestGiveUp checks that a delivery fails for good once the schedule is
// spent, after exactly one attempt more than the schedule has waits.
func TestGiveUp(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	d := startDispatcher(t, store, testConfig(dir))
	ctx := context.Background()
	mustCreateTenant(t, store, "acme")
	recv := newReceiver(t)
	recv.respond = func(delivery) int { return http.StatusServiceUnavailable }
	w, _, err := d.CreateWebhook(ctx, platformAdmin, WebhookInput{TenantID: "acme", URL: recv.URL(),
		EventTypes: []string{"person.created"}})
	if err != nil {
		t.Fatal(err)
	}
	write(t, d, store, "acme", func(db *tenantstore.DB) error {
		_, err := db.CreateRecord(ctx, platformAdmin, collection(t, runmerge.CollectionPeople), personBody(1), nil, nil)
		return err
	})
	waitFor(t, 5*time.Second, "the delivery to fail", func() bool {
		log, _ := store.Catalog.Deliveries(ctx, w.ID, "", 10)
		return len(log) == 1 && log[0].Status == tenantstore.DeliveryFailed
	})
	log, _ := store.Catalog.Deliveries(ctx, w.ID, "", 10)
	if log[0].Attempts != 4 || !strings.Contains(log[0].LastError, "503") {
		t.Errorf("failed delivery: %d attempts, %q", log[0].Attempts, log[0].LastError)
	}

	// A manual retry sends it once more.
	recv.mu.Lock()
	recv.respond = nil
	recv.mu.Unlock()
	if _, err := d.RetryDelivery(ctx, w.ID, log[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the manual retry", func() bool { return len(recv.deliveries()) == 1 })
	if got := recv.deliveries()[0].ID; got != log[0].ID {
		t.Errorf("retry sent webhook-id %s, want %s", got, log[0].ID)
	}
}

func TestKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	startDispatcher(t, store, testConfig(dir))
	fi, err := os.Stat(filepath.Join(dir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode().Perm())
	}
}

// TestChangesFromAnotherProcess writes through a second store on the same
// data directory, as the CLI does beside a running server: the dispatcher
// is not told, and still delivers the change, found by the tenant's
// changed_at in the catalog.
func TestChangesFromAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	d := startDispatcher(t, store, testConfig(dir))
	ctx := context.Background()
	mustCreateTenant(t, store, "acme")
	recv := newReceiver(t)
	_, secret, err := d.CreateWebhook(ctx, platformAdmin, WebhookInput{TenantID: "acme", URL: recv.URL(),
		EventTypes: []string{"person.created"}})
	if err != nil {
		t.Fatal(err)
	}
	recv.addSecret(secret)

	other := openStore(t, dir)
	l, err := other.Pool.Acquire(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := l.DB().CreateRecord(ctx, platformAdmin, collection(t, runmerge.CollectionPeople), personBody(1), nil, nil)
	l.Release()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the other process's change", func() bool { return len(recv.deliveries()) == 1 })
	if got := recv.deliveries()[0]; !strings.Contains(string(got.Event.Data), rec.ID) {
		t.Errorf("delivered %s", got.Body)
	}
	recv.check()
}

// TestRestartDeliversMarkedChanges commits a change without telling the
// dispatcher, as a crash between the commit and the notice would leave it,
// and checks that a new dispatcher finds it through the tenant's mark.
func TestRestartDeliversMarkedChanges(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	ctx := context.Background()
	mustCreateTenant(t, store, "acme")
	recv := newReceiver(t)

	first, err := New(testConfig(dir), store)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := first.CreateWebhook(ctx, platformAdmin, WebhookInput{TenantID: "acme", URL: recv.URL(),
		EventTypes: []string{"person.created"}})
	if err != nil {
		t.Fatal(err)
	}
	recv.addSecret(secret)
	// Marked before the write, never started: the notice goes nowhere.
	write(t, first, store, "acme", func(db *tenantstore.DB) error {
		_, err := db.CreateRecord(ctx, platformAdmin, collection(t, runmerge.CollectionPeople), personBody(1), nil, nil)
		return err
	})
	first.Stop(ctx)

	startDispatcher(t, store, testConfig(dir))
	waitFor(t, 10*time.Second, "the change committed before the restart", func() bool {
		return len(recv.deliveries()) == 1
	})
	recv.check()
}

// TestSlowReceiverDelaysNoOther points one webhook at a receiver that
// hangs and another at a quick one: the quick one gets every change at
// once, and the hanging one never holds more than its share of workers.
func TestSlowReceiverDelaysNoOther(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	cfg := testConfig(dir)
	cfg.Workers, cfg.PerEndpoint = 8, 2
	cfg.Timeout = 10 * time.Second
	d := startDispatcher(t, store, cfg)
	ctx := context.Background()
	mustCreateTenant(t, store, "acme")

	release := make(chan struct{})
	var inSlow, maxInSlow atomic.Int32
	slow := newReceiver(t)
	slow.respond = func(delivery) int {
		n := inSlow.Add(1)
		defer inSlow.Add(-1)
		for m := maxInSlow.Load(); n > m && !maxInSlow.CompareAndSwap(m, n); m = maxInSlow.Load() {
		}
		<-release
		return http.StatusOK
	}
	// Unblock the hanging handlers before the receivers close.
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	fast := newReceiver(t)
	for _, r := range []*receiver{slow, fast} {
		_, secret, err := d.CreateWebhook(ctx, platformAdmin, WebhookInput{TenantID: "acme", URL: r.URL(),
			EventTypes: []string{"person.created"}})
		if err != nil {
			t.Fatal(err)
		}
		r.addSecret(secret)
	}
	start := time.Now()
	for i := 0; i < 50; i++ {
		write(t, d, store, "acme", func(db *tenantstore.DB) error {
			_, err := db.CreateRecord(ctx, platformAdmin, collection(t, runmerge.CollectionPeople), personBody(i), nil, nil)
			return err
		})
	}
	waitFor(t, 5*time.Second, "the quick receiver's 50 deliveries", func() bool { return len(fast.deliveries()) == 50 })
	t.Logf("the quick receiver had all 50 after %s, the hanging one holding %d workers",
		time.Since(start).Round(time.Millisecond), inSlow.Load())
	if m := maxInSlow.Load(); m > 2 {
		t.Errorf("the hanging receiver held %d workers at once; its share is 2", m)
	}
	close(release)
	waitFor(t, 10*time.Second, "the slow receiver's 50 deliveries", func() bool { return len(slow.deliveries()) == 50 })
	fast.check()
	slow.check()
}

// TestPruning keeps change events for a short retention and checks that
// the tenant's outbox, the change log and the delivery log lose what is
// older, while the newest changes stay deliverable.
func TestPruning(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	cfg := testConfig(dir)
	cfg.Retention = 300 * time.Millisecond
	cfg.PruneInterval = 50 * time.Millisecond
	d := startDispatcher(t, store, cfg)
	ctx := context.Background()
	mustCreateTenant(t, store, "acme")
	recv := newReceiver(t)
	w, secret, err := d.CreateWebhook(ctx, platformAdmin, WebhookInput{TenantID: "acme", URL: recv.URL(),
		EventTypes: []string{"person.created"}})
	if err != nil {
		t.Fatal(err)
	}
	recv.addSecret(secret)
	people := collection(t, runmerge.CollectionPeople)
	for i := 0; i < 5; i++ {
		write(t, d, store, "acme", func(db *tenantstore.DB) error {
			_, err := db.CreateRecord(ctx, platformAdmin, people, personBody(i), nil, nil)
			return err
		})
	}
	waitFor(t, 5*time.Second, "five deliveries", func() bool { return len(recv.deliveries()) == 5 })

	time.Sleep(400 * time.Millisecond) // older than the retention now
	// A new write has the tenant read again, which prunes its outbox.
	write(t, d, store, "acme", func(db *tenantstore.DB) error {
		_, err := db.CreateRecord(ctx, platformAdmin, people, personBody(99), nil, nil)
		return err
	})
	waitFor(t, 5*time.Second, "the sixth delivery", func() bool { return len(recv.deliveries()) == 6 })
	waitFor(t, 5*time.Second, "the old changes pruned", func() bool {
		l, err := store.Pool.Acquire(ctx, "acme")
		if err != nil {
			return false
		}
		defer l.Release()
		outbox, _ := l.DB().ChangesAfter(ctx, 0, 100)
		logged, _ := store.Catalog.ChangeLogAfter(ctx, 0, "", 100)
		log, _ := store.Catalog.Deliveries(ctx, w.ID, "", 100)
		return len(outbox) == 1 && len(logged) == 1 && len(log) == 1
	})
}
