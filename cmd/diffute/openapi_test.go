package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/diffute/diffute/httpapi"
)

// The OpenAPI document, loaded once for every test of the package. doJSON sends each
// request of the end-to-end suite through apiClient, which validates the request and
// the response against it: a handler that drifts from the document fails the test
// that called it.
var (
	specOnce   sync.Once
	specRouter routers.Router
	specDoc    *openapi3.T
	errSpec    error
	// validated counts the exchanges checked, so a test can assert that checking
	// happened at all; validatedWebhooks counts the webhook messages checked.
	validated         atomic.Int64
	validatedWebhooks atomic.Int64
)

func loadSpec() (routers.Router, error) {
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(httpapi.OpenAPI)
		if err != nil {
			errSpec = fmt.Errorf("load openapi.json: %w", err)
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			errSpec = fmt.Errorf("openapi.json is not a valid document: %w", err)
			return
		}
		doc.Servers = nil // match requests to any test server's host
		specDoc = doc
		specRouter, errSpec = gorillamux.NewRouter(doc)
		// Bodies the validator cannot parse are checked by the tests that read them.
		raw := func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(r)
			return string(b), err
		}
		for _, ct := range []string{"text/event-stream", "image/png", "image/jpeg", "image/webp", "text/html"} {
			openapi3filter.RegisterBodyDecoder(ct, raw)
		}
	})
	return specRouter, errSpec
}

// apiClient returns an HTTP client whose every exchange is validated against the
// OpenAPI document; a mismatch is a test error.
func apiClient(t testing.TB) *http.Client {
	t.Helper()
	router, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &validatingTransport{t: t, router: router}}
}

type validatingTransport struct {
	t      testing.TB
	router routers.Router
}

func (v *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		// A stream is validated by the test that reads it (see TestEventsAndList).
		return resp, nil
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	v.check(req, reqBody, resp, respBody)
	return resp, nil
}

func (v *validatingTransport) check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	v.t.Helper()
	validated.Add(1)
	what := req.Method + " " + req.URL.Path
	clone := req.Clone(context.Background())
	clone.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := v.router.FindRoute(clone)
	if err != nil {
		// Only a route the server does not have either may be missing.
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			v.t.Errorf("openapi: %s answered %d but is not in openapi.json: %v", what, resp.StatusCode, err)
		}
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: clone, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if reqErr != nil && resp.StatusCode < 400 {
		v.t.Errorf("openapi: %s: the document rejects the request (%v) but the server accepted it with %d", what, reqErr, resp.StatusCode)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(respBody)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		v.t.Errorf("openapi: %s → %d does not match openapi.json: %v\nbody: %.500s", what, resp.StatusCode, err, respBody)
	}
}

// validateWebhook checks a webhook message a test receiver got against the
// document's webhooks entry for its event: the headers (webhook-id,
// webhook-timestamp, webhook-signature…) and the body. A mismatch is a test error.
func validateWebhook(t testing.TB, header http.Header, body []byte) {
	t.Helper()
	if _, err := loadSpec(); err != nil {
		t.Error(err)
		return
	}
	validatedWebhooks.Add(1)
	var msg struct {
		Event string `json:"event"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Errorf("openapi: webhook body is not JSON: %v\n%.500s", err, body)
		return
	}
	item := specDoc.Webhooks[msg.Event]
	if item == nil || item.Post == nil {
		t.Errorf("openapi: webhook event %q is not in openapi.json's webhooks", msg.Event)
		return
	}
	req, err := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	if err != nil {
		t.Error(err)
		return
	}
	req.Header = header.Clone()
	in := &openapi3filter.RequestValidationInput{Request: req,
		Route:   &routers.Route{Spec: specDoc, Path: msg.Event, PathItem: item, Method: http.MethodPost, Operation: item.Post},
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		t.Errorf("openapi: webhook %q does not match openapi.json: %v\nbody: %.500s", msg.Event, err, body)
	}
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data []byte
}

// readEvents reads a text/event-stream until it ends, sending each event.
func readEvents(r io.Reader, events chan<- sseEvent) error {
	defer close(events)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" {
				events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = append(ev.data, strings.TrimPrefix(line, "data: ")...)
		}
	}
	return sc.Err()
}

// TestEventsAndList follows a job through its events stream, validating each
// event's data against the document's schemas, then finds it in the job list and
// checks the document, docs page and error answers.
func TestEventsAndList(t *testing.T) {
	t.Parallel()
	srv := startServe(t)
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	recv := newReceiver(t)
	before, hooksBefore := validated.Load(), validatedWebhooks.Load()

	resp, body := doJSON(t, http.MethodPut, srv.url+"/acme/default/media/inference", key, smallRequest(recv.URL+"/hook", "diffute/tiny-sd"))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	var accepted struct {
		JobID int64 `json:"job_id"`
	}
	json.Unmarshal(body, &accepted)

	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/acme/default/media/inference/%d/events", srv.url, accepted.JobID), nil)
	req.Header.Set("x-api-key", key)
	sresp, err := apiClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	if sresp.StatusCode != http.StatusOK || sresp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %s %s", sresp.Status, sresp.Header.Get("Content-Type"))
	}
	events := make(chan sseEvent, 256)
	go readEvents(sresp.Body, events)
	counts := map[string]int{}
	var done []byte
	deadline := time.After(60 * time.Second)
loop:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				break loop
			}
			counts[ev.name]++
			schema := map[string]string{"progress": "ProgressEvent", "image": "ImageEvent", "done": "JobStatus"}[ev.name]
			if schema == "" {
				t.Fatalf("unknown event %q", ev.name)
			}
			validateSchema(t, schema, ev.data)
			if ev.name == "done" {
				done = ev.data
			}
		case <-deadline:
			t.Fatalf("events stream did not end; got %v", counts)
		}
	}
	if counts["progress"] < 2 || counts["image"] != 3 || counts["done"] != 1 {
		t.Errorf("events = %v, want ≥2 progress, 3 image, 1 done", counts)
	}
	if !strings.Contains(string(done), `"succeeded"`) || !strings.Contains(string(done), `"manifest"`) {
		t.Errorf("done event = %s", done)
	}

	resp, body = doJSON(t, http.MethodGet, srv.url+"/acme/default/media/inference?limit=1", key, nil)
	var list httpapi.JobList
	if err := json.Unmarshal(body, &list); resp.StatusCode != http.StatusOK || err != nil || len(list.Jobs) != 1 || list.Jobs[0].JobID != accepted.JobID {
		t.Fatalf("list: %s %s (%v)", resp.Status, body, err)
	}
	if list.NextBefore != nil {
		t.Errorf("one job, yet a next page: %s", body)
	}
	for _, bad := range []string{"?limit=0", "?limit=x", "?before=-1"} {
		resp, body = doJSON(t, http.MethodGet, srv.url+"/acme/default/media/inference"+bad, key, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"field"`) {
			t.Errorf("list%s: %s %s, want 400 naming the field", bad, resp.Status, body)
		}
	}
	resp, _ = doJSON(t, http.MethodGet, srv.url+"/acme/default/media/inference", "", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("list without key: %s", resp.Status)
	}
	resp, body = doJSON(t, http.MethodGet, srv.url+"/openapi.json", "", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, httpapi.OpenAPI) {
		t.Errorf("/openapi.json: %s, %d bytes", resp.Status, len(body))
	}
	resp, body = doJSON(t, http.MethodGet, srv.url+"/docs", "", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "/openapi.json") || strings.Contains(string(body), "https://") {
		t.Errorf("/docs: %s (must load the document and nothing external)", resp.Status)
	}
	// The rest of the API, so that every documented route the server has is
	// exercised against the document: delivery log, cancel (409 once ended), a
	// rejected body, health, readiness and the media URL's 403.
	jobURL := fmt.Sprintf("%s/acme/default/media/inference/%d", srv.url, accepted.JobID)
	recv.wait(t, 60*time.Second)
	if validatedWebhooks.Load() == hooksBefore {
		t.Errorf("the webhook was not validated against openapi.json's webhooks")
	}
	resp, body = doJSON(t, http.MethodGet, jobURL+"/deliveries", key, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"webhook_id"`) {
		t.Errorf("deliveries: %s %s", resp.Status, body)
	}
	resp, _ = doJSON(t, http.MethodDelete, jobURL, key, nil)
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("cancel after the end: %s, want 409", resp.Status)
	}
	bad := smallRequest("", "diffute/tiny-sd")
	bad["prompts"].([]map[string]any)[0]["height"] = 65
	resp, _ = doJSON(t, http.MethodPut, srv.url+"/acme/default/media/inference", key, bad)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("height 65: %s, want 422", resp.Status)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/media/acme/default/1/a/0.png?expires=1&sig=x"} {
		resp, _ = doJSON(t, http.MethodGet, srv.url+p, "", nil)
		if resp.StatusCode >= 500 {
			t.Errorf("GET %s: %s", p, resp.Status)
		}
	}
	if n := validated.Load() - before; n < 15 {
		t.Errorf("only %d exchanges were validated", n)
	}
}

// validateSchema checks data against components.schemas[name] of the document.
func validateSchema(t *testing.T, name string, data []byte) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(httpapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	ref := doc.Components.Schemas[name]
	if ref == nil {
		t.Fatalf("openapi.json has no schema %s", name)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s event: %v: %s", name, err, data)
	}
	// As openapi3filter validates bodies of a 3.1 document: JSON Schema 2020-12.
	if err := ref.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		t.Errorf("%s event does not match the schema: %v\n%s", name, err, data)
	}
}

// recordingTB stands in for a test in TestAPIClientFailsOnDrift: it keeps the
// errors apiClient's transport reports instead of failing.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recordingTB) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := r.errs
	r.errs = nil
	return errs
}

// TestAPIClientFailsOnDrift points apiClient's validating transport at a server
// that answers what the test says, and checks that an exact answer passes while
// each kind of drift (a member too many or missing, an undocumented status or
// route, a problem sent as plain JSON) is reported, and that every exchange is
// counted: the end-to-end suite's checking is only as good as this.
func TestAPIClientFailsOnDrift(t *testing.T) {
	t.Parallel()
	router, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		sync.Mutex
		status      int
		contentType string
		body        []byte
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer.Lock()
		defer answer.Unlock()
		w.Header().Set("Content-Type", answer.contentType)
		w.WriteHeader(answer.status)
		w.Write(answer.body)
	}))
	defer srv.Close()
	rec := &recordingTB{TB: t}
	client := &http.Client{Transport: &validatingTransport{t: rec, router: router}}
	created := time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)
	status, err := json.Marshal(httpapi.JobStatus{JobID: 4519838271823191, Name: "n", Model: "diffute/tiny-sd",
		Status: "queued", CreatedAt: created, Prompts: []httpapi.PromptStatus{},
		Webhook: httpapi.WebhookStatus{State: "none"}})
	if err != nil {
		t.Fatal(err)
	}
	problem := []byte(`{"type":"https://github.com/diffute/diffute/blob/main/docs/api.md#error-not_found","title":"Not Found","status":404,"code":"not_found"}`)
	job := "/acme/default/media/inference/4519838271823191"
	for _, c := range []struct {
		what        string
		path        string
		status      int
		contentType string
		body        []byte
		drift       bool
	}{
		{"the status as the server writes it", job, 200, "application/json", status, false},
		{"a problem as the server writes it", job, 404, "application/problem+json", problem, false},
		{"a member too many", job, 200, "application/json", bytes.Replace(status, []byte(`{`), []byte(`{"extra":1,`), 1), true},
		{"a required member missing", job, 200, "application/json", bytes.Replace(status, []byte(`"model":"diffute/tiny-sd",`), nil, 1), true},
		{"an undocumented status", job, 418, "application/problem+json", problem, true},
		{"a problem as application/json", job, 404, "application/json", problem, true},
		{"a problem with a member too many", job, 404, "application/problem+json", bytes.Replace(problem, []byte(`{`), []byte(`{"trace":"x",`), 1), true},
		{"an answered route the document lacks", "/acme/default/media/inference/4519838271823191/retry", 200, "application/json", []byte(`{}`), true},
	} {
		answer.Lock()
		answer.status, answer.contentType, answer.body = c.status, c.contentType, c.body
		answer.Unlock()
		before := validated.Load()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+c.path, nil)
		req.Header.Set("x-api-key", "dfk_test")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if validated.Load() == before {
			t.Errorf("%s: the exchange was not counted as validated", c.what)
		}
		errs := rec.take()
		if c.drift && len(errs) == 0 {
			t.Errorf("%s: apiClient let it through", c.what)
		}
		if !c.drift && len(errs) > 0 {
			t.Errorf("%s: apiClient reported %v", c.what, errs)
		}
	}
}
