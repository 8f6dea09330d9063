package runmerge

import (
	"errors"
	"fmt"
)

// Error codes. Each code maps to exactly one HTTP status in package handlers;
// clients read the code, so codes never change meaning.
const (
	ECONFLICT          = "conflict"               // a taken id or unique pair
	EFORBIDDEN         = "forbidden"              // may read the thing, not do this to it
	EINTERNAL          = "internal"               // a fault of the server
	EINVALID           = "validation_failed"      // a body that breaks a rule
	EINVALIDJSON       = "invalid_json"           // a body that is not JSON
	EINVALIDPARAM      = "invalid_parameter"      // a bad query parameter
	EINPROGRESS        = "request_in_progress"    // an idempotent request still running
	EMETHOD            = "method_not_allowed"     // a method the route does not serve
	ENOTFOUND          = "not_found"              // nothing within the caller's reach
	EPRECONDITION      = "precondition_failed"    // If-Match does not match
	ERATELIMIT         = "rate_limited"           // over the key's request rate
	EREADONLYFIELD     = "read_only_field"        // a body naming a server-set field
	ESUSPENDED         = "tenant_suspended"       // a data request to a suspended tenant
	ETOOLARGE          = "body_too_large"         // a body over the size limit
	EUNAUTHORIZED      = "unauthorized"           // no valid key
	EUNAVAILABLE       = "unavailable"            // starting or shutting down
	EUNKNOWNFIELD      = "unknown_field"          // a body naming a field that does not exist
	EUNSUPPORTEDMEDIA  = "unsupported_media_type" // a JSON route sent another content type
	EINSUFFICIENTSPACE = "insufficient_storage"   // the disk is full
)

// Error is the error type of the domain. Code says what went wrong in a way a
// client can act on, Message says it in words, and Fields lists the problems
// with individual fields of a request body.
type Error struct {
	Code    string
	Message string
	Fields  []FieldError

	// Err is the underlying cause, for the log; clients never see it.
	Err error
}

// FieldError is one problem with one field, located by a JSON pointer into the
// request body (RFC 6901), such as "/email" or "/records/3/email".
type FieldError struct {
	Pointer string `json:"pointer"`
	Code    string `json:"code"`
	Detail  string `json:"detail"`
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	if len(e.Fields) > 0 {
		return fmt.Sprintf("%s: %s (%s: %s)", e.Code, e.Message, e.Fields[0].Pointer, e.Fields[0].Detail)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain. Any
// other error is a fault of the server whose text may hold paths or SQL, so
// it is reported as "internal error" only.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorFields returns the field errors of the first *Error in err's chain.
func ErrorFields(err error) []FieldError {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
