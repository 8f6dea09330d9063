package handlers

import (
	"encoding/json"
	"net/http"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
	"github.com/runmerge/runmerge/webhook"
)

func (s *Server) registerWebhookRoutes() {
	if s.cfg.Webhooks != nil && s.metrics != nil {
		s.metrics.registry.MustRegister(webhookCollector{s.cfg.Webhooks})
	}
	s.route(http.MethodPost, "/v1/webhooks", runmerge.ActionWebhookCreate, s.createWebhook)
	s.route(http.MethodGet, "/v1/webhooks", runmerge.ActionWebhookRead, s.listWebhooks)
	s.route(http.MethodGet, "/v1/webhooks/:id", runmerge.ActionWebhookRead, s.getWebhook)
	s.route(http.MethodPatch, "/v1/webhooks/:id", runmerge.ActionWebhookUpdate, s.updateWebhook)
	s.route(http.MethodDelete, "/v1/webhooks/:id", runmerge.ActionWebhookDelete, s.deleteWebhook)
	s.route(http.MethodGet, "/v1/webhooks/:id/deliveries", runmerge.ActionWebhookRead, s.listDeliveries)
	s.route(http.MethodPost, "/v1/webhooks/:id/deliveries/:deliveryId/retry",
		runmerge.ActionWebhookUpdate, s.retryDelivery)
}

// webhookJSON is a webhook as the API shows it. Secret is set only in the
// answer to the request that created the webhook.
type webhookJSON struct {
	ID             string   `json:"id"`
	TenantID       *string  `json:"tenantId"`
	URL            string   `json:"url"`
	EventTypes     []string `json:"eventTypes"`
	Description    string   `json:"description"`
	Status         string   `json:"status"`
	DisabledReason *string  `json:"disabledReason"`
	CreatedAt      string   `json:"createdAt"`
	UpdatedAt      string   `json:"updatedAt"`
	Secret         string   `json:"secret,omitempty"`
}

func newWebhookJSON(w *tenantstore.Webhook) webhookJSON {
	out := webhookJSON{
		ID:          w.ID,
		URL:         w.URL,
		EventTypes:  w.EventTypes,
		Description: w.Description,
		Status:      w.Status,
		CreatedAt:   runmerge.FormatTime(w.CreatedAt),
		UpdatedAt:   runmerge.FormatTime(w.UpdatedAt),
	}
	if w.TenantID != "" {
		out.TenantID = &w.TenantID
	}
	if w.DisabledReason != "" {
		out.DisabledReason = &w.DisabledReason
	}
	return out
}

// deliveryJSON is one delivery of a webhook's log. The receiver's answer
// appears only as its status: its body is never kept or shown.
type deliveryJSON struct {
	ID             string  `json:"id"`
	WebhookID      string  `json:"webhookId"`
	TenantID       string  `json:"tenantId"`
	ChangeID       string  `json:"changeId"`
	EventType      string  `json:"eventType"`
	Status         string  `json:"status"`
	Attempts       int     `json:"attempts"`
	LastAttemptAt  *string `json:"lastAttemptAt"`
	NextAttemptAt  *string `json:"nextAttemptAt"`
	ResponseStatus *int    `json:"responseStatus"`
	Error          *string `json:"error"`
	CreatedAt      string  `json:"createdAt"`
}

func newDeliveryJSON(d *tenantstore.Delivery) deliveryJSON {
	out := deliveryJSON{
		ID:            d.ID,
		WebhookID:     d.WebhookID,
		TenantID:      d.TenantID,
		ChangeID:      d.ChangeID,
		EventType:     d.EventType,
		Status:        d.Status,
		Attempts:      d.Attempts,
		LastAttemptAt: formatTimePtr(d.LastAttemptAt),
		CreatedAt:     runmerge.FormatTime(d.CreatedAt),
	}
	if d.Status == tenantstore.DeliveryPending {
		out.NextAttemptAt = formatTimePtr(d.NextAttemptAt)
	}
	if d.ResponseStatus != 0 {
		out.ResponseStatus = &d.ResponseStatus
	}
	if d.LastError != "" {
		out.Error = &d.LastError
	}
	return out
}

var (
	webhookCreateFields = map[string]bool{"url": true, "eventTypes": true, "description": true, "tenantId": true}
	webhookUpdateFields = map[string]bool{"url": true, "eventTypes": true, "description": true, "status": true}
	webhookServerFields = map[string]bool{"id": true, "secret": true, "disabledReason": true,
		"createdAt": true, "updatedAt": true}
)

// maxDescriptionLen bounds a webhook's description, in characters.
const maxDescriptionLen = 1000

// dispatcher returns the webhook dispatcher, or EUNAVAILABLE when this
// server runs without one.
func (s *Server) dispatcher() (*webhook.Dispatcher, error) {
	if s.cfg.Webhooks == nil {
		return nil, runmerge.Errorf(runmerge.EUNAVAILABLE, "change events are not enabled on this server")
	}
	return s.cfg.Webhooks, nil
}

// createWebhook handles POST /v1/webhooks.
func (s *Server) createWebhook(c echo.Context) error {
	d, err := s.dispatcher()
	if err != nil {
		return err
	}
	p := principalOf(c)
	obj, err := readObject(c)
	if err != nil {
		return err
	}
	readOnly := map[string]bool{"status": true}
	for k := range webhookServerFields {
		readOnly[k] = true
	}
	if err := checkMembers(obj, webhookCreateFields, readOnly); err != nil {
		return err
	}

	tenantID, given, err := stringMember(obj, "tenantId")
	if err != nil {
		return err
	}
	switch {
	case !p.Platform() && given && tenantID != p.TenantID:
		return runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")
	case !p.Platform():
		tenantID = p.TenantID
	case given && !runmerge.ValidTenantID(tenantID):
		return runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")
	}
	if err := s.authorize(c, runmerge.Target{TenantID: tenantID}); err != nil {
		return err
	}
	in := webhook.WebhookInput{TenantID: tenantID}
	if err := readWebhookFields(obj, &in.URL, &in.EventTypes, &in.Description, true); err != nil {
		return err
	}
	if tenantID != "" {
		c.Set(ctxTenantID, tenantID)
		if _, err := s.store.Catalog.Tenant(c.Request().Context(), tenantID); err != nil {
			return err
		}
	}
	w, secret, err := d.CreateWebhook(c.Request().Context(), p, in)
	if err != nil {
		return err
	}
	out := newWebhookJSON(w)
	out.Secret = secret
	c.Response().Header().Set(echo.HeaderLocation, "/v1/webhooks/"+w.ID)
	return c.JSON(http.StatusCreated, out)
}

// readWebhookFields decodes url, eventTypes and description from obj into
// the destinations, which keep their values where a member is absent.
// With required, url and eventTypes must be present.
func readWebhookFields(obj map[string]json.RawMessage, url *string, types *[]string, desc *string, required bool) error {
	if v, ok, err := stringMember(obj, "url"); err != nil {
		return err
	} else if ok {
		*url = v
	} else if required {
		return fieldError(runmerge.EINVALID, "/url", "required", "is required")
	}
	if raw, ok := obj["eventTypes"]; ok {
		if err := json.Unmarshal(raw, types); err != nil || *types == nil {
			return fieldError(runmerge.EINVALID, "/eventTypes", "invalid_type", "must be an array of strings")
		}
	} else if required {
		return fieldError(runmerge.EINVALID, "/eventTypes", "required", "is required; [\"*\"] hears every type")
	}
	if v, ok, err := stringMember(obj, "description"); err != nil {
		return err
	} else if ok {
		if utf8.RuneCountInString(v) > maxDescriptionLen {
			return fieldError(runmerge.EINVALID, "/description", "invalid_length", "must be at most 1000 characters")
		}
		*desc = v
	}
	return nil
}

// errWebhookNotFound answers for a webhook that does not exist and for one
// outside the caller's reach alike.
var errWebhookNotFound = runmerge.Errorf(runmerge.ENOTFOUND, "webhook not found")

// webhookInReach loads webhook id and checks the route's action on it: a
// tenant key reaches its own tenant's webhooks only, and what it cannot
// reach answers 404.
//
// A key that may not do this even to its own tenant's webhooks is refused
// before the lookup, and one out of reach answers as one that does not
// exist, so that no answer tells which webhook ids exist.
func (s *Server) webhookInReach(c echo.Context) (*tenantstore.Webhook, error) {
	if err := s.authorize(c, runmerge.Target{TenantID: principalOf(c).TenantID}); err != nil {
		return nil, err
	}
	w, err := s.store.Catalog.Webhook(c.Request().Context(), c.Param("id"))
	if runmerge.ErrorCode(err) == runmerge.ENOTFOUND {
		return nil, errWebhookNotFound
	} else if err != nil {
		return nil, err
	}
	err = s.authorize(c, runmerge.Target{TenantID: w.TenantID})
	if runmerge.ErrorCode(err) == runmerge.ENOTFOUND {
		return nil, errWebhookNotFound
	} else if err != nil {
		return nil, err
	}
	if w.TenantID != "" {
		c.Set(ctxTenantID, w.TenantID)
	}
	return w, nil
}

// listWebhooks handles GET /v1/webhooks: a tenant key lists its tenant's
// webhooks; a platform key lists every webhook, or with tenantId one
// tenant's.
func (s *Server) listWebhooks(c echo.Context) error {
	p := principalOf(c)
	q, err := parseQuery(c, "tenantId", "cursor", "limit")
	if err != nil {
		return err
	}
	f := tenantstore.WebhookFilter{}
	if f.Limit, err = q.limit(); err != nil {
		return err
	}
	var cur struct {
		After string `json:"a"`
	}
	if _, err := q.cursor(&cur); err != nil {
		return err
	}
	f.After = cur.After
	tenantID, given := q.get("tenantId")
	switch {
	case !p.Platform() && given && tenantID != p.TenantID:
		return runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")
	case !p.Platform():
		tenantID, given = p.TenantID, true
	}
	if err := s.authorize(c, runmerge.Target{TenantID: tenantID}); err != nil {
		return err
	}
	if given {
		f.TenantID = &tenantID
	}
	f.Limit++
	list, err := s.store.Catalog.Webhooks(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := page[webhookJSON]{Data: make([]webhookJSON, 0, len(list))}
	if len(list) == f.Limit {
		list = list[:len(list)-1]
		cur.After = list[len(list)-1].ID
		out.NextCursor = encodeCursor(cur)
	}
	for _, w := range list {
		out.Data = append(out.Data, newWebhookJSON(w))
	}
	return c.JSON(http.StatusOK, out)
}

// getWebhook handles GET /v1/webhooks/:id.
func (s *Server) getWebhook(c echo.Context) error {
	w, err := s.webhookInReach(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newWebhookJSON(w))
}

// updateWebhook handles PATCH /v1/webhooks/:id: url, eventTypes,
// description, and status, to disable a webhook or enable it again.
func (s *Server) updateWebhook(c echo.Context) error {
	d, err := s.dispatcher()
	if err != nil {
		return err
	}
	w, err := s.webhookInReach(c)
	if err != nil {
		return err
	}
	obj, err := readObject(c)
	if err != nil {
		return err
	}
	readOnly := map[string]bool{"tenantId": true}
	for k := range webhookServerFields {
		readOnly[k] = true
	}
	if err := checkMembers(obj, webhookUpdateFields, readOnly); err != nil {
		return err
	}
	url, types, desc := w.URL, []string(nil), w.Description
	if err := readWebhookFields(obj, &url, &types, &desc, false); err != nil {
		return err
	}
	var upd tenantstore.WebhookUpdate
	if _, ok := obj["url"]; ok {
		upd.URL = &url
	}
	if _, ok := obj["eventTypes"]; ok {
		if types == nil {
			types = []string{}
		}
		upd.EventTypes = types
	}
	if _, ok := obj["description"]; ok {
		upd.Description = &desc
	}
	if status, ok, err := stringMember(obj, "status"); err != nil {
		return err
	} else if ok {
		if status != tenantstore.WebhookActive && status != tenantstore.WebhookDisabled {
			return fieldError(runmerge.EINVALID, "/status", "invalid_value", "must be active or disabled")
		}
		upd.Status = &status
		if status == tenantstore.WebhookDisabled {
			reason := "disabled through the API"
			upd.DisabledReason = &reason
		}
	}
	w, err = d.UpdateWebhook(c.Request().Context(), w.ID, upd)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newWebhookJSON(w))
}

// deleteWebhook handles DELETE /v1/webhooks/:id.
func (s *Server) deleteWebhook(c echo.Context) error {
	d, err := s.dispatcher()
	if err != nil {
		return err
	}
	w, err := s.webhookInReach(c)
	if err != nil {
		return err
	}
	if err := d.DeleteWebhook(c.Request().Context(), w.ID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// listDeliveries handles GET /v1/webhooks/:id/deliveries, newest first.
func (s *Server) listDeliveries(c echo.Context) error {
	w, err := s.webhookInReach(c)
	if err != nil {
		return err
	}
	q, err := parseQuery(c, "cursor", "limit")
	if err != nil {
		return err
	}
	limit, err := q.limit()
	if err != nil {
		return err
	}
	var cur struct {
		Before string `json:"b"`
	}
	if _, err := q.cursor(&cur); err != nil {
		return err
	}
	list, err := s.store.Catalog.Deliveries(c.Request().Context(), w.ID, cur.Before, limit+1)
	if err != nil {
		return err
	}
	out := page[deliveryJSON]{Data: make([]deliveryJSON, 0, len(list))}
	if len(list) > limit {
		list = list[:limit]
		cur.Before = list[len(list)-1].ID
		out.NextCursor = encodeCursor(cur)
	}
	for _, del := range list {
		out.Data = append(out.Data, newDeliveryJSON(del))
	}
	return c.JSON(http.StatusOK, out)
}

// retryDelivery handles POST /v1/webhooks/:id/deliveries/:deliveryId/retry:
// 202, and the delivery is sent again as soon as a worker is free.
func (s *Server) retryDelivery(c echo.Context) error {
	d, err := s.dispatcher()
	if err != nil {
		return err
	}
	w, err := s.webhookInReach(c)
	if err != nil {
		return err
	}
	del, err := d.RetryDelivery(c.Request().Context(), w.ID, c.Param("deliveryId"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, newDeliveryJSON(del))
}
