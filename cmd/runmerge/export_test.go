package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runmerge/runmerge/tenantstore"
)

func TestExportImportCommands(t *testing.T) {
	c := newCLI(t)
	c.ok("tenants", "create", "acme", "--name", "Acme Events")
	s := c.store()
	addPeople(t, s, "acme", 5)

	c.ok("export", "acme", "-o", "acme.db")
	m, err := tenantstore.ReadManifest(context.Background(), filepath.Join(c.dir, "acme.db"))
	if err != nil || m.TenantID != "acme" || m.Records["people"] != 5 {
		t.Fatalf("manifest %+v, %v", m, err)
	}
	if _, err := os.Stat("acme.db.partial"); !os.IsNotExist(err) {
		t.Errorf("export left its partial file: %v", err)
	}
	if msg := c.fails("export", "acme", "-o", "acme.db"); !strings.Contains(msg, "--force") {
		t.Errorf("export over a file: %q", msg)
	}
	c.ok("export", "acme", "-o", "acme.db", "--force")
	stdout := c.ok("export", "acme", "-o", "-")
	if !strings.HasPrefix(stdout, "SQLite format 3\x00") {
		t.Errorf("export to standard output wrote %.20q", stdout)
	}
	// Without -o, the file is named after the tenant and the time.
	c.ok("export", "acme")
	if names, _ := filepath.Glob("acme-*.db"); len(names) != 1 {
		t.Errorf("default export names: %v", names)
	}
	if msg := c.fails("export", "nobody"); !strings.Contains(msg, "tenant not found") {
		t.Errorf("export of a missing tenant: %q", msg)
	}

	out := c.ok("import", "copy", "acme.db")
	if !strings.Contains(out, "created tenant copy") || !strings.Contains(out, "5 records") {
		t.Errorf("import said %q", out)
	}
	if st, err := s.TenantStats(context.Background(), "copy"); err != nil || st.Records["people"] != 5 {
		t.Errorf("imported tenant: %+v, %v", st, err)
	}
	os.WriteFile("junk.db", []byte(strings.Repeat("junk", 1000)), 0o600)
	if msg := c.fails("import", "acme", "junk.db"); !strings.Contains(msg, "not an importable tenant file") {
		t.Errorf("import of junk: %q", msg)
	}
	if st, _ := s.TenantStats(context.Background(), "acme"); st.Records["people"] != 5 {
		t.Errorf("refused import changed the tenant")
	}
}

func TestRestoreCommand(t *testing.T) {
	c := newCLI(t)
	c.ok("tenants", "create", "acme")
	s := c.store()
	addPeople(t, s, "acme", 2)
	if msg := c.fails("restore", "acme"); !strings.Contains(msg, "backup.dir") {
		t.Errorf("restore without backup.dir: %q", msg)
	}

	backups := filepath.Join(c.dir, "backups")
	t.Setenv("RUNMERGE_BACKUP_DIR", backups)
	b, err := s.NewBackups(tenantstore.BackupConfig{Dir: backups, Interval: time.Hour, Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := b.RunCycle(context.Background()); err != nil || len(res.Snapshots) != 1 {
		t.Fatalf("backup cycle: %+v, %v", res, err)
	}
	snaps, _ := tenantstore.ListSnapshots(backups, "acme")

	list := c.ok("restore", "acme", "--list")
	if !strings.Contains(list, filepath.Base(snaps[0].Path)) {
		t.Errorf("--list:\n%s", list)
	}
	c.ok("tenants", "delete", "acme", "--yes")
	out := c.ok("restore", "acme")
	if !strings.Contains(out, "created tenant acme") || !strings.Contains(out, "2 records") {
		t.Errorf("restore said %q", out)
	}
	c.ok("restore", "acme", "--from", strings.TrimSuffix(filepath.Base(snaps[0].Path), ".db"))
	if msg := c.fails("restore", "acme", "--from", "20990101T000000.000Z"); !strings.Contains(msg, "no snapshot") {
		t.Errorf("restore of a missing snapshot: %q", msg)
	}
}
