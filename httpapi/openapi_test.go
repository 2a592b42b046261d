package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/diffute/diffute"
)

// loadOpenAPI loads and validates openapi.json (examples included: kin-openapi
// checks each against its schema).
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3.1 document: %v", err)
	}
	return doc
}

// TestOpenAPIDocumentsEveryRoute reads the route patterns of server.go and checks
// that openapi.json has each path and method, so that a new route cannot be added
// without documenting it. (The end-to-end suite checks the other direction and the
// shapes: cmd/diffute/openapi_test.go.)
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	src, err := os.ReadFile("server.go")
	if err != nil {
		t.Fatal(err)
	}
	// The console's own files are not API.
	notAPI := map[string]bool{"/{$}": true, "/console.js": true, "/console.css": true}
	re := regexp.MustCompile(`"(GET|PUT|POST|DELETE|PATCH) (/[^"]*)"`)
	found := 0
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		method, path := m[1], m[2]
		if notAPI[path] {
			continue
		}
		if path == "/media/{key...}" {
			path = "/media/{org}/{project}/{job_id}/{prompt}/{file}"
		}
		found++
		item := doc.Paths.Value(path)
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("%s %s is served but not in openapi.json", method, path)
			continue
		}
		// Every route behind an API key answers these (tenant, authenticate,
		// rateLimit, writeError); each must be documented as a problem.
		if strings.HasPrefix(path, "/{org}/{project}/") {
			op := item.GetOperation(method)
			for _, status := range []string{"401", "403", "404", "429", "500"} {
				if op.Responses.Value(status) == nil {
					t.Errorf("%s %s: response %s is not documented", method, path, status)
				}
			}
		}
	}
	if found < 8 {
		t.Fatalf("found only %d routes in server.go; has its registration changed?", found)
	}
	for path, item := range doc.Paths.Map() {
		if strings.Contains(path, "//") {
			t.Errorf("malformed path %q", path)
		}
		for method, op := range item.Operations() {
			for status, resp := range op.Responses.Map() {
				// The OpenAI-compatible routes (/v1/…) answer errors in OpenAI's shape.
				if strings.HasPrefix(path, "/v1/") {
					continue
				}
				if status >= "400" && status != "416" && resp.Value.Content.Get("application/problem+json") == nil {
					t.Errorf("%s %s: %s is not an application/problem+json problem", method, path, status)
				}
			}
			if op.OperationID == "" {
				t.Errorf("%s %s has no operationId", method, path)
			}
		}
	}
}

// specPair ties a schema of the document to the Go type the server encodes.
type specPair struct {
	schema string
	goType reflect.Type
}

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// responseSchemas are the schemas of what the server sends, each against the Go
// type it marshals.
var responseSchemas = []specPair{
	{"Accepted", typeOf[acceptedResponse]()},
	{"JobStatus", typeOf[JobStatus]()},
	{"PromptStatus", typeOf[PromptStatus]()},
	{"WebhookStatus", typeOf[WebhookStatus]()},
	{"DeliveryLog", typeOf[DeliveryLog]()},
	{"DeliveryAttempt", typeOf[deliveryView]()},
	{"WebhookMessage", typeOf[diffute.WebhookMessage]()},
	{"WebhookSecret", typeOf[diffute.WebhookSecret]()},
	{"WebhookSecrets", typeOf[webhookSecretResponse]()},
	{"JobSummary", typeOf[JobSummary]()},
	{"JobList", typeOf[JobList]()},
	{"ProgressEvent", typeOf[ProgressEvent]()},
	{"PromptProgress", typeOf[PromptProgress]()},
	{"ImageEvent", typeOf[ImageEvent]()},
	{"Manifest", typeOf[diffute.Manifest]()},
	{"Recipe", typeOf[diffute.Recipe]()},
	{"ModelInfo", typeOf[diffute.ModelInfo]()},
	{"ModelList", typeOf[ModelList]()},
	{"Usage", typeOf[UsageResponse]()},
	{"UsageDay", typeOf[UsageDayView]()},
	{"UsageFigures", typeOf[UsageFigures]()},
	{"Problem", typeOf[Problem]()},
	{"OpenAIImagesResponse", typeOf[OpenAIImagesResponse]()},
	{"OpenAIImage", typeOf[OpenAIImage]()},
	{"OpenAIErrorResponse", typeOf[OpenAIErrorBody]()},
	{"OpenAIError", typeOf[OpenAIError]()},
	{"OpenAIModelList", typeOf[OpenAIModelList]()},
	{"OpenAIModel", typeOf[OpenAIModel]()},
}

// encodedField is one member of a Go type's JSON encoding.
type encodedField struct {
	omitempty bool
	pointer   bool
}

// encodedFields lists the members encoding/json writes for t, embedded structs
// inlined.
func encodedFields(t reflect.Type) map[string]encodedField {
	out := map[string]encodedField{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for k, v := range encodedFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = encodedField{omitempty: slices.Contains(strings.Split(opts, ","), "omitempty"), pointer: f.Type.Kind() == reflect.Pointer}
	}
	return out
}

// permitsNull reports whether s is the document's nullable form: anyOf [T, {type: null}].
func permitsNull(s *openapi3.Schema) bool {
	for _, alt := range s.AnyOf {
		if alt.Value != nil && alt.Value.Type.Is("null") {
			return true
		}
	}
	return s.Type.IncludesNull()
}

// TestOpenAPISchemasMatchGoTypes checks each response schema against the Go type
// the handlers encode: the same members, required exactly when always written
// (no omitempty), nullable exactly when a nil pointer is written as null, and no
// other members allowed. A field added to, renamed in or dropped from a Go type
// fails here before any request is made.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	check := func(name string, fields map[string]encodedField) {
		t.Helper()
		ref := doc.Components.Schemas[name]
		if ref == nil {
			t.Errorf("openapi.json has no schema %s", name)
			return
		}
		s := ref.Value
		if s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has {
			t.Errorf("%s: additionalProperties must be false: the server's output is exact", name)
		}
		for field, f := range fields {
			p := s.Properties[field]
			if p == nil {
				t.Errorf("%s: the server sends %q, which the schema does not have", name, field)
				continue
			}
			if required := slices.Contains(s.Required, field); required == f.omitempty {
				t.Errorf("%s.%s: required is %v, but the server always sends it: %v", name, field, required, !f.omitempty)
			}
			if null := f.pointer && !f.omitempty; permitsNull(p.Value) != null {
				t.Errorf("%s.%s: nullable is %v, the server sends null: %v", name, field, permitsNull(p.Value), null)
			}
		}
		for field := range s.Properties {
			if _, ok := fields[field]; !ok {
				t.Errorf("%s: the schema has %q, which the server never sends", name, field)
			}
		}
	}
	for _, p := range responseSchemas {
		check(p.schema, encodedFields(p.goType))
	}
	// …/deliveries writes the DeliveryLog with the job's ID.
	withID := encodedFields(typeOf[DeliveryLog]())
	withID["job_id"] = encodedField{}
	check("JobDeliveryLog", withID)

	// Requests: the document knows every member the decoder accepts, and no other.
	for _, p := range []specPair{
		{"InferenceRequest", typeOf[diffute.InferenceRequest]()},
		{"PromptRequest", typeOf[diffute.PromptRequest]()},
	} {
		s := doc.Components.Schemas[p.schema].Value
		fields := encodedFields(p.goType)
		for field := range fields {
			if s.Properties[field] == nil {
				t.Errorf("%s: the server accepts %q, which the schema does not have", p.schema, field)
			}
		}
		for field := range s.Properties {
			if _, ok := fields[field]; !ok {
				t.Errorf("%s: the schema has %q, which the server does not accept", p.schema, field)
			}
		}
	}
}

// TestOpenAPIValidationRejectsDrift runs the validator the end-to-end suite uses
// (openapi3filter) on a status the server's own types produce, then on drifted
// copies of it: a member too many, one missing, a null where none is allowed, a
// problem with an undocumented member or the wrong content type. Each must fail,
// or the end-to-end validation would let drift through.
func TestOpenAPIValidationRejectsDrift(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	validate := func(status int, contentType string, body []byte) error {
		req := httptest.NewRequest(http.MethodGet, "/acme/default/media/inference/4519838271823191", nil)
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatal(err)
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: status, Header: http.Header{"Content-Type": {contentType}},
			Body: io.NopCloser(bytes.NewReader(body)), Options: &openapi3filter.Options{IncludeResponseStatus: true}})
	}
	started := time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)
	seed := int64(1234)
	neg := ""
	status := JobStatus{
		JobID: 4519838271823191, Name: "Houston", Model: "diffute/tiny-sd", Status: diffute.StatusRunning, Progress: 0.5,
		CreatedAt: started, StartedAt: &started,
		Prompts: []PromptStatus{{Name: "a", Prompt: "a lighthouse", Style: "photo", NumImages: 2, ImagesDone: 1, StepsDone: 3,
			StepsTotal: 4, Width: 64, Height: 64, Seed: &seed, Steps: 4, Scheduler: "euler", NegativePrompt: &neg, RNG: "torch",
			Progress: 0.5, Images: []string{"http://127.0.0.1/media/acme/default/1/a/0.png?expires=1&sig=x"},
			Recipe: &diffute.Recipe{Model: "diffute/tiny-sd", ModelSource: "local:tiny", RNG: "torch", Seeds: []int64{1234, 1235},
				Scheduler: "euler", TimestepSpacing: "leading", Steps: 4, GuidanceScale: 7.5, Width: 64, Height: 64}}},
		Webhook: WebhookStatus{URL: "http://127.0.0.1/hook", State: diffute.DeliveryPending, Attempts: 1, LastStatusCode: 500,
			Log: &DeliveryLog{
				Messages: []diffute.WebhookMessage{{DeliveryID: 7, MessageID: "msg_1", Event: diffute.EventStarted,
					State: diffute.DeliveryPending, Attempts: 1, CreatedAt: started, UpdatedAt: started}},
				Deliveries: deliveryViews([]diffute.DeliveryAttempt{{DeliveryID: 7, MessageID: "msg_1", Event: diffute.EventStarted,
					Attempt: 1, At: started, StatusCode: 500, Latency: 3 * time.Millisecond, Error: "webhook: receiver answered HTTP 500", Excerpt: "no"}}),
			}},
		Usage: UsageFigures{Images: 1, PixelSteps: 64 * 64 * 4, EngineSeconds: 0.25},
	}
	good, err := json.Marshal(status)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(http.StatusOK, "application/json", good); err != nil {
		t.Fatalf("the server's own status does not validate: %v\n%s", err, good)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	prompt := func(m map[string]any) map[string]any { return m["prompts"].([]any)[0].(map[string]any) }
	problem, _ := json.Marshal(Problem{Type: ProblemTypeBase + "not_found", Title: "Not Found", Status: 404,
		Detail: "no such job", Instance: "/acme/default/media/inference/4519838271823191", Code: diffute.ENOTFOUND})
	if err := validate(http.StatusNotFound, "application/problem+json", problem); err != nil {
		t.Fatalf("the server's own problem does not validate: %v", err)
	}
	for _, c := range []struct {
		what        string
		status      int
		contentType string
		body        []byte
	}{
		{"a member the document does not have", 200, "application/json", edit(func(m map[string]any) { m["priority"] = 1 })},
		{"a nested member the document does not have", 200, "application/json", edit(func(m map[string]any) { prompt(m)["strength"] = 0.5 })},
		{"a renamed member (Usage's org for organization, say)", 200, "application/json", edit(func(m map[string]any) {
			m["usage"].(map[string]any)["engine_ms"] = m["usage"].(map[string]any)["engine_seconds"]
			delete(m["usage"].(map[string]any), "engine_seconds")
		})},
		{"a required member missing", 200, "application/json", edit(func(m map[string]any) { delete(m, "webhook") })},
		{"a nested required member missing", 200, "application/json", edit(func(m map[string]any) { delete(prompt(m), "steps_total") })},
		{"null where the server never sends it", 200, "application/json", edit(func(m map[string]any) { m["name"] = nil })},
		{"a state outside the enum", 200, "application/json", edit(func(m map[string]any) { m["status"] = "paused" })},
		{"a problem with a member the document does not have", 404, "application/problem+json", bytes.Replace(problem, []byte(`{`), []byte(`{"trace":"x",`), 1)},
		{"a problem as application/json", 404, "application/json", problem},
		{"an undocumented status", 418, "application/problem+json", problem},
	} {
		if err := validate(c.status, c.contentType, c.body); err == nil {
			t.Errorf("%s: the validator accepted it:\n%s", c.what, c.body)
		}
	}
}

// TestOpenAPIWebhooksDescribeEveryEvent checks that the document's webhooks have
// one entry per event a request may ask for, carrying the Standard Webhooks
// headers, and that what the server sends for each (Manifests.For) matches it.
func TestOpenAPIWebhooksDescribeEveryEvent(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	finished := time.Date(2026, 1, 31, 12, 0, 3, 0, time.UTC)
	seed := int64(7)
	job := &diffute.Job{ID: 4519838271823191, Org: "acme", Project: "default", Name: "Houston", Status: diffute.StatusSucceeded,
		FinishedAt: finished, Webhook: "http://127.0.0.1/hook",
		Prompts: []diffute.JobPrompt{{PromptRequest: diffute.PromptRequest{Name: "a", Prompt: "p", NumImages: 1, Width: 64, Height: 64, Seed: &seed},
			Recipe: &diffute.Recipe{Model: "m", ModelSource: "local:m", RNG: "torch", Seeds: []int64{7}, Scheduler: "euler",
				TimestepSpacing: "leading", Steps: 1, GuidanceScale: 1, Width: 64, Height: 64}}}}
	events := []string{diffute.EventCompleted, diffute.EventStarted, diffute.EventPromptCompleted}
	if len(doc.Webhooks) != len(events) {
		t.Errorf("webhooks has %d entries, want one per event (%v)", len(doc.Webhooks), events)
	}
	for _, event := range events {
		if !diffute.ValidWebhookEvent(event) {
			t.Fatalf("%q is not an event", event)
		}
		item := doc.Webhooks[event]
		if item == nil || item.Post == nil {
			t.Errorf("webhooks has no POST for %q", event)
			continue
		}
		for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
			p := item.Post.Parameters.GetByInAndName("header", h)
			if p == nil || !p.Required {
				t.Errorf("webhook %s: header %s is not documented as required", event, h)
			}
		}
		media := item.Post.RequestBody.Value.Content.Get("application/json")
		if media == nil {
			t.Errorf("webhook %s: no application/json body", event)
			continue
		}
		m, err := diffute.Manifests{}.For(context.Background(), job, event, "a")
		if err != nil {
			t.Fatal(err)
		}
		body, err := m.Body()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		if err := media.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("webhook %s: the body the server sends does not match: %v\n%s", event, err, body)
		}
		if e, _ := v.(map[string]any)["event"].(string); e != event {
			t.Errorf("webhook %s: body's event is %q", event, e)
		}
	}
}

// TestOpenAPIGeneratesClients runs the generators clients use on the document:
// oapi-codegen v2.4 (types and client, then compiled and vetted) and
// openapi-typescript. The tools are pinned in testdata (their own go.mod and
// package-lock.json); fetching them needs the Go module proxy and the npm
// registry. Locally a missing toolchain or network skips; under CI=true it fails.
func TestOpenAPIGeneratesClients(t *testing.T) {
	t.Parallel()
	unavailable := func(t *testing.T, format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format, args...)
		}
		t.Skipf("skipping: "+format, args...)
	}
	spec, err := filepath.Abs("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("oapi-codegen", func(t *testing.T) {
		t.Parallel()
		tools, err := filepath.Abs(filepath.Join("testdata", "oapi-codegen"))
		if err != nil {
			t.Fatal(err)
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			unavailable(t, "no go command on PATH to run oapi-codegen with")
		}
		run := func(dir string, args ...string) ([]byte, error) {
			cmd := exec.Command(goBin, args...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
			return cmd.CombinedOutput()
		}
		if out, err := run(tools, "mod", "download"); err != nil {
			unavailable(t, "cannot fetch oapi-codegen from the Go module proxy: %v\n%s", err, out)
		}
		out := t.TempDir()
		gen := filepath.Join(out, "api.gen.go")
		if b, err := run(tools, "tool", "oapi-codegen", "-generate", "types,client", "-package", "oapicodegen", "-o", gen, spec); err != nil {
			t.Fatalf("oapi-codegen rejects openapi.json: %v\n%s", err, b)
		}
		for _, f := range []string{"go.mod", "go.sum", "deps.go"} {
			b, err := os.ReadFile(filepath.Join(tools, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(out, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if b, err := run(out, "vet", "./..."); err != nil {
			t.Fatalf("the client oapi-codegen generates does not compile: %v\n%s", err, b)
		}
		src, err := os.ReadFile(gen)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"type JobStatus struct", "FinishedAt *time.Time `json:\"finished_at\"`", "Seed *int64 `json:\"seed\"`",
			"type Usage struct", "Organization string `json:\"organization\"`", "type GetUsageParams struct",
			"func (c *Client) CreateInference(", "type DeliveryLog struct", "Log *DeliveryLog `json:\"log,omitempty\"`",
		} {
			if !containsSpaced(string(src), want) {
				t.Errorf("the generated Go client lacks %q", want)
			}
		}
	})
	t.Run("openapi-typescript", func(t *testing.T) {
		t.Parallel()
		project, err := filepath.Abs(filepath.Join("testdata", "openapi-typescript"))
		if err != nil {
			t.Fatal(err)
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			unavailable(t, "no npm on PATH (install Node.js to enable)")
		}
		install := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
		install.Dir = project
		if b, err := install.CombinedOutput(); err != nil {
			unavailable(t, "npm ci (openapi-typescript from the npm registry): %v\n%s", err, b)
		}
		out := filepath.Join(t.TempDir(), "api.d.ts")
		cmd := exec.Command(filepath.Join(project, "node_modules", ".bin", "openapi-typescript"), spec, "-o", out)
		cmd.Dir = project
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openapi-typescript rejects openapi.json: %v\n%s", err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"export interface paths", "export interface webhooks", `"prompt.completed": {`, "export interface components",
			"JobStatus: {", "finished_at: string | null;", "organization: string;", "messages: components[\"schemas\"][\"WebhookMessage\"][];",
			"log?: components[\"schemas\"][\"DeliveryLog\"];", "getUsage: {", "from?: string;",
			// Optional request members stay optional (a default would make them required).
			`output_format?: ("png" | "jpeg" | "webp") | null;`, "num_images?: number | null;",
			`"application/problem+json": components["schemas"]["Problem"];`,
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("the generated TypeScript lacks %q", want)
			}
		}
	})
}

// containsSpaced reports whether s contains want, runs of spaces and tabs
// counting as one space (gofmt aligns struct fields).
func containsSpaced(s, want string) bool {
	space := regexp.MustCompile(`[ \t]+`)
	return strings.Contains(space.ReplaceAllString(s, " "), space.ReplaceAllString(want, " "))
}

// TestOpenAPIRequestNullsAreAbsent checks both sides of the document's promise
// that an optional request member sent as null is the same as absent: the schema
// accepts a request with every optional member null, and so does the server's
// decoding and validation.
func TestOpenAPIRequestNullsAreAbsent(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	body := []byte(`{"name":"n","pretrained_model_name":"diffute/tiny-sd","webhook":null,"secret":null,"output_format":null,"webhook_events":null,
		"prompts":[{"name":"a","prompt":"a lighthouse","num_images":null,"height":null,"width":null,"style":null,"negative_prompt":null,
		"seed":null,"rng":null,"steps":null,"guidance_scale":null,"scheduler":null}]}`)
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	schema := doc.Components.Schemas["InferenceRequest"].Value
	if err := schema.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.VisitAsRequest()); err != nil {
		t.Errorf("the document refuses nulls the server accepts: %v", err)
	}
	// Every optional member of the two request schemas is in the body above.
	for _, name := range []string{"InferenceRequest", "PromptRequest"} {
		s := doc.Components.Schemas[name].Value
		for field, p := range s.Properties {
			if !slices.Contains(s.Required, field) && !permitsNull(p.Value) {
				t.Errorf("%s.%s is optional but the document refuses null for it", name, field)
			}
		}
	}
	req, err := decodeInferenceRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Server{}).applyDefaults(context.Background(), req, body); err != nil {
		t.Fatal(err)
	}
	if err := req.Validate(diffute.DefaultLimits, nil); err != nil {
		t.Errorf("the server refuses a request whose optional members are null: %v", err)
	}
	if p := req.Prompts[0]; p.NumImages != 1 || p.Width != DefaultNativeSide || p.NegativePrompt != nil || p.Seed != nil {
		t.Errorf("nulls were not taken as absent: %+v", p)
	}
}
