package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
)

// codeStatus is the one table from error codes to HTTP statuses. An error
// whose code is not here is a fault of the server: 500.
var codeStatus = map[string]int{
	runmerge.EINVALIDJSON:       http.StatusBadRequest,
	runmerge.EINVALIDPARAM:      http.StatusBadRequest,
	runmerge.EUNAUTHORIZED:      http.StatusUnauthorized,
	runmerge.EFORBIDDEN:         http.StatusForbidden,
	runmerge.ESUSPENDED:         http.StatusForbidden,
	runmerge.ENOTFOUND:          http.StatusNotFound,
	runmerge.EMETHOD:            http.StatusMethodNotAllowed,
	runmerge.ECONFLICT:          http.StatusConflict,
	runmerge.EINPROGRESS:        http.StatusConflict,
	runmerge.EPRECONDITION:      http.StatusPreconditionFailed,
	runmerge.ETOOLARGE:          http.StatusRequestEntityTooLarge,
	runmerge.EUNSUPPORTEDMEDIA:  http.StatusUnsupportedMediaType,
	runmerge.EINVALID:           http.StatusUnprocessableEntity,
	runmerge.EREADONLYFIELD:     http.StatusUnprocessableEntity,
	runmerge.EUNKNOWNFIELD:      http.StatusUnprocessableEntity,
	runmerge.ERATELIMIT:         http.StatusTooManyRequests,
	runmerge.EINSUFFICIENTSPACE: http.StatusInsufficientStorage,
	runmerge.EUNAVAILABLE:       http.StatusServiceUnavailable,
	runmerge.EINTERNAL:          http.StatusInternalServerError,
}

// echoCodes classifies the errors Echo itself returns, from its router.
var echoCodes = map[int]string{
	http.StatusNotFound:              runmerge.ENOTFOUND,
	http.StatusMethodNotAllowed:      runmerge.EMETHOD,
	http.StatusRequestEntityTooLarge: runmerge.ETOOLARGE,
	http.StatusUnsupportedMediaType:  runmerge.EUNSUPPORTEDMEDIA,
	http.StatusBadRequest:            runmerge.EINVALIDPARAM,
	http.StatusUnauthorized:          runmerge.EUNAUTHORIZED,
	http.StatusServiceUnavailable:    runmerge.EUNAVAILABLE,
}

// Problem is an RFC 9457 problem details body, the body of every 4xx and 5xx
// response.
type Problem struct {
	Type      string                `json:"type"`
	Title     string                `json:"title"`
	Status    int                   `json:"status"`
	Detail    string                `json:"detail"`
	Code      string                `json:"code"`
	RequestID string                `json:"requestId"`
	Errors    []runmerge.FieldError `json:"errors,omitempty"`
}

// problemFor turns any error into the problem a client is shown. Errors that
// nobody classified say only "internal error".
func problemFor(err error) Problem {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code, ok := echoCodes[he.Code]
		if !ok {
			code = runmerge.EINTERNAL
		}
		msg := http.StatusText(he.Code)
		if code == runmerge.ENOTFOUND {
			msg = "no such route"
		} else if code == runmerge.EINTERNAL {
			msg = "internal error"
		}
		err = runmerge.Errorf(code, "%s", msg)
	}
	code := runmerge.ErrorCode(err)
	status, ok := codeStatus[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	return Problem{
		Type:   "urn:runmerge:problem:" + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: runmerge.ErrorMessage(err),
		Code:   code,
		Errors: runmerge.ErrorFields(err),
	}
}

// handleError is Echo's error handler: the one place where an error becomes
// a status and a problem+json body.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	p := problemFor(err)
	p.RequestID = requestID(c)
	if p.Status >= 500 {
		s.log.Error("request failed", "request_id", p.RequestID, "route", c.Path(),
			"tenant", c.Get(ctxTenantID), "error", err)
	}
	if p.Code == runmerge.ERATELIMIT {
		if ra, ok := c.Get(ctxRetryAfter).(string); ok {
			c.Response().Header().Set("Retry-After", ra)
		}
	}
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	c.Response().WriteHeader(p.Status)
	if c.Request().Method == http.MethodHead {
		return
	}
	if err := encodeJSON(c.Response(), p); err != nil {
		s.log.Debug("write problem", "request_id", p.RequestID, "error", err)
	}
}
