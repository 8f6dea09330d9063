package runmerge

import (
	"context"
	"time"
)

// Principal is who a request acts as: the key that authenticated it, or the
// operator's root key from the configuration.
type Principal struct {
	KeyID    string   // empty for the root key
	TenantID string   // empty for a platform principal
	Role     string   // RoleAdmin, RoleEventManager or RoleReadOnly
	EventIDs []string // for RoleEventManager: the events within reach

	// ExpiresAt is when the key stops working, nil if never. No key it
	// creates may outlive it.
	ExpiresAt *time.Time
}

// Platform reports whether the principal works across tenants.
func (p *Principal) Platform() bool { return p.TenantID == "" }

// CanReadTenant reports whether the principal may read anything of tenant id.
func (p *Principal) CanReadTenant(id string) bool {
	return p.Platform() || p.TenantID == id
}

// HasEvent reports whether id is one of the event manager's events.
func (p *Principal) HasEvent(id string) bool {
	for _, e := range p.EventIDs {
		if e == id {
			return true
		}
	}
	return false
}

type principalKey struct{}

// NewContextWithPrincipal returns a copy of ctx carrying p.
func NewContextWithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the principal carried by ctx, or nil.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
