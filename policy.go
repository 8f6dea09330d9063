package runmerge

import "time"

// Action is what a request does. Every route of the HTTP server declares its
// action, and Authorize is the one place that decides who may perform it.
type Action string

// Actions.
const (
	ActionPublic Action = "public" // no key needed: health, readiness, metrics, API description

	ActionTenantCreate Action = "tenant.create"
	ActionTenantRead   Action = "tenant.read"
	ActionTenantUpdate Action = "tenant.update"
	ActionTenantDelete Action = "tenant.delete"
	ActionTenantExport Action = "tenant.export"
	ActionTenantImport Action = "tenant.import"

	ActionKeyCreate Action = "key.create"
	ActionKeyRead   Action = "key.read"
	ActionKeyRevoke Action = "key.revoke"

	ActionWebhookCreate Action = "webhook.create"
	ActionWebhookRead   Action = "webhook.read"
	ActionWebhookUpdate Action = "webhook.update"
	ActionWebhookDelete Action = "webhook.delete"

	ActionRecordRead   Action = "record.read"
	ActionRecordCreate Action = "record.create"
	ActionRecordUpdate Action = "record.update"
	ActionRecordDelete Action = "record.delete"

	ActionStreamRead Action = "stream.read"
)

// readActions are the actions that change nothing.
var readActions = map[Action]bool{
	ActionTenantRead:   true,
	ActionTenantExport: true,
	ActionKeyRead:      true,
	ActionWebhookRead:  true,
	ActionRecordRead:   true,
	ActionStreamRead:   true,
}

// knownActions are the actions Authorize decides on. Any other action, such
// as the empty one of a route that forgot to declare its own, is refused.
var knownActions = map[Action]bool{
	ActionPublic:        true,
	ActionTenantCreate:  true,
	ActionTenantRead:    true,
	ActionTenantUpdate:  true,
	ActionTenantDelete:  true,
	ActionTenantExport:  true,
	ActionTenantImport:  true,
	ActionKeyCreate:     true,
	ActionKeyRead:       true,
	ActionKeyRevoke:     true,
	ActionWebhookCreate: true,
	ActionWebhookRead:   true,
	ActionWebhookUpdate: true,
	ActionWebhookDelete: true,
	ActionRecordRead:    true,
	ActionRecordCreate:  true,
	ActionRecordUpdate:  true,
	ActionRecordDelete:  true,
	ActionStreamRead:    true,
}

// KnownAction reports whether a is an action the policy decides on.
func KnownAction(a Action) bool { return knownActions[a] }

// Target is what an action is done to. TenantID is the tenant it belongs to
// (empty for an action on the platform itself, such as creating a tenant).
// For records, Collection names the collection, and EventIDs lists the events
// the record is linked to as it is stored: its own id for an event, its
// eventId and relationships.linkedEventIds for the others.
type Target struct {
	TenantID   string
	Collection string
	EventIDs   []string

	// Links, on a record create or update, says which events the record
	// links to before and after the write. Nil on an update means the
	// change is not known yet: only whether the record may be updated at
	// all is decided.
	Links *EventLinks

	// Key, on ActionKeyCreate, is the key to be made.
	Key *Key
}

// EventLinks are the events a record links to before a write (nil for a
// create) and after it: its eventId and relationships.linkedEventIds, and
// for an event its relationships.linkedEventIds.
type EventLinks struct {
	Before []string
	After  []string
}

// Authorize decides whether p may perform action on target. It returns nil
// when it may, an ENOTFOUND error when the target is outside p's reach (so
// that what p cannot see is indistinguishable from what does not exist), and
// an EFORBIDDEN error when p may see the target but not do this to it.
func Authorize(p *Principal, action Action, target Target) error {
	if !knownActions[action] {
		return Errorf(EFORBIDDEN, "this call declares no action the policy knows")
	}
	if action == ActionPublic {
		return nil
	}
	if p == nil {
		return Errorf(EUNAUTHORIZED, "a valid API key is required")
	}
	if p.Platform() {
		if action == ActionKeyCreate {
			if err := authorizeKeyGrant(p, target); err != nil {
				return err
			}
		}
		return authorizePlatform(p, action)
	}
	if target.TenantID == "" && action == ActionTenantCreate {
		return Errorf(EFORBIDDEN, "only platform admin keys may create tenants")
	}
	if target.TenantID != p.TenantID {
		return Errorf(ENOTFOUND, "not found")
	}
	if action == ActionTenantRead {
		// Every key of a tenant may see the tenant it belongs to.
		return nil
	}
	if action == ActionKeyCreate {
		if err := authorizeKeyGrant(p, target); err != nil {
			return err
		}
	}
	switch p.Role {
	case RoleAdmin:
		return authorizeTenantAdmin(action)
	case RoleReadOnly:
		return authorizeTenantReader(action)
	case RoleEventManager:
		return authorizeEventManager(p, action, target)
	}
	return Errorf(EFORBIDDEN, "unknown role")
}

func authorizePlatform(p *Principal, action Action) error {
	switch p.Role {
	case RoleAdmin:
		return nil
	case RoleReadOnly:
		if action == ActionKeyRead || action == ActionTenantExport {
			return Errorf(EFORBIDDEN, "a read-only key may not do this")
		}
		if readActions[action] {
			return nil
		}
		return Errorf(EFORBIDDEN, "a read-only key may not change anything")
	}
	return Errorf(EFORBIDDEN, "platform keys are admin or read-only")
}

// tenantAdminActions are what a tenant admin may do besides reading and writing
// its records: its own keys, webhooks and export. Creating, changing,
// deleting and importing tenants is for platform admins.
var tenantAdminActions = map[Action]bool{
	ActionTenantExport:  true,
	ActionKeyCreate:     true,
	ActionKeyRead:       true,
	ActionKeyRevoke:     true,
	ActionWebhookCreate: true,
	ActionWebhookRead:   true,
	ActionWebhookUpdate: true,
	ActionWebhookDelete: true,
	ActionRecordRead:    true,
	ActionRecordCreate:  true,
	ActionRecordUpdate:  true,
	ActionRecordDelete:  true,
	ActionStreamRead:    true,
}

func authorizeTenantAdmin(action Action) error {
	if tenantAdminActions[action] {
		return nil
	}
	return Errorf(EFORBIDDEN, "only platform admin keys may do this")
}

// authorizeTenantReader lets a tenant's read-only key read its records and
// follow their changes. Webhooks are not records: a subscription's URL often
// carries a credential of the receiver, so only admins see them.
func authorizeTenantReader(action Action) error {
	switch action {
	case ActionRecordRead, ActionStreamRead:
		return nil
	}
	return Errorf(EFORBIDDEN, "a read-only key may not do this")
}

func authorizeEventManager(p *Principal, action Action, target Target) error {
	switch action {
	case ActionStreamRead:
		// The stream shows each change only to those who may read it.
		return nil
	case ActionRecordRead, ActionRecordDelete:
		if !p.reachesAny(target.EventIDs) {
			return Errorf(ENOTFOUND, "not found")
		}
		if action == ActionRecordDelete && target.Collection == CollectionEvents {
			return Errorf(EFORBIDDEN, "an event manager may not delete events")
		}
		return nil
	case ActionRecordUpdate:
		if !p.reachesAny(target.EventIDs) {
			return Errorf(ENOTFOUND, "not found")
		}
		if target.Links == nil {
			return nil
		}
		for _, id := range target.Links.After {
			if !p.HasEvent(id) && !contains(target.Links.Before, id) {
				return Errorf(EFORBIDDEN,
					"an event manager may not link a record to events outside its reach")
			}
		}
		if target.Collection != CollectionEvents && !p.reachesAny(target.Links.After) {
			return Errorf(EFORBIDDEN, "an event manager may not move a record out of its reach")
		}
		return nil
	case ActionRecordCreate:
		if target.Collection == CollectionEvents {
			return Errorf(EFORBIDDEN, "an event manager may not create events")
		}
		var links []string
		if target.Links != nil {
			links = target.Links.After
		}
		if len(links) == 0 || !p.reachesAll(links) {
			return Errorf(EFORBIDDEN, "an event manager may only create records linked to its own events")
		}
		return nil
	}
	return Errorf(EFORBIDDEN, "an event manager may not do this")
}

// keyRank orders the roles of one tenant by what they may do, for the rule
// that no key makes a key wider than itself. An event manager's reach is
// also bounded by its events, which authorizeKeyGrant checks.
var keyRank = map[string]int{RoleReadOnly: 1, RoleEventManager: 1, RoleAdmin: 2}

// authorizeKeyGrant refuses a key that would be wider than p: a platform
// key made by a tenant key, a role above p's, events p does not reach, or a
// key that outlives p.
func authorizeKeyGrant(p *Principal, target Target) error {
	k := target.Key
	if k == nil {
		return Errorf(EFORBIDDEN, "a key to create must be described")
	}
	if k.TenantID != target.TenantID {
		return Errorf(EFORBIDDEN, "the key's tenant must be the target's")
	}
	if !p.Platform() && k.Platform() {
		return Errorf(EFORBIDDEN, "a tenant key may not create platform keys")
	}
	if keyRank[k.Role] == 0 || keyRank[k.Role] > keyRank[p.Role] {
		return Errorf(EFORBIDDEN, "a key may not create a key with a wider role than its own")
	}
	if p.Role != RoleAdmin && k.Role != p.Role {
		return Errorf(EFORBIDDEN, "a key may not create a key with another role than its own")
	}
	if p.Role == RoleEventManager && !p.reachesAll(k.EventIDs) {
		return Errorf(EFORBIDDEN, "a key may not create a key reaching events it does not reach")
	}
	if p.ExpiresAt != nil && (k.ExpiresAt == nil || k.ExpiresAt.After(*p.ExpiresAt)) {
		return Errorf(EFORBIDDEN, "a key may not create a key that expires after it does (%s)",
			p.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

func (p *Principal) reachesAny(ids []string) bool {
	for _, id := range ids {
		if p.HasEvent(id) {
			return true
		}
	}
	return false
}

func (p *Principal) reachesAll(ids []string) bool {
	for _, id := range ids {
		if !p.HasEvent(id) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
