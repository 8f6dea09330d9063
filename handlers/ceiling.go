package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// Ceiling returns an Echo handler with one trivial route, GET /ceiling,
// answering a small JSON object. The load tool measures it to learn the
// most requests per second this machine's HTTP stack can serve, the
// ceiling against which the API's own figures are read.
func Ceiling() http.Handler {
	e := echo.New()
	e.HideBanner = true
	e.JSONSerializer = jsonSerializer{}
	body := map[string]string{"status": "ok", "service": "runmerge"}
	e.GET("/ceiling", func(c echo.Context) error {
		return c.JSON(http.StatusOK, body)
	})
	return e
}
