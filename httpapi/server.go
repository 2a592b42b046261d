package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/media"
)

// Server is Diffute's HTTP API. Set its fields, then call Handler; the fields must
// not change afterwards.
type Server struct {
	Store    diffute.Store
	Keys     diffute.KeyStore
	Media    diffute.MediaStore
	Signer   *media.Signer                   // verifies /media/ URLs; nil when media is served elsewhere (S3)
	Models   []string                        // served model names; nil accepts any
	Catalog  ModelCatalog                    // native sizes and defaults of Models; nil: DefaultNativeSide, no /models entries
	Limits   diffute.Limits                  // request bounds; the zero value means diffute.DefaultLimits
	MediaTTL time.Duration                   // lifetime of URLs in status responses; 0: diffute.DefaultMediaTTL
	Ready    func(ctx context.Context) error // /readyz; nil: Store.Ping
	Logger   *slog.Logger                    // nil: no logging

	EventsPollInterval time.Duration // how often an events stream reads its job; 0: DefaultEventsPollInterval
	// JobEnds wakes a PUT waiting on its job (Prefer: wait) when this process
	// finishes it; nil: the waiter only polls, every WaitPollInterval (0: 250 ms).
	JobEnds          *JobEnds
	WaitPollInterval time.Duration
	// OpenAIWait bounds how long POST /v1/images/generations waits for its
	// images; 0: DefaultOpenAIWait.
	OpenAIWait       time.Duration
	MaxStreamsPerKey int // events streams one API key may hold open; 0: DefaultMaxStreamsPerKey
	// AuthFailureLimit bounds failed API-key checks per client address (a
	// token bucket; a failure takes a token, none left answers 429 without
	// looking the key up). The zero value means DefaultAuthFailureLimit.
	AuthFailureLimit RateLimit
	Console          http.Handler // the web console (/, /console.js, /console.css); nil: none
	Metrics          http.Handler // /metrics; nil: none
	Instruments      Instruments  // request and submission metrics; nil: none

	streams streamCloser // ends events streams on shutdown (see CloseStreams)
	// Tenancy serves Idempotency-Key, project quotas and GET …/usage.
	Tenancy diffute.TenancyStore
	// Policy returns an organization's rate limit and quotas; nil: no limits.
	Policy func(org string) TenantPolicy
	// MediaRetention is how long images are kept after a job ends (expires_at in
	// status and manifest); 0: diffute.DefaultMediaRetention.
	MediaRetention time.Duration

	limiterOnce  sync.Once
	limiter      *rateLimiter[int64]  // requests per API key
	authFailures *rateLimiter[string] // failed key checks per client address
	// Webhooks serves signing secrets, message lists and redelivery.
	Webhooks diffute.WebhookStore
}

// Check reports a Server that cannot serve all its routes. Every store
// dependency is required (Store, Keys, Media, Tenancy, Webhooks): no route
// falls back to doing less when one is missing. serve calls it once at start;
// Handler panics when it fails, since that is a wiring mistake.
func (s *Server) Check() error {
	var missing []string
	for _, dep := range []struct {
		name string
		set  bool
	}{{"Store", s.Store != nil}, {"Keys", s.Keys != nil}, {"Media", s.Media != nil},
		{"Tenancy", s.Tenancy != nil}, {"Webhooks", s.Webhooks != nil}} {
		if !dep.set {
			missing = append(missing, dep.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("httpapi: Server needs %s", strings.Join(missing, ", "))
	}
	return nil
}

// handlerFunc is a handler that returns its failure for writeError to render.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handler returns the API's routes wrapped in request logging and panic recovery.
func (s *Server) Handler() http.Handler {
	if err := s.Check(); err != nil {
		panic(err)
	}
	// Media URLs get a mux of their own: "GET /media/{key...}" and
	// "GET /{org}/{project}/media/inference/{job_id}" overlap (an organization named
	// "media"), which one ServeMux refuses. "media" is therefore not a valid
	// organization name.
	api, med := http.NewServeMux(), http.NewServeMux()
	handle := func(mux *http.ServeMux, pattern string, h handlerFunc) {
		mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r); err != nil {
				noteError(r, err)
				s.writeError(w, r, err)
			}
		}))
	}
	handle(api, "PUT /{org}/{project}/media/inference", s.tenant(s.createInference))
	handle(api, "GET /{org}/{project}/media/inference/{job_id}", s.tenant(s.getInference))
	handle(api, "DELETE /{org}/{project}/media/inference/{job_id}", s.tenant(s.cancelInference))
	handle(api, "GET /{org}/{project}/media/inference/{job_id}/deliveries", s.tenant(s.listDeliveries))
	handle(api, "GET /{org}/{project}/media/inference", s.tenant(s.listInference))
	handle(api, "GET /{org}/{project}/media/inference/{job_id}/events", s.tenant(s.jobEvents))
	handle(api, "POST /v1/images/generations", s.openAIImages) // answers its errors in OpenAI's shape
	handle(api, "GET /v1/models", s.openAIModels)              // OpenAI's model list, its errors in its shape
	handle(api, "GET /openapi.json", s.openAPI)
	handle(api, "GET /docs", s.docs)
	if s.Metrics != nil {
		api.Handle("GET /metrics", s.Metrics)
	}
	if s.Console != nil {
		for _, p := range []string{"GET /{$}", "GET /console.js", "GET /console.css"} {
			api.Handle(p, s.Console)
		}
	}
	handle(api, "GET /{org}/{project}/usage", s.tenant(s.getUsage))
	handle(api, "GET /{org}/{project}/models", s.tenant(s.listModels))
	handle(api, "POST /{org}/{project}/media/inference/{job_id}/redeliver", s.tenant(s.redeliver))
	handle(api, "GET /{org}/{project}/webhook-secret", s.tenant(s.getWebhookSecret))
	handle(api, "POST /{org}/{project}/webhook-secret/rotate", s.tenant(s.rotateWebhookSecret))
	handle(api, "GET /healthz", s.healthz)
	handle(api, "GET /readyz", s.readyz)
	apiH := s.problemFallback(api)
	root := apiH
	if s.Signer != nil {
		medH := s.mediaRoutes(med, handle)
		root = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/media/") {
				medH.ServeHTTP(w, r)
				return
			}
			apiH.ServeHTTP(w, r)
		})
	}
	return s.instrument(s.recoverPanics(root))
}

// mediaRoutes adds GET /media/{key...} to mux.
func (s *Server) mediaRoutes(mux *http.ServeMux, handle func(*http.ServeMux, string, handlerFunc)) http.Handler {
	handle(mux, "GET /media/{key...}", s.serveMedia)
	return s.problemFallback(mux)
}

// MediaHandler serves signed media URLs (GET /media/{key...}) of store alone,
// as Handler does beside the API: for a process or test that serves media
// without the API.
func MediaHandler(store diffute.MediaStore, signer *media.Signer, logger *slog.Logger) http.Handler {
	s := &Server{Media: store, Signer: signer, Logger: logger}
	mux := http.NewServeMux()
	h := s.mediaRoutes(mux, func(mux *http.ServeMux, pattern string, h handlerFunc) {
		mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r); err != nil {
				s.writeError(w, r, err)
			}
		}))
	})
	return s.instrument(s.recoverPanics(h))
}

func (s *Server) limits() diffute.Limits {
	if s.Limits == (diffute.Limits{}) {
		return diffute.DefaultLimits
	}
	return s.Limits
}

func (s *Server) mediaTTL() time.Duration {
	if s.MediaTTL <= 0 {
		return diffute.DefaultMediaTTL
	}
	return s.MediaTTL
}

// tenant checks the organization and project in the path and the API key that may act
// on them, in that order: a path that cannot name a tenant is 404 whoever asks.
func (s *Server) tenant(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		org, project := r.PathValue("org"), r.PathValue("project")
		// "media" is reserved for media URLs (see Handler).
		if !validTenantName(org) || !validTenantName(project) || org == "media" {
			return diffute.Errorf(diffute.ENOTFOUND, "no such organization or project")
		}
		key, err := s.authenticate(r, org, project)
		if err != nil {
			return err
		}
		if err := s.rateLimit(key); err != nil {
			return err
		}
		return next(w, r.WithContext(context.WithValue(r.Context(), apiKeyContext{}, key)))
	}
}

// validTenantName accepts 1-64 bytes of A-Z, a-z, 0-9, '_', '-' and '.', not starting
// with '.': names become the first two parts of media keys and directories, where a
// leading dot would mean "." or ".." or a hidden file.
func validTenantName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// apiKeyContext is the context key of the request's API key, set by tenant.
type apiKeyContext struct{}

// apiKeyOf returns the API key tenant checked for r.
func apiKeyOf(r *http.Request) *diffute.APIKey {
	k, _ := r.Context().Value(apiKeyContext{}).(*diffute.APIKey)
	if k == nil {
		panic("httpapi: apiKeyOf outside tenant")
	}
	return k
}

// authenticate is authorize behind the per-address limit on failed checks: a
// client that keeps presenting bad keys is answered 429 before any lookup.
func (s *Server) authenticate(r *http.Request, org, project string) (*diffute.APIKey, error) {
	return s.limitFailedChecks(r, func() (*diffute.APIKey, error) { return s.authorize(r, org, project) })
}

// limitFailedChecks runs check, a key check of r, behind the per-address limit
// on failed checks; every route that takes an API key goes through it.
func (s *Server) limitFailedChecks(r *http.Request, check func() (*diffute.APIKey, error)) (*diffute.APIKey, error) {
	s.limiterOnce.Do(s.initLimiters)
	addr := clientAddr(r)
	limit := s.authFailureLimit()
	if ok, wait := s.authFailures.peek(addr, limit); !ok {
		return nil, &retryAfterError{after: wait, err: diffute.Errorf(diffute.ERATELIMIT,
			"too many failed API key checks from this address; retry after %d s", int64(math.Ceil(wait.Seconds())))}
	}
	key, err := check()
	if code := diffute.ErrorCode(err); code == diffute.EUNAUTHORIZED || code == diffute.EFORBIDDEN {
		s.authFailures.allow(addr, limit)
	}
	return key, err
}

// clientAddr is the request's peer address without its port. Behind a proxy
// this is the proxy's; the limit then holds for all its clients together.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authorize checks x-api-key: absent, unknown or revoked → EUNAUTHORIZED; valid but
// scoped to another organization or project → EFORBIDDEN.
func (s *Server) authorize(r *http.Request, org, project string) (*diffute.APIKey, error) {
	header := r.Header.Get("x-api-key")
	if header == "" {
		return nil, diffute.FieldErrorf(diffute.EUNAUTHORIZED, "x-api-key", "an API key is required in the x-api-key header")
	}
	key, err := s.keyBySecret(r.Context(), header, "x-api-key")
	if err != nil {
		return nil, err
	}
	if !key.Allows(org, project) {
		return nil, diffute.FieldErrorf(diffute.EFORBIDDEN, "x-api-key", "the API key is not valid for this organization and project")
	}
	return key, nil
}

// keyBySecret looks up the API key secret as sent in field (a header):
// unknown or revoked → EUNAUTHORIZED naming field.
func (s *Server) keyBySecret(ctx context.Context, secret, field string) (*diffute.APIKey, error) {
	key, err := s.Keys.APIKeyByHash(ctx, diffute.HashAPIKey(secret))
	switch code := diffute.ErrorCode(err); {
	case err == nil:
	case code == diffute.EUNAUTHORIZED || code == diffute.ENOTFOUND:
		return nil, diffute.FieldErrorf(diffute.EUNAUTHORIZED, field, "the API key is not valid")
	default:
		return nil, fmt.Errorf("look up API key: %w", err)
	}
	if !key.RevokedAt.IsZero() {
		return nil, diffute.FieldErrorf(diffute.EUNAUTHORIZED, field, "the API key is not valid")
	}
	return key, nil
}

// jobID reads the job_id path segment. A malformed one names no job: 404.
func jobID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("job_id"), 10, 64)
	if err != nil || id <= 0 || id > diffute.MaxSeed {
		return 0, diffute.Errorf(diffute.ENOTFOUND, "no such job")
	}
	return id, nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ready := s.Ready
	if ready == nil {
		ready = s.Store.Ping
	}
	if err := ready(r.Context()); err != nil {
		// Logged here rather than rendered as internal: an orchestrator polls this
		// and needs 503, and the operator needs the cause.
		s.log().WarnContext(r.Context(), "not ready", "err", err)
		return diffute.Errorf(diffute.EUNAVAILABLE, "not ready")
	}
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

// problemFallback renders the mux's own 404 and 405 answers as problem details,
// keeping the Allow header the mux computes for 405.
func (s *Server) problemFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// No pattern: the mux answers 404, 405 or a redirect to a cleaned path. Let it
		// write its headers to a scratch writer to learn which.
		rec := &headerOnly{header: make(http.Header)}
		h.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusNotFound:
			s.writeError(w, r, diffute.Errorf(diffute.ENOTFOUND, "no route for %s", r.URL.Path))
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeProblem(w, Problem{
				Type:     ProblemTypeBase + "method_not_allowed",
				Title:    http.StatusText(http.StatusMethodNotAllowed),
				Status:   http.StatusMethodNotAllowed,
				Detail:   fmt.Sprintf("%s is not allowed here; allowed: %s", r.Method, rec.header.Get("Allow")),
				Instance: r.URL.Path,
				Code:     "method_not_allowed",
			})
		default:
			mux.ServeHTTP(w, r)
		}
	})
}

// headerOnly records the status and headers a handler writes and drops the body.
type headerOnly struct {
	header http.Header
	status int
}

func (h *headerOnly) Header() http.Header { return h.header }
func (h *headerOnly) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}
func (h *headerOnly) Write(b []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	return len(b), nil
}

// recoverPanics turns a panic in a handler into a logged 500 problem. The stack is
// logged; the client learns nothing.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { //nolint:errorlint // the sentinel is compared as net/http does
				panic(v)
			}
			s.log().ErrorContext(r.Context(), "panic in handler",
				"method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if sw, ok := w.(*statusWriter); ok && sw.status != 0 {
				return // the response has started; the connection just ends short
			}
			writeProblem(w, Problem{
				Type:     ProblemTypeBase + diffute.EINTERNAL,
				Title:    http.StatusText(http.StatusInternalServerError),
				Status:   http.StatusInternalServerError,
				Detail:   "internal error",
				Instance: r.URL.Path,
				Code:     diffute.EINTERNAL,
			})
		}()
		next.ServeHTTP(w, r)
	})
}
