package handlers

import (
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
)

// tenantJSON is a tenant as the API shows it.
type tenantJSON struct {
	ID        string                `json:"id"`
	Name      string                `json:"name"`
	Status    string                `json:"status"`
	CreatedAt string                `json:"createdAt"`
	UpdatedAt string                `json:"updatedAt"`
	Stats     *runmerge.TenantStats `json:"stats,omitempty"`
}

func newTenantJSON(t *runmerge.Tenant) tenantJSON {
	return tenantJSON{
		ID:        t.ID,
		Name:      t.Name,
		Status:    t.Status,
		CreatedAt: runmerge.FormatTime(t.CreatedAt),
		UpdatedAt: runmerge.FormatTime(t.UpdatedAt),
	}
}

var (
	tenantCreateFields = map[string]bool{"id": true, "name": true}
	tenantUpdateFields = map[string]bool{"name": true, "status": true}
	tenantServerFields = map[string]bool{"createdAt": true, "updatedAt": true, "stats": true}
)

// maxNameLen bounds names of tenants, keys and the like.
const maxNameLen = 200

func validateName(name, pointer string) error {
	if strings.TrimSpace(name) == "" || len(name) > maxNameLen {
		return fieldError(runmerge.EINVALID, pointer, "invalid_length", "must be 1 to 200 characters, not all blank")
	}
	return nil
}

// createTenant handles POST /v1/tenants.
func (s *Server) createTenant(c echo.Context) error {
	if err := s.authorize(c, runmerge.Target{}); err != nil {
		return err
	}
	obj, err := readObject(c)
	if err != nil {
		return err
	}
	readOnly := map[string]bool{"status": true}
	for k := range tenantServerFields {
		readOnly[k] = true
	}
	if err := checkMembers(obj, tenantCreateFields, readOnly); err != nil {
		return err
	}
	id, hasID, err := stringMember(obj, "id")
	if err != nil {
		return err
	}
	if !hasID {
		id = uuid.Must(uuid.NewV7()).String()
	}
	if err := runmerge.ValidateTenantID(id, "/id"); err != nil {
		return err
	}
	name, hasName, err := stringMember(obj, "name")
	if err != nil {
		return err
	}
	if !hasName {
		name = id
	} else if err := validateName(name, "/name"); err != nil {
		return err
	}

	t, err := s.store.CreateTenant(c.Request().Context(), id, name)
	if err != nil {
		return err
	}
	c.Set(ctxTenantID, t.ID)
	c.Response().Header().Set(echo.HeaderLocation, "/v1/tenants/"+t.ID)
	return c.JSON(http.StatusCreated, newTenantJSON(t))
}

// tenantCursor is the position of a page of tenants.
type tenantCursor struct {
	After string `json:"a"`
}

// listTenants handles GET /v1/tenants. A tenant key sees its own tenant.
func (s *Server) listTenants(c echo.Context) error {
	q, err := parseQuery(c, "cursor", "limit")
	if err != nil {
		return err
	}
	limit, err := q.limit()
	if err != nil {
		return err
	}
	var cur tenantCursor
	if _, err := q.cursor(&cur); err != nil {
		return err
	}
	p := principalOf(c)
	if !p.Platform() {
		return s.listOwnTenant(c, p, cur)
	}
	if err := s.authorize(c, runmerge.Target{}); err != nil {
		return err
	}
	list, err := s.store.Catalog.Tenants(c.Request().Context(),
		runmerge.TenantFilter{After: cur.After, Limit: limit + 1})
	if err != nil {
		return err
	}
	out := page[tenantJSON]{Data: make([]tenantJSON, 0, len(list))}
	if len(list) > limit {
		list = list[:limit]
		out.NextCursor = encodeCursor(tenantCursor{After: list[limit-1].ID})
	}
	for _, t := range list {
		out.Data = append(out.Data, newTenantJSON(t))
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) listOwnTenant(c echo.Context, p *runmerge.Principal, cur tenantCursor) error {
	out := page[tenantJSON]{Data: []tenantJSON{}}
	if cur.After >= p.TenantID {
		return c.JSON(http.StatusOK, out)
	}
	t, err := s.store.Catalog.Tenant(c.Request().Context(), p.TenantID)
	if err != nil {
		return err
	}
	out.Data = append(out.Data, newTenantJSON(t))
	return c.JSON(http.StatusOK, out)
}

// getTenant handles GET /v1/tenants/:id, with the tenant file's stats.
func (s *Server) getTenant(c echo.Context) error {
	id := c.Param("id")
	if err := s.authorize(c, runmerge.Target{TenantID: id}); err != nil {
		return err
	}
	if _, err := parseQuery(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	t, err := s.store.Catalog.Tenant(ctx, id)
	if err != nil {
		return err
	}
	c.Set(ctxTenantID, t.ID)
	out := newTenantJSON(t)
	// Stats count every record of the tenant, so they are shown only to
	// keys that may read a record linked to no event: every key but an
	// event manager, whose reach is its events.
	if runmerge.Authorize(principalOf(c), runmerge.ActionRecordRead, runmerge.Target{TenantID: id}) != nil {
		return c.JSON(http.StatusOK, out)
	}
	stats, err := s.store.TenantStats(ctx, id)
	if err != nil {
		return err
	}
	out.Stats = stats
	return c.JSON(http.StatusOK, out)
}

// updateTenant handles PATCH /v1/tenants/:id: rename, suspend, resume.
func (s *Server) updateTenant(c echo.Context) error {
	id := c.Param("id")
	if err := s.authorize(c, runmerge.Target{TenantID: id}); err != nil {
		return err
	}
	obj, err := readObject(c)
	if err != nil {
		return err
	}
	readOnly := map[string]bool{"id": true}
	for k := range tenantServerFields {
		readOnly[k] = true
	}
	if err := checkMembers(obj, tenantUpdateFields, readOnly); err != nil {
		return err
	}
	var upd runmerge.TenantUpdate
	if name, ok, err := stringMember(obj, "name"); err != nil {
		return err
	} else if ok {
		if err := validateName(name, "/name"); err != nil {
			return err
		}
		upd.Name = &name
	}
	if status, ok, err := stringMember(obj, "status"); err != nil {
		return err
	} else if ok {
		if !runmerge.ValidTenantStatus(status) {
			return fieldError(runmerge.EINVALID, "/status", "invalid_enum", "must be active or suspended")
		}
		upd.Status = &status
	}

	if !runmerge.ValidTenantID(id) {
		return runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")
	}
	c.Set(ctxTenantID, id)
	t, err := s.store.Catalog.UpdateTenant(c.Request().Context(), id, upd)
	if err != nil {
		return err
	}
	// A suspension takes effect on the next request.
	s.auth.forget()
	return c.JSON(http.StatusOK, newTenantJSON(t))
}

// deleteTenant handles DELETE /v1/tenants/:id.
func (s *Server) deleteTenant(c echo.Context) error {
	id := c.Param("id")
	if err := s.authorize(c, runmerge.Target{TenantID: id}); err != nil {
		return err
	}
	c.Set(ctxTenantID, id)
	if err := s.store.DeleteTenant(c.Request().Context(), id); err != nil {
		return err
	}
	// The tenant's keys went with it; a cached one must not outlive it,
	// nor reach a new tenant given the same id.
	s.auth.forget()
	return c.NoContent(http.StatusNoContent)
}
