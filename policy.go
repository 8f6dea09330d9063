package runmerge

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

// Target is what an action is done to. TenantID is the tenant it belongs to
// (empty for an action on the platform itself, such as creating a tenant).
// For records, Collection names the collection, and EventIDs lists the events
// the record is linked to: its own id for an event, its eventId and
// relationships.linkedEventIds for the others.
type Target struct {
	TenantID   string
	Collection string
	EventIDs   []string
}

// Authorize decides whether p may perform action on target. It returns nil
// when it may, an ENOTFOUND error when the target is outside p's reach (so
// that what p cannot see is indistinguishable from what does not exist), and
// an EFORBIDDEN error when p may see the target but not do this to it.
func Authorize(p *Principal, action Action, target Target) error {
	if action == ActionPublic {
		return nil
	}
	if p == nil {
		return Errorf(EUNAUTHORIZED, "a valid API key is required")
	}
	if p.Platform() {
		return authorizePlatform(p, action)
	}
	if target.TenantID != p.TenantID {
		return Errorf(ENOTFOUND, "not found")
	}
	if action == ActionTenantRead {
		// Every key of a tenant may see the tenant it belongs to.
		return nil
	}
	switch p.Role {
	case RoleAdmin:
		return authorizeTenantAdmin(action, target)
	case RoleReadOnly:
		return authorizeTenantReader(action, target)
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

func authorizeTenantAdmin(action Action, target Target) error {
	if tenantAdminActions[action] {
		return nil
	}
	return Errorf(EFORBIDDEN, "only platform admin keys may do this")
}

func authorizeTenantReader(action Action, target Target) error {
	switch action {
	case ActionRecordRead, ActionStreamRead, ActionWebhookRead:
		return nil
	}
	return Errorf(EFORBIDDEN, "a read-only key may not do this")
}

func authorizeEventManager(p *Principal, action Action, target Target) error {
	switch action {
	case ActionStreamRead, ActionWebhookRead:
		return nil
	case ActionRecordRead, ActionRecordUpdate, ActionRecordDelete:
		if !p.reachesAny(target.EventIDs) {
			return Errorf(ENOTFOUND, "not found")
		}
		if action == ActionRecordDelete && target.Collection == CollectionEvents {
			return Errorf(EFORBIDDEN, "an event manager may not delete events")
		}
		return nil
	case ActionRecordCreate:
		if target.Collection == CollectionEvents {
			return Errorf(EFORBIDDEN, "an event manager may not create events")
		}
		if len(target.EventIDs) == 0 || !p.reachesAll(target.EventIDs) {
			return Errorf(EFORBIDDEN, "an event manager may only create records linked to its own events")
		}
		return nil
	}
	return Errorf(EFORBIDDEN, "an event manager may not do this")
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
