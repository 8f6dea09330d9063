// Package handlers is Runmerge's HTTP API: the Echo server, its middleware,
// and a handler per route. It is the only package that imports Echo.
package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
	"github.com/runmerge/runmerge/webhook"
)

// Config configures the HTTP server.
type Config struct {
	Addr              string
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration

	MaxBodyBytes   int64 // largest JSON body
	MaxImportBytes int64 // largest tenant import

	// RootKey, when set, is a platform admin key given by the operator.
	RootKey string

	// RatePerKey is each key's sustained request rate per second, with
	// bursts of RateBurst; 0 means no limit.
	RatePerKey float64
	RateBurst  int

	MetricsEnabled bool

	// Webhooks delivers change events and feeds the event stream; without
	// it the webhook and stream routes answer 503.
	Webhooks *webhook.Dispatcher
	// StreamMaxPerKey bounds the streams one key may hold open (default
	// 5); StreamKeepAlive is the interval of keep-alive comments (15 s).
	StreamMaxPerKey int
	StreamKeepAlive time.Duration
}

// Server is the HTTP API over a Store.
type Server struct {
	cfg   Config
	store *tenantstore.Store
	log   *slog.Logger
	echo  *echo.Echo
	http  *http.Server

	auth      *authenticator
	limiter   *limiter
	ready     atomic.Bool
	routes    map[string]runmerge.Action // "METHOD /path" → action
	inflight  inflight
	metrics   *metrics
	closeOnce sync.Once
	streams   *streams

	registeredOnce sync.Once
	echoRoutes     map[string]bool // every "METHOD /path" Echo serves; see registered
}

// New returns a server over store. It does not listen until Serve.
func New(cfg Config, store *tenantstore.Store, log *slog.Logger) *Server {
	s := &Server{
		cfg:    cfg,
		store:  store,
		log:    log,
		echo:   echo.New(),
		routes: make(map[string]runmerge.Action),
	}
	s.auth = newAuthenticator(store.Catalog, cfg.RootKey, log)
	s.limiter = newLimiter(cfg.RatePerKey, cfg.RateBurst)
	s.echo.HideBanner = true
	s.echo.HidePort = true
	// The client's address is the peer's, never a header's: X-Real-IP and
	// X-Forwarded-For are set by whoever sends the request, and a server
	// that trusted them could be told any address.
	s.echo.IPExtractor = echo.ExtractIPDirect()
	s.echo.HTTPErrorHandler = s.handleError
	s.echo.JSONSerializer = jsonSerializer{}

	s.metrics = newMetrics(store)
	s.echo.Use(
		s.observe,
		s.requestID,
		s.recover,
		s.accessLog,
		s.bodyLimit,
		s.authenticate,
		s.rateLimit,
		s.noteChanges,
	)
	s.registerRoutes()

	s.http = &http.Server{
		Addr:              cfg.Addr,
		Handler:           s.echo,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		// No WriteTimeout: it would cut the event stream and long exports.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	s.http.RegisterOnShutdown(s.closeStreams)
	return s
}

// Handler returns the server's HTTP handler, for tests.
func (s *Server) Handler() http.Handler { return s.echo }

// Routes returns every registered route with the action it declares, keyed
// by "METHOD /path".
func (s *Server) Routes() map[string]runmerge.Action {
	out := make(map[string]runmerge.Action, len(s.routes))
	for k, v := range s.routes {
		out[k] = v
	}
	return out
}

// EchoRoutes returns the routes as Echo's router knows them, so that a test
// can check each one declared an action.
func (s *Server) EchoRoutes() []string {
	var out []string
	for _, r := range s.echo.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

// route registers h for method and path and records the action it performs.
func (s *Server) route(method, path string, action runmerge.Action, h echo.HandlerFunc) {
	s.routes[method+" "+path] = action
	s.echo.Add(method, path, h)
}

func (s *Server) registerRoutes() {
	s.route(http.MethodGet, "/healthz", runmerge.ActionPublic, s.healthz)
	s.route(http.MethodGet, "/readyz", runmerge.ActionPublic, s.readyz)
	s.route(http.MethodGet, "/v1/openapi.json", runmerge.ActionPublic, s.openAPIHandler())

	s.route(http.MethodPost, "/v1/tenants", runmerge.ActionTenantCreate, s.createTenant)
	s.route(http.MethodGet, "/v1/tenants", runmerge.ActionTenantRead, s.listTenants)
	s.route(http.MethodGet, "/v1/tenants/:id", runmerge.ActionTenantRead, s.getTenant)
	s.route(http.MethodPatch, "/v1/tenants/:id", runmerge.ActionTenantUpdate, s.updateTenant)
	s.route(http.MethodDelete, "/v1/tenants/:id", runmerge.ActionTenantDelete, s.deleteTenant)

	s.registerKeyRoutes()
	s.registerRecordRoutes()
	s.registerWebhookRoutes()
	s.registerStreamRoutes()
	s.registerExportRoutes()
	s.registerMetricsRoutes()
}

// Serve accepts connections on ln until Shutdown. It marks the server ready
// once it is listening.
func (s *Server) Serve(ln net.Listener) error {
	s.ready.Store(true)
	err := s.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, marks the server not ready, and
// waits for requests in flight to finish or ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	err := s.http.Shutdown(ctx)
	if err != nil {
		// The grace period is over: cut the connections still open rather
		// than leave them to run against a store about to close.
		err = errors.Join(err, s.http.Close())
	}
	s.Close()
	return err
}

// Close stops the server's background work. Shutdown calls it; a server
// used only through Handler (in tests) must call it itself.
func (s *Server) Close() {
	s.closeOnce.Do(s.auth.close)
}
