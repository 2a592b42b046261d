package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/diffute/diffute"
)

// statusOf is the one table from domain error codes to HTTP statuses.
var statusOf = map[string]int{
	diffute.EINVALID:       http.StatusBadRequest,
	diffute.EUNPROCESSABLE: http.StatusUnprocessableEntity,
	diffute.EUNAUTHORIZED:  http.StatusUnauthorized,
	diffute.EFORBIDDEN:     http.StatusForbidden,
	diffute.ENOTFOUND:      http.StatusNotFound,
	diffute.ECONFLICT:      http.StatusConflict,
	diffute.EGONE:          http.StatusGone,
	diffute.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	diffute.EUNSUPPORTED:   http.StatusUnsupportedMediaType,
	diffute.ERATELIMIT:     http.StatusTooManyRequests,
	diffute.EUNAVAILABLE:   http.StatusServiceUnavailable,
}

// httpStatus returns the status for err's code; unknown codes and non-domain errors
// are 500.
func httpStatus(err error) int {
	if s, ok := statusOf[diffute.ErrorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ProblemTypeBase prefixes the "type" member of every problem: the code's anchor in
// the API documentation.
const ProblemTypeBase = "https://github.com/diffute/diffute/blob/main/docs/api.md#error-"

// Problem is an RFC 9457 problem details object, extended with the domain error code
// and the offending request field.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Code     string `json:"code"`
	Field    string `json:"field,omitempty"`
}

// jobError attaches the ID of a job that does not appear in the request path (one
// being created) so that the log line of an internal error can name it.
type jobError struct {
	jobID int64
	err   error
}

func (e *jobError) Error() string { return e.err.Error() }
func (e *jobError) Unwrap() error { return e.err }

// writeError renders err as problem details. Internal errors are logged here, once,
// and reach the client only as "internal error". The request path is the instance; the
// query is left out because media URLs carry their signature there.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := httpStatus(err)
	code := diffute.ErrorCode(err)
	if status == http.StatusInternalServerError {
		code = diffute.EINTERNAL
		s.logFailure(r, err)
	}
	setRetryAfter(w, err)
	p := Problem{
		Type:     ProblemTypeBase + code,
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   diffute.ErrorMessage(err),
		Instance: r.URL.Path,
		Code:     code,
		Field:    diffute.ErrorField(err),
	}
	writeProblem(w, p)
}

// logFailure logs an internal error of r, the one place it is logged.
func (s *Server) logFailure(r *http.Request, err error) {
	attrs := []any{"method", r.Method, "path", r.URL.Path, "err", err}
	for _, name := range []string{"org", "project", "job_id"} {
		if v := r.PathValue(name); v != "" {
			attrs = append(attrs, name, v)
		}
	}
	var je *jobError
	if errors.As(err, &je) {
		attrs = append(attrs, "job_id", je.jobID)
	}
	s.log().ErrorContext(r.Context(), "request failed", attrs...)
}

func writeProblem(w http.ResponseWriter, p Problem) {
	body, err := json.Marshal(p)
	if err != nil { // cannot happen: Problem holds only strings and an int
		body = []byte(`{"title":"Internal Server Error","status":500}`)
	}
	h := w.Header()
	// Headers set for a success (ServeContent's, say) must not describe the problem.
	for _, k := range []string{"Content-Encoding", "Content-Range", "ETag", "Last-Modified", "Cache-Control"} {
		h.Del(k)
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	w.Write(body)
}

// writeJSON writes v with status. Encoding errors cannot be reported to the client
// once the header is out, so v is marshalled first.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
