package handlers

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

func (s *Server) registerKeyRoutes() {
	s.route(http.MethodPost, "/v1/keys", runmerge.ActionKeyCreate, s.createKey)
	s.route(http.MethodGet, "/v1/keys", runmerge.ActionKeyRead, s.listKeys)
	s.route(http.MethodGet, "/v1/keys/:id", runmerge.ActionKeyRead, s.getKey)
	s.route(http.MethodDelete, "/v1/keys/:id", runmerge.ActionKeyRevoke, s.revokeKey)
}

// keyJSON is a key as the API shows it. Secret is set only in the answer to
// the request that created the key; the hash is never shown.
type keyJSON struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	TenantID   *string  `json:"tenantId"`
	Role       string   `json:"role"`
	EventIDs   []string `json:"eventIds"`
	CreatedAt  string   `json:"createdAt"`
	ExpiresAt  *string  `json:"expiresAt"`
	LastUsedAt *string  `json:"lastUsedAt"`
	RevokedAt  *string  `json:"revokedAt"`
	Secret     string   `json:"key,omitempty"`
}

func newKeyJSON(k *runmerge.Key) keyJSON {
	out := keyJSON{
		ID:         k.ID,
		Name:       k.Name,
		Role:       k.Role,
		EventIDs:   k.EventIDs,
		CreatedAt:  runmerge.FormatTime(k.CreatedAt),
		ExpiresAt:  formatTimePtr(k.ExpiresAt),
		LastUsedAt: formatTimePtr(k.LastUsedAt),
		RevokedAt:  formatTimePtr(k.RevokedAt),
	}
	if out.EventIDs == nil {
		out.EventIDs = []string{}
	}
	if k.TenantID != "" {
		out.TenantID = &k.TenantID
	}
	return out
}

func formatTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := runmerge.FormatTime(*t)
	return &s
}

var (
	keyWritable = map[string]bool{"name": true, "tenantId": true, "role": true, "eventIds": true, "expiresAt": true}
	keyReadOnly = map[string]bool{"id": true, "createdAt": true, "lastUsedAt": true, "revokedAt": true,
		"key": true, "hash": true}
)

// createKey handles POST /v1/keys. A key never creates a key wider than
// itself: platform keys are made by platform admins only, and a tenant
// admin makes keys of its own tenant.
func (s *Server) createKey(c echo.Context) error {
	obj, err := readObject(c)
	if err != nil {
		return err
	}
	if err := checkMembers(obj, keyWritable, keyReadOnly); err != nil {
		return err
	}
	p := principalOf(c)
	k := &runmerge.Key{ID: uuid.Must(uuid.NewV7()).String(), CreatedAt: runmerge.Now()}
	if k.Name, _, err = stringMember(obj, "name"); err != nil {
		return err
	}
	if err := validateName(k.Name, "/name"); err != nil {
		return err
	}
	var hasTenant bool
	if raw, ok := obj["tenantId"]; ok && string(raw) != "null" {
		if k.TenantID, hasTenant, err = stringMember(obj, "tenantId"); err != nil {
			return err
		}
		// A platform key is asked for by leaving tenantId out; an empty
		// one is a mistake, not a request for the widest key.
		if err := runmerge.ValidateTenantID(k.TenantID, "/tenantId"); err != nil {
			return err
		}
	}
	if !hasTenant && !p.Platform() {
		k.TenantID = p.TenantID // a tenant admin's keys belong to its tenant
	}
	if k.Role, _, err = stringMember(obj, "role"); err != nil {
		return err
	}
	if !runmerge.ValidRole(k.Role) {
		return fieldError(runmerge.EINVALID, "/role", "invalid_enum", "must be admin, event_manager or read_only")
	}
	if k.TenantID == "" && k.Role == runmerge.RoleEventManager {
		return fieldError(runmerge.EINVALID, "/role", "invalid_enum", "a platform key is admin or read_only")
	}
	if err := decodeEventIDs(obj, k); err != nil {
		return err
	}
	if err := decodeExpiry(obj, k); err != nil {
		return err
	}

	// The policy refuses a key wider than its maker: another tenant's, a
	// platform key made by a tenant key, a wider role, or a later expiry.
	if err := s.authorize(c, runmerge.Target{TenantID: k.TenantID, Key: k}); err != nil {
		return errKeyTenantNotFound(err)
	}
	ctx := c.Request().Context()
	if k.TenantID != "" {
		c.Set(ctxTenantID, k.TenantID)
		if _, err := s.store.Catalog.Tenant(ctx, k.TenantID); err != nil {
			return errKeyTenantNotFound(err)
		}
		if err := s.checkEventIDs(c, k); err != nil {
			return err
		}
	}

	secret := runmerge.NewKeySecret()
	k.Hash = runmerge.HashKeySecret(secret)
	if err := s.store.Catalog.CreateKey(ctx, k); err != nil {
		return err
	}
	s.auth.forget()
	out := newKeyJSON(k)
	out.Secret = secret
	c.Response().Header().Set(echo.HeaderLocation, "/v1/keys/"+k.ID)
	return c.JSON(http.StatusCreated, out)
}

// decodeEventIDs reads eventIds: required, and only allowed, for event
// managers.
func decodeEventIDs(obj map[string]json.RawMessage, k *runmerge.Key) error {
	raw, ok := obj["eventIds"]
	if k.Role != runmerge.RoleEventManager {
		if ok && string(raw) != "null" && string(raw) != "[]" {
			return fieldError(runmerge.EINVALID, "/eventIds", "not_allowed", "only event_manager keys name events")
		}
		return nil
	}
	if !ok || json.Unmarshal(raw, &k.EventIDs) != nil || len(k.EventIDs) == 0 {
		return fieldError(runmerge.EINVALID, "/eventIds", "required", "an event_manager key needs a non-empty array of event ids")
	}
	if len(k.EventIDs) > 1000 {
		return fieldError(runmerge.EINVALID, "/eventIds", "out_of_range", "at most 1000 events")
	}
	seen := make(map[string]bool, len(k.EventIDs))
	ids := k.EventIDs[:0]
	for _, id := range k.EventIDs {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	k.EventIDs = ids
	return nil
}

func decodeExpiry(obj map[string]json.RawMessage, k *runmerge.Key) error {
	raw, ok := obj["expiresAt"]
	if !ok || string(raw) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return fieldError(runmerge.EINVALID, "/expiresAt", "invalid_type", "must be an RFC 3339 time")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fieldError(runmerge.EINVALID, "/expiresAt", "invalid_format", "must be an RFC 3339 time")
	}
	if !t.After(time.Now()) {
		return fieldError(runmerge.EINVALID, "/expiresAt", "out_of_range", "must be in the future")
	}
	t = t.UTC().Truncate(time.Millisecond)
	k.ExpiresAt = &t
	return nil
}

// checkEventIDs refuses an event manager key naming events that do not
// exist in its tenant.
func (s *Server) checkEventIDs(c echo.Context, k *runmerge.Key) error {
	if len(k.EventIDs) == 0 {
		return nil
	}
	ctx := c.Request().Context()
	l, err := s.store.Pool.Acquire(ctx, k.TenantID)
	if err != nil {
		return err
	}
	defer l.Release()
	missing, err := l.DB().MissingEvents(ctx, k.EventIDs)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fieldError(runmerge.EINVALID, "/eventIds/"+strconv.Itoa(missing[0]), "unknown_reference",
			"no event with this id in the tenant")
	}
	return nil
}

// keyCursor is the position of a page of keys.
type keyCursor struct {
	After string `json:"a"`
}

// listKeys handles GET /v1/keys: every key for a platform admin (or those
// of one tenant with tenantId), a tenant's keys for its admin.
func (s *Server) listKeys(c echo.Context) error {
	q, err := parseQuery(c, "tenantId", "cursor", "limit")
	if err != nil {
		return err
	}
	limit, err := q.limit()
	if err != nil {
		return err
	}
	var cur keyCursor
	if _, err := q.cursor(&cur); err != nil {
		return err
	}
	p := principalOf(c)
	f := tenantstore.KeyFilter{After: cur.After, Limit: limit + 1}
	if id, ok := q.get("tenantId"); ok {
		f.TenantID = &id
	} else if !p.Platform() {
		f.TenantID = &p.TenantID
	}
	tenant := ""
	if f.TenantID != nil {
		tenant = *f.TenantID
	}
	if err := s.authorize(c, runmerge.Target{TenantID: tenant}); err != nil {
		return err
	}
	list, err := s.store.Catalog.Keys(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := page[keyJSON]{Data: make([]keyJSON, 0, len(list))}
	if len(list) > limit {
		list = list[:limit]
		out.NextCursor = encodeCursor(keyCursor{After: list[limit-1].ID})
	}
	for _, k := range list {
		out.Data = append(out.Data, newKeyJSON(k))
	}
	return c.JSON(http.StatusOK, out)
}

// errKeyNotFound answers for a key that does not exist and for one outside
// the caller's reach alike, so that the two cannot be told apart.
var errKeyNotFound = runmerge.Errorf(runmerge.ENOTFOUND, "key not found")

// errKeyTenantNotFound turns the policy's or the catalog's ENOTFOUND for
// the tenant a key is made for into one answer.
func errKeyTenantNotFound(err error) error {
	if runmerge.ErrorCode(err) == runmerge.ENOTFOUND {
		return runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")
	}
	return err
}

// keyInReach returns key id if the caller may act on it, else ENOTFOUND. A
// caller that may not act on keys even of its own tenant is refused before
// the lookup, so that it learns nothing about which keys exist.
func (s *Server) keyInReach(c echo.Context) (*runmerge.Key, error) {
	p := principalOf(c)
	if err := s.authorize(c, runmerge.Target{TenantID: p.TenantID}); err != nil {
		return nil, err
	}
	k, err := s.store.Catalog.Key(c.Request().Context(), c.Param("id"))
	if runmerge.ErrorCode(err) == runmerge.ENOTFOUND {
		return nil, errKeyNotFound
	} else if err != nil {
		return nil, err
	}
	err = s.authorize(c, runmerge.Target{TenantID: k.TenantID})
	if runmerge.ErrorCode(err) == runmerge.ENOTFOUND {
		return nil, errKeyNotFound
	} else if err != nil {
		return nil, err
	}
	return k, nil
}

// getKey handles GET /v1/keys/:id.
func (s *Server) getKey(c echo.Context) error {
	if _, err := parseQuery(c); err != nil {
		return err
	}
	k, err := s.keyInReach(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newKeyJSON(k))
}

// revokeKey handles DELETE /v1/keys/:id. The key answers 401 at once.
func (s *Server) revokeKey(c echo.Context) error {
	k, err := s.keyInReach(c)
	if err != nil {
		return err
	}
	if err := s.store.Catalog.RevokeKey(c.Request().Context(), k.ID); err != nil {
		return err
	}
	s.auth.forget()
	return c.NoContent(http.StatusNoContent)
}
