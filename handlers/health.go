package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
)

// healthz answers 200 while the process runs.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 once the catalog is open and migrated and the server
// listens, and 503 while it starts or drains.
func (s *Server) readyz(c echo.Context) error {
	if !s.ready.Load() {
		return runmerge.Errorf(runmerge.EUNAVAILABLE, "the server is starting or shutting down")
	}
	if err := s.store.Catalog.Ping(c.Request().Context()); err != nil {
		return runmerge.Errorf(runmerge.EUNAVAILABLE, "the catalog does not answer")
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
