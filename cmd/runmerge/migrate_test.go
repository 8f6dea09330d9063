package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMigrateAndCheckCommands(t *testing.T) {
	c := newCLI(t)
	for _, id := range []string{"a", "b", "c"} {
		c.ok("tenants", "create", id)
	}
	s := c.store()
	addPeople(t, s, "a", 3)
	// A tenant the catalog has no version for yet, as after an upgrade.
	if err := s.Catalog.SetTenantSchemaVersion(context.Background(), "b", 0, ""); err != nil {
		t.Fatal(err)
	}
	out := c.ok("migrate", "--parallel", "2")
	if !strings.Contains(out, "1 already current, 0 failed, of 1 tenants") {
		t.Errorf("migrate said %q", out)
	}
	if out := c.ok("migrate"); !strings.Contains(out, "of 0 tenants") {
		t.Errorf("second migrate said %q", out)
	}

	if out := c.ok("check"); !strings.Contains(out, "3 tenants checked: 3 sound, 0 failed") {
		t.Errorf("check said %q", out)
	}
	// Close the tenant, then break its file: check fails, and says which.
	unlock, err := s.Pool.Lock(context.Background(), "c")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	os.WriteFile(filepath.Join(c.dataDir, "tenants", "c.db"), []byte("broken"), 0o600)
	_, stderr, err := c.run("check")
	if err == nil || !strings.Contains(err.Error(), "1 of 3 tenant files failed") || !strings.Contains(stderr, "  c: ") {
		t.Errorf("check of a broken file: %v\n%s", err, stderr)
	}
	// migrate trusts the catalog's record of c; once that is gone, it
	// looks at the file and records why it fails.
	if err := s.Catalog.SetTenantSchemaVersion(context.Background(), "c", 0, ""); err != nil {
		t.Fatal(err)
	}
	if msg := c.fails("migrate"); !strings.Contains(msg, "1 tenants could not be migrated") {
		t.Errorf("migrate of a broken file: %q", msg)
	}
	if msg := c.fails("check", "--parallel", "-1"); !strings.Contains(msg, "--parallel") {
		t.Errorf("check --parallel -1: %q", msg)
	}
}
