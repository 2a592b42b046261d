package diffute

import (
	"errors"
	"fmt"
)

// Error codes. The HTTP layer maps each code to one status in one table; nothing
// below it knows about HTTP.
const (
	EINVALID       = "invalid"       // the request cannot be read (bad JSON, wrong content type)
	EUNPROCESSABLE = "unprocessable" // the request was read but a field is not acceptable
	EUNAUTHORIZED  = "unauthorized"  // no or bad credentials
	EFORBIDDEN     = "forbidden"     // credentials valid but not for this resource
	ENOTFOUND      = "not_found"     // no such resource (or not visible to the caller)
	ECONFLICT      = "conflict"      // the resource is in a state that forbids the action
	EGONE          = "gone"          // the resource existed and was deleted
	ETOOLARGE      = "too_large"     // the body is over the limit
	EUNSUPPORTED   = "unsupported"   // unsupported media type
	ERATELIMIT     = "rate_limited"  // too many requests
	EUNAVAILABLE   = "unavailable"   // a dependency is not ready
	EINTERNAL      = "internal"      // a bug or an unexpected failure
)

// Error is the error type of the domain. Field names the offending request field in
// JSON-pointer-like dotted form (for example "prompts[1].name") when there is one.
type Error struct {
	Code    string
	Field   string
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("diffute: %s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("diffute: %s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an *Error that names the offending field.
func FieldErrorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err if it is (or wraps) an *Error, EINTERNAL otherwise,
// and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the human message of err if it is an *Error, and a generic
// message otherwise so that internal details never reach a client.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorField returns the field named by err, or "".
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}
