package runmerge_test

import (
	"testing"
	"time"

	"github.com/runmerge/runmerge"
)

// Principals of the policy tests: platform keys, and keys of tenant acme,
// whose event manager reaches events e1 and e2.
var (
	platformAdmin  = &runmerge.Principal{KeyID: "pa", Role: runmerge.RoleAdmin}
	platformReader = &runmerge.Principal{KeyID: "pr", Role: runmerge.RoleReadOnly}
	acmeAdmin      = &runmerge.Principal{KeyID: "aa", TenantID: "acme", Role: runmerge.RoleAdmin}
	acmeReader     = &runmerge.Principal{KeyID: "ar", TenantID: "acme", Role: runmerge.RoleReadOnly}
	acmeManager    = &runmerge.Principal{KeyID: "am", TenantID: "acme", Role: runmerge.RoleEventManager,
		EventIDs: []string{"e1", "e2"}}
)

// Outcomes of Authorize, by error code.
const (
	allow  = ""
	hidden = runmerge.ENOTFOUND
	denied = runmerge.EFORBIDDEN
)

func TestPolicy(t *testing.T) {
	acme := func(coll string, events ...string) runmerge.Target {
		return runmerge.Target{TenantID: "acme", Collection: coll, EventIDs: events}
	}
	globex := runmerge.Target{TenantID: "globex", Collection: "people"}
	links := func(t runmerge.Target, before, after []string) runmerge.Target {
		t.Links = &runmerge.EventLinks{Before: before, After: after}
		return t
	}
	tests := []struct {
		name   string
		p      *runmerge.Principal
		action runmerge.Action
		target runmerge.Target
		want   string
	}{
		{"no key, public", nil, runmerge.ActionPublic, runmerge.Target{}, allow},
		{"no key, data", nil, runmerge.ActionRecordRead, acme("people"), runmerge.EUNAUTHORIZED},
		{"undeclared action", platformAdmin, "", acme("people"), denied},
		{"unknown action", platformAdmin, "record.purge", acme("people"), denied},

		{"platform admin writes anywhere", platformAdmin, runmerge.ActionRecordDelete, globex, allow},
		{"platform admin deletes tenants", platformAdmin, runmerge.ActionTenantDelete, globex, allow},
		{"platform reader reads", platformReader, runmerge.ActionRecordRead, globex, allow},
		{"platform reader reads tenants", platformReader, runmerge.ActionTenantRead, globex, allow},
		{"platform reader reads webhooks", platformReader, runmerge.ActionWebhookRead, globex, allow},
		{"platform reader writes", platformReader, runmerge.ActionRecordCreate, globex, denied},
		{"platform reader reads keys", platformReader, runmerge.ActionKeyRead, globex, denied},
		{"platform reader exports", platformReader, runmerge.ActionTenantExport, globex, denied},
		{"platform reader creates tenants", platformReader, runmerge.ActionTenantCreate, runmerge.Target{}, denied},

		{"tenant admin, own records", acmeAdmin, runmerge.ActionRecordDelete, acme("events", "e9"), allow},
		{"tenant admin, other tenant", acmeAdmin, runmerge.ActionRecordRead, globex, hidden},
		{"tenant admin, other tenant's tenant", acmeAdmin, runmerge.ActionTenantRead,
			runmerge.Target{TenantID: "globex"}, hidden},
		{"tenant admin, platform", acmeAdmin, runmerge.ActionKeyRead, runmerge.Target{}, hidden},
		{"tenant admin creates tenants", acmeAdmin, runmerge.ActionTenantCreate, runmerge.Target{}, denied},
		{"tenant admin deletes its tenant", acmeAdmin, runmerge.ActionTenantDelete, acme(""), denied},
		{"tenant admin imports", acmeAdmin, runmerge.ActionTenantImport, acme(""), denied},
		{"tenant admin exports", acmeAdmin, runmerge.ActionTenantExport, acme(""), allow},
		{"tenant admin, webhooks", acmeAdmin, runmerge.ActionWebhookCreate, acme(""), allow},

		{"tenant reader reads", acmeReader, runmerge.ActionRecordRead, acme("people"), allow},
		{"tenant reader, its tenant", acmeReader, runmerge.ActionTenantRead, acme(""), allow},
		{"tenant reader writes", acmeReader, runmerge.ActionRecordUpdate, acme("people"), denied},
		{"tenant reader, keys", acmeReader, runmerge.ActionKeyRead, acme(""), denied},
		{"tenant reader, webhooks", acmeReader, runmerge.ActionWebhookRead, acme(""), denied},
		{"tenant reader exports", acmeReader, runmerge.ActionTenantExport, acme(""), denied},
		{"tenant reader, stream", acmeReader, runmerge.ActionStreamRead, acme(""), allow},
		{"tenant reader, other tenant", acmeReader, runmerge.ActionRecordRead, globex, hidden},

		{"manager reads its event", acmeManager, runmerge.ActionRecordRead, acme("events", "e1"), allow},
		{"manager reads another event", acmeManager, runmerge.ActionRecordRead, acme("events", "e3"), hidden},
		{"manager reads a linked person", acmeManager, runmerge.ActionRecordRead, acme("people", "e3", "e2"), allow},
		{"manager reads an unlinked person", acmeManager, runmerge.ActionRecordRead, acme("people"), hidden},
		{"manager, other tenant", acmeManager, runmerge.ActionRecordRead,
			runmerge.Target{TenantID: "globex", Collection: "events", EventIDs: []string{"e1"}}, hidden},
		{"manager updates its event", acmeManager, runmerge.ActionRecordUpdate, acme("events", "e1"), allow},
		{"manager updates another event", acmeManager, runmerge.ActionRecordUpdate, acme("events", "e3"), hidden},
		{"manager deletes its event", acmeManager, runmerge.ActionRecordDelete, acme("events", "e1"), denied},
		{"manager deletes another event", acmeManager, runmerge.ActionRecordDelete, acme("events", "e3"), hidden},
		{"manager deletes a linked session", acmeManager, runmerge.ActionRecordDelete, acme("sessions", "e2"), allow},
		{"manager creates an event", acmeManager, runmerge.ActionRecordCreate,
			links(acme("events"), nil, nil), denied},
		{"manager creates a linked session", acmeManager, runmerge.ActionRecordCreate,
			links(acme("sessions"), nil, []string{"e1", "e2"}), allow},
		{"manager creates an unlinked person", acmeManager, runmerge.ActionRecordCreate,
			links(acme("people"), nil, nil), denied},
		{"manager creates a person of two events, one not its own", acmeManager, runmerge.ActionRecordCreate,
			links(acme("people"), nil, []string{"e1", "e3"}), denied},
		{"manager creates without saying what it links", acmeManager, runmerge.ActionRecordCreate,
			acme("people", "e1"), denied},
		{"manager keeps links", acmeManager, runmerge.ActionRecordUpdate,
			links(acme("people", "e1", "e3"), []string{"e1", "e3"}, []string{"e1", "e3"}), allow},
		{"manager drops a link to another event", acmeManager, runmerge.ActionRecordUpdate,
			links(acme("people", "e1", "e3"), []string{"e1", "e3"}, []string{"e1"}), allow},
		{"manager adds its own event", acmeManager, runmerge.ActionRecordUpdate,
			links(acme("people", "e1"), []string{"e1"}, []string{"e1", "e2"}), allow},
		{"manager adds another event", acmeManager, runmerge.ActionRecordUpdate,
			links(acme("people", "e1"), []string{"e1"}, []string{"e1", "e3"}), denied},
		{"manager moves a person out of reach", acmeManager, runmerge.ActionRecordUpdate,
			links(acme("people", "e1", "e3"), []string{"e1", "e3"}, []string{"e3"}), denied},
		{"manager unlinks a person", acmeManager, runmerge.ActionRecordUpdate,
			links(acme("people", "e1"), []string{"e1"}, nil), denied},
		{"manager links its event to another", acmeManager, runmerge.ActionRecordUpdate,
			links(acme("events", "e1"), nil, []string{"e3"}), denied},
		{"manager, keys", acmeManager, runmerge.ActionKeyRead, acme(""), denied},
		{"manager, webhooks", acmeManager, runmerge.ActionWebhookRead, acme(""), denied},
		{"manager, stream", acmeManager, runmerge.ActionStreamRead, acme(""), allow},
		{"manager, tenant", acmeManager, runmerge.ActionTenantRead, acme(""), allow},
		{"manager, export", acmeManager, runmerge.ActionTenantExport, acme(""), denied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runmerge.Authorize(tt.p, tt.action, tt.target)
			if got := runmerge.ErrorCode(err); got != tt.want {
				t.Errorf("Authorize = %v (code %q), want code %q", err, got, tt.want)
			}
		})
	}
}

// TestPolicyKeyGrants checks that no key creates a key wider than itself.
func TestPolicyKeyGrants(t *testing.T) {
	soon := time.Now().Add(time.Hour)
	later := soon.Add(time.Hour)
	expiring := &runmerge.Principal{KeyID: "ax", TenantID: "acme", Role: runmerge.RoleAdmin, ExpiresAt: &soon}
	key := func(tenant, role string, expires *time.Time, events ...string) runmerge.Target {
		return runmerge.Target{TenantID: tenant,
			Key: &runmerge.Key{TenantID: tenant, Role: role, ExpiresAt: expires, EventIDs: events}}
	}
	tests := []struct {
		name   string
		p      *runmerge.Principal
		target runmerge.Target
		want   string
	}{
		{"platform admin, platform admin", platformAdmin, key("", "admin", nil), allow},
		{"platform admin, tenant manager", platformAdmin, key("acme", "event_manager", nil, "e9"), allow},
		{"platform reader, platform reader", platformReader, key("", "read_only", nil), denied},
		{"platform reader, tenant reader", platformReader, key("acme", "read_only", nil), denied},
		{"tenant admin, its admin", acmeAdmin, key("acme", "admin", nil), allow},
		{"tenant admin, its manager", acmeAdmin, key("acme", "event_manager", nil, "e9"), allow},
		{"tenant admin, platform admin", acmeAdmin, key("", "admin", nil), hidden},
		{"tenant admin, platform reader", acmeAdmin, key("", "read_only", nil), hidden},
		{"tenant admin, other tenant", acmeAdmin, key("globex", "read_only", nil), hidden},
		{"tenant admin, key and target disagree", acmeAdmin,
			runmerge.Target{TenantID: "acme", Key: &runmerge.Key{Role: "admin"}}, denied},
		{"tenant admin, nothing described", acmeAdmin, runmerge.Target{TenantID: "acme"}, denied},
		{"tenant admin, unknown role", acmeAdmin, key("acme", "owner", nil), denied},
		{"tenant reader, its reader", acmeReader, key("acme", "read_only", nil), denied},
		{"tenant reader, its admin", acmeReader, key("acme", "admin", nil), denied},
		{"tenant reader, other tenant's admin", acmeReader, key("globex", "admin", nil), hidden},
		{"manager, its events", acmeManager, key("acme", "event_manager", nil, "e1"), denied},
		{"manager, other tenant", acmeManager, key("globex", "admin", nil), hidden},
		{"expiring admin, no expiry", expiring, key("acme", "read_only", nil), denied},
		{"expiring admin, expiring later", expiring, key("acme", "read_only", &later), denied},
		{"expiring admin, expiring with it", expiring, key("acme", "read_only", &soon), allow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runmerge.Authorize(tt.p, runmerge.ActionKeyCreate, tt.target)
			if got := runmerge.ErrorCode(err); got != tt.want {
				t.Errorf("Authorize = %v (code %q), want code %q", err, got, tt.want)
			}
		})
	}
}
