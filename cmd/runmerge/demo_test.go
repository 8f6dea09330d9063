package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

func TestDemoCommand(t *testing.T) {
	c := newCLI(t)
	out := c.ok("demo", "--tenants", "2", "--attendees", "25")
	key := regexp.MustCompile(`(?m)^    (rmk_\S+)$`).FindStringSubmatch(out)
	if key == nil {
		t.Fatalf("demo printed no key:\n%s", out)
	}
	s := c.store()
	ctx := context.Background()
	k, err := s.Catalog.KeyByHash(ctx, runmerge.HashKeySecret(key[1]))
	if err != nil || k.Role != runmerge.RoleAdmin || k.TenantID != "" || k.ExpiresAt == nil {
		t.Errorf("demo key %+v, %v", k, err)
	}

	for _, id := range []string{"demo-northwind", "demo-globex"} {
		st, err := s.TenantStats(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, coll := range runmerge.CollectionNames {
			if st.Records[coll] == 0 {
				t.Errorf("%s has no %s", id, coll)
			}
		}
		l, err := s.Pool.Acquire(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		people, _ := runmerge.CollectionByName("people")
		speaker := "Speaker"
		list, _, err := l.DB().ListRecords(ctx, &runmerge.Principal{Role: runmerge.RoleAdmin},
			tenantstore.RecordFilter{Collection: people, Type: &speaker, Limit: 100})
		if err != nil || len(list) == 0 {
			t.Errorf("%s: speakers %d, %v", id, len(list), err)
		}
		sessions, _ := runmerge.CollectionByName("sessions")
		found, _, err := l.DB().ListRecords(ctx, &runmerge.Principal{Role: runmerge.RoleAdmin},
			tenantstore.RecordFilter{Collection: sessions, Query: "keynote", Limit: 10})
		if err != nil || len(found) < 2 {
			t.Errorf("%s: search for keynote found %d, %v", id, len(found), err)
		}
		l.Release()
	}
	if _, err := s.Catalog.Tenant(ctx, "demo-initech"); err == nil {
		t.Errorf("--tenants 2 made a third tenant")
	}
	if msg := c.fails("demo", "--tenants", "1"); !strings.Contains(msg, "exists already") {
		t.Errorf("demo twice: %q", msg)
	}
	c.ok("demo", "--tenants", "1", "--prefix", "trial-", "--role", "read_only")
}
