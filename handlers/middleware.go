package handlers

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
)

// Keys of values kept on the Echo context.
const (
	ctxRequestID  = "runmerge.request_id"
	ctxTenantID   = "runmerge.tenant"
	ctxKeyID      = "runmerge.key"
	ctxRetryAfter = "runmerge.retry_after"
)

// headerRequestID carries the request id in and out.
const headerRequestID = "X-Request-Id"

var clientRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID gives every request an id: the client's X-Request-Id when it is
// short and plain, else a new one. Every response carries it.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(headerRequestID)
		if !clientRequestID.MatchString(id) {
			id = uuid.NewString()
		}
		c.Set(ctxRequestID, id)
		c.Response().Header().Set(headerRequestID, id)
		return next(c)
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}

// recover turns a panic in a handler into a 500, logged with its stack; the
// client sees only "internal error" and the request id.
func (s *Server) recover(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.log.Error("panic in handler", "request_id", requestID(c), "route", c.Path(),
					"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return next(c)
	}
}

// accessLog writes one record per request once it is answered.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			// Answer now, so that the record carries the status sent.
			c.Error(err)
		}
		req := c.Request()
		attrs := []any{
			"method", req.Method,
			"route", c.Path(),
			"status", c.Response().Status,
			"duration", time.Since(start),
			"request_id", requestID(c),
		}
		if t, ok := c.Get(ctxTenantID).(string); ok && t != "" {
			attrs = append(attrs, "tenant", t)
		}
		if k, ok := c.Get(ctxKeyID).(string); ok && k != "" {
			attrs = append(attrs, "key", k)
		}
		if ik := req.Header.Get("X-Integration-Key"); ik != "" {
			attrs = append(attrs, "integration", s.integrationKey(ik))
		}
		s.log.InfoContext(req.Context(), "request", attrs...)
		return nil
	}
}

// integrationKey is how the log shows a client's x-integration-key: cut
// short, and never an API key or the root key sent there by mistake,
// which would put a secret in the log.
func (s *Server) integrationKey(ik string) string {
	if strings.Contains(ik, "rmk_") || s.cfg.RootKey != "" && strings.Contains(ik, s.cfg.RootKey) {
		return "(an API key; not logged)"
	}
	if len(ik) > 128 {
		ik = ik[:128]
	}
	return ik
}

// bodyLimit caps request bodies, chunked ones included: a declared length
// over the cap is refused at once, and reading past it fails.
func (s *Server) bodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		limit := s.cfg.MaxBodyBytes
		if strings.HasSuffix(c.Path(), "/import") {
			limit = s.cfg.MaxImportBytes
		}
		req := c.Request()
		if req.ContentLength > limit {
			return runmerge.Errorf(runmerge.ETOOLARGE, "the body is larger than %d bytes", limit)
		}
		req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
		return next(c)
	}
}

// errUnauthorized is the one answer to every key that does not authenticate,
// so that a caller cannot tell an unknown key from a revoked or expired one.
var errUnauthorized = runmerge.Errorf(runmerge.EUNAUTHORIZED, "a valid API key is required")

// authenticate finds the principal behind the request's key, on every route
// that is not public.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		route := c.Request().Method + " " + c.Path()
		action, ok := s.routes[route]
		if !ok && s.registered()[route] {
			// A route added without declaring its action: refuse it rather
			// than serve it without a key.
			return fmt.Errorf("route %s declares no action", route)
		}
		if !ok || action == runmerge.ActionPublic {
			// Unknown routes fall through to the router's 404 or 405.
			return next(c)
		}
		secret := keyFromRequest(c.Request())
		if secret == "" {
			return errUnauthorized
		}
		p, err := s.auth.principal(c.Request().Context(), secret)
		if err != nil {
			return err
		}
		c.Set(ctxKeyID, p.KeyID)
		ctx := runmerge.NewContextWithPrincipal(c.Request().Context(), p)
		c.SetRequest(c.Request().WithContext(ctx))
		if err := checkTenantParam(c.Request(), p); err != nil {
			return err
		}
		return next(c)
	}
}

// checkTenantParam answers 404 to a tenant key that names another tenant
// in the query, on every route: also on those whose tenant comes from the
// body or the key, which would otherwise ignore the parameter and act on
// the key's own tenant as if the other had been reached.
func checkTenantParam(r *http.Request, p *runmerge.Principal) error {
	if p.Platform() || !strings.Contains(r.URL.RawQuery, "tenantId") {
		return nil
	}
	values, _ := url.ParseQuery(r.URL.RawQuery)
	for _, id := range values["tenantId"] {
		if id != p.TenantID {
			return runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")
		}
	}
	return nil
}

// registered returns the set of "METHOD /path" that Echo's router serves,
// built on first use, once every route is in place.
func (s *Server) registered() map[string]bool {
	s.registeredOnce.Do(func() {
		s.echoRoutes = make(map[string]bool)
		for _, r := range s.echo.Routes() {
			s.echoRoutes[r.Method+" "+r.Path] = true
		}
	})
	return s.echoRoutes
}

// keyFromRequest returns the key sent in x-api-key or as a bearer token.
func keyFromRequest(r *http.Request) string {
	if k := r.Header.Get("X-Api-Key"); k != "" {
		return k
	}
	auth := r.Header.Get("Authorization")
	if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		return strings.TrimSpace(auth[7:])
	}
	return ""
}

// authorize checks the route's action against target for the request's
// principal.
func (s *Server) authorize(c echo.Context, target runmerge.Target) error {
	action := s.routes[c.Request().Method+" "+c.Path()]
	return runmerge.Authorize(runmerge.PrincipalFromContext(c.Request().Context()), action, target)
}

func principalOf(c echo.Context) *runmerge.Principal {
	return runmerge.PrincipalFromContext(c.Request().Context())
}
