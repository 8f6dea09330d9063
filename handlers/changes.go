package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
)

// noteChanges tells the webhook dispatcher about writes. Before a record
// write it marks the tenant in the catalog (webhook.Dispatcher.BeginWrite),
// so that a change that commits just before a crash is still delivered
// after the restart; the store tells the dispatcher of the commit itself.
// After a tenant is created, changed or deleted it wakes the dispatcher for
// the tenant.* event, and after an import it moves the tenant's feed past
// the imported history.
func (s *Server) noteChanges(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		d := s.cfg.Webhooks
		if d == nil {
			return next(c)
		}
		ctx := c.Request().Context()
		switch s.routes[c.Request().Method+" "+c.Path()] {
		case runmerge.ActionRecordCreate, runmerge.ActionRecordUpdate, runmerge.ActionRecordDelete:
			if id := writeTenant(c); id != "" {
				if err := d.BeginWrite(ctx, id); err != nil {
					return err
				}
			}
			return next(c)
		case runmerge.ActionTenantCreate, runmerge.ActionTenantUpdate, runmerge.ActionTenantDelete:
			err := next(c)
			d.NotifyTenants()
			return err
		case runmerge.ActionTenantImport:
			err := next(c)
			if err == nil && c.Response().Status < http.StatusMultipleChoices {
				id := c.Param("id")
				if rerr := d.TenantReplaced(ctx, id); rerr != nil {
					s.log.Error("move change feed past an import", "tenant", id, "error", rerr)
				}
				d.NotifyTenants()
			}
			return err
		}
		return next(c)
	}
}

// writeTenant returns the tenant a record write names, as tenantFor will
// resolve it, or "" when it names none the write could reach.
func writeTenant(c echo.Context) string {
	p := principalOf(c)
	if p == nil {
		return ""
	}
	id := p.TenantID
	if p.Platform() {
		id = c.QueryParam("tenantId")
	}
	if !runmerge.ValidTenantID(id) {
		return ""
	}
	return id
}
