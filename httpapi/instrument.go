package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/diffute/diffute"
)

// Instruments receives what the API measures (*metrics.Metrics implements it).
type Instruments interface {
	// ObserveRequest records a request answered with status after d; route is
	// the ServeMux pattern that matched ("unmatched" when none did).
	ObserveRequest(route string, status int, d time.Duration)
	// JobSubmitted records an accepted job submission.
	JobSubmitted()
	// JobRejected records a refused job submission and why (see rejectReason).
	JobRejected(reason string)
}

// submitRoutes are the patterns whose requests submit a job.
var submitRoutes = map[string]bool{
	"PUT /{org}/{project}/media/inference": true,
	"POST /v1/images/generations":          true,
}

// RequestIDHeader carries the request's id in both directions.
const RequestIDHeader = "X-Request-Id"

// maxRequestIDLen bounds an incoming request id; a longer one is replaced.
const maxRequestIDLen = 128

// requestInfo travels in the request's context from instrument to the handlers.
type requestInfo struct {
	id  string
	err error // the error the route's handler returned, for the rejection reason
}

type requestInfoKey struct{}

// RequestID returns the id of the request ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return info.id
	}
	return ""
}

// noteError keeps the error a handler returned for instrument.
func noteError(r *http.Request, err error) {
	if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		info.err = err
	}
}

// instrument gives each request an id (X-Request-Id, in the response too), logs
// one line per request and records it in s.Instruments. The line holds method,
// path, route, status, size and duration; never headers, query strings or
// bodies: they carry API keys, media signatures and webhook secrets.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{id: r.Header.Get(RequestIDHeader)}
		if !validRequestID(info.id) {
			info.id = newRequestID()
		}
		w.Header().Set(RequestIDHeader, info.id)
		r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		d := time.Since(start)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		// The muxes set the pattern on the request they were given: this one.
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		logger := s.log()
		if _, ok := logger.Handler().(requestIDHandler); !ok {
			logger = slog.New(RequestIDHandler(logger.Handler()))
		}
		logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Int64("bytes", sw.bytes),
			DurationMS(d))
		if s.Instruments == nil {
			return
		}
		s.Instruments.ObserveRequest(route, status, d)
		if submitRoutes[route] {
			if status < 300 {
				s.Instruments.JobSubmitted()
			} else {
				s.Instruments.JobRejected(rejectReason(info.err, status))
			}
		}
	})
}

// rejectReason names why a submission was refused, from the handler's error
// when it returned one, else from the status.
func rejectReason(err error, status int) string {
	if _, ok := errors.AsType[*diffute.QuotaError](err); ok {
		return "quota"
	}
	switch diffute.ErrorCode(err) {
	case diffute.EINVALID, diffute.EUNPROCESSABLE, diffute.ETOOLARGE, diffute.EUNSUPPORTED:
		return "validation"
	case diffute.EUNAUTHORIZED, diffute.EFORBIDDEN:
		return "auth"
	case diffute.ERATELIMIT:
		return "rate_limited"
	case diffute.ENOTFOUND:
		return "not_found"
	case diffute.ECONFLICT:
		return "conflict"
	case diffute.EUNAVAILABLE:
		return "unavailable"
	}
	switch {
	case err != nil || status >= 500:
		return "internal"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "auth"
	case status == http.StatusTooManyRequests:
		return "rate_limited"
	case status == http.StatusNotFound:
		return "not_found"
	case status == http.StatusConflict:
		return "conflict"
	}
	return "validation"
}

// validRequestID accepts 1 to maxRequestIDLen bytes of letters, digits and
// "-_.:": safe in a header and a log line.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// DurationMS is d as the duration_ms attribute, in milliseconds: the one way
// Diffute's log lines give a duration.
func DurationMS(d time.Duration) slog.Attr {
	return slog.Float64("duration_ms", float64(d.Microseconds())/1000)
}

// RequestIDHandler wraps h to add the request's id (request_id) to every record
// logged with a request's context.
func RequestIDHandler(h slog.Handler) slog.Handler { return requestIDHandler{h} }

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// statusWriter remembers the status and counts the body bytes written.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
