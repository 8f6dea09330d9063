package runmerge

import (
	"regexp"
	"time"
)

// Tenant statuses.
const (
	TenantActive    = "active"
	TenantSuspended = "suspended"
)

// Tenant is one customer organisation of a vendor. Its records live in a
// SQLite file of its own; the catalog keeps the rest.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"-"`
	UpdatedAt time.Time `json:"-"`
}

// TenantStats describes a tenant's file: its size, its live records per
// collection and whether the pool holds it open right now.
type TenantStats struct {
	FileSizeBytes int64            `json:"fileSizeBytes"`
	Records       map[string]int64 `json:"records"`
	Open          bool             `json:"open"`
}

// TenantUpdate is a change to a tenant; nil fields stay as they are.
type TenantUpdate struct {
	Name   *string
	Status *string
}

// TenantFilter selects a page of tenants, ordered by id.
type TenantFilter struct {
	After string // only tenants whose id sorts after this one
	Limit int
}

var tenantIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidTenantID reports whether id may name a tenant. Every id passes this
// check before it becomes part of a file path, so an id can never climb out
// of the tenants directory or name another file.
func ValidTenantID(id string) bool {
	return tenantIDPattern.MatchString(id)
}

// ValidateTenantID returns a validation error for an id that may not name a
// tenant, pointing at the given JSON pointer.
func ValidateTenantID(id, pointer string) error {
	if ValidTenantID(id) {
		return nil
	}
	return &Error{
		Code:    EINVALID,
		Message: "invalid tenant id",
		Fields: []FieldError{{
			Pointer: pointer,
			Code:    "invalid_format",
			Detail:  "must match ^[a-z0-9][a-z0-9-]{0,62}$",
		}},
	}
}

// ValidTenantStatus reports whether s is a tenant status.
func ValidTenantStatus(s string) bool {
	return s == TenantActive || s == TenantSuspended
}
