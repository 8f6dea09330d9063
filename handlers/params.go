package handlers

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
)

// Page sizes.
const (
	defaultLimit = 50
	maxLimit     = 500
)

// query is a request's query string, checked against the parameters the
// route accepts: a parameter the route does not know is an error, so that a
// misspelt filter never returns unfiltered data.
type query struct {
	values url.Values
}

func parseQuery(c echo.Context, allowed ...string) (query, error) {
	values, err := url.ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return query{}, runmerge.Errorf(runmerge.EINVALIDPARAM, "the query string is malformed")
	}
	ok := make(map[string]bool, len(allowed))
	for _, a := range allowed {
		ok[a] = true
	}
	for name, vs := range values {
		if !ok[name] {
			return query{}, paramError(name, "unknown parameter")
		}
		if len(vs) > 1 {
			return query{}, paramError(name, "given more than once")
		}
	}
	return query{values: values}, nil
}

func paramError(name, detail string) error {
	return &runmerge.Error{
		Code:    runmerge.EINVALIDPARAM,
		Message: "invalid query parameter " + strconv.Quote(name) + ": " + detail,
		Fields:  []runmerge.FieldError{{Pointer: name, Code: "invalid_parameter", Detail: detail}},
	}
}

// get returns a parameter and whether it was given.
func (q query) get(name string) (string, bool) {
	vs, ok := q.values[name]
	if !ok {
		return "", false
	}
	return vs[0], true
}

// limit returns the page size: defaultLimit, or 1 to maxLimit.
func (q query) limit() (int, error) {
	s, ok := q.get("limit")
	if !ok {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLimit {
		return 0, paramError("limit", "must be an integer from 1 to 500")
	}
	return n, nil
}

// bool returns a true/false parameter, false when absent.
func (q query) bool(name string) (bool, error) {
	s, ok := q.get(name)
	if !ok {
		return false, nil
	}
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, paramError(name, "must be true or false")
}

// cursor decodes the cursor parameter into v; ok reports whether one was
// given. Cursors are base64url-encoded JSON, opaque to clients.
func (q query) cursor(v any) (ok bool, err error) {
	s, ok := q.get("cursor")
	if !ok {
		return false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, v) != nil {
		return true, paramError("cursor", "not a cursor this server issued")
	}
	return true, nil
}

// encodeCursor makes the opaque cursor for v.
func encodeCursor(v any) *string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	s := base64.RawURLEncoding.EncodeToString(b)
	return &s
}

// page is the body of every list response.
type page[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"nextCursor"`
}
