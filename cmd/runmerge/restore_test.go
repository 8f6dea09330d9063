package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runmerge/runmerge/tenantstore"
)

// TestServeBacksUp starts serve with backup.dir set over a data directory
// with a changed tenant: the first cycle snapshots it at once, and the
// backup metrics say so.
func TestServeBacksUp(t *testing.T) {
	clearEnv(t)
	dataDir, backups := t.TempDir(), filepath.Join(t.TempDir(), "backups")
	store, err := tenantstore.Open(context.Background(), tenantstore.Config{DataDir: dataDir, MaxOpen: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateTenant(context.Background(), "acme", "Acme"); err != nil {
		t.Fatal(err)
	}
	addPeople(t, store, "acme", 2)
	if err := store.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	s := startServe(t, testConfig(t, dataDir, map[string]string{
		"backup.dir": backups, "backup.interval": "1m", "auth.root_key": strings.Repeat("r", 32),
	}))
	deadline := time.Now().Add(20 * time.Second)
	var snaps []tenantstore.Snapshot
	for len(snaps) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		snaps, _ = tenantstore.ListSnapshots(backups, "acme")
	}
	if len(snaps) != 1 {
		t.Fatalf("%d snapshots of acme, want 1", len(snaps))
	}
	resp, err := http.Get("http://" + s.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "runmerge_backup_snapshots_total 1") {
		t.Errorf("metrics do not count the snapshot:\n%s", body)
	}
	s.stop(t)
}
