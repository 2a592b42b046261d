package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
)

// generate sends POST /v1/images/generations with the bundle's key as a
// Bearer token (and the extra headers given).
func (b *testBundle) generate(t *testing.T, header map[string]string, body any) (*http.Response, []byte) {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + b.key}
	for k, v := range header {
		h[k] = v
	}
	return b.do(t, http.MethodPost, "/v1/images/generations", h, body)
}

// finishOnlyJob plays the worker: it waits for the one job submitted, stores
// a PNG of the job's size for each image it asks for, marks it succeeded and
// wakes the waiting request. It returns the images, in order.
func (b *testBundle) finishOnlyJob(t *testing.T) <-chan [][]byte {
	t.Helper()
	out := make(chan [][]byte, 1)
	go func() {
		defer close(out)
		id := b.onlyJob(t)
		if id == 0 {
			return
		}
		b.mem.mu.Lock()
		j := b.mem.jobs[id]
		p := &j.Prompts[0]
		var images [][]byte
		for i := range p.NumImages {
			var buf bytes.Buffer
			img := image.NewGray(image.Rect(0, 0, p.Width, p.Height))
			img.Pix[0] = byte(i + 1) // each image its own bytes
			if err := png.Encode(&buf, img); err != nil {
				t.Error(err)
			}
			key := diffute.MediaKey(j.Org, j.Project, j.ID, p.Name, i, "png")
			if err := b.disk.Put(context.Background(), key, buf.Bytes(), "image/png"); err != nil {
				t.Error(err)
			}
			p.Images = append(p.Images, key)
			images = append(images, buf.Bytes())
		}
		p.ImagesDone = p.NumImages
		j.Status, j.StartedAt, j.FinishedAt = diffute.StatusSucceeded, time.Now(), time.Now()
		b.mem.mu.Unlock()
		b.api.JobEnds.Ended(id)
		out <- images
	}()
	return out
}

// openAIError decodes an error answer and checks its shape: a JSON object
// with an error whose message and type are set and whose param and code are
// present (null or a string).
func openAIError(t *testing.T, resp *http.Response, body []byte) httpapi.OpenAIError {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json; body %s", ct, body)
	}
	var raw struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := raw.Error[k]; !ok {
			t.Errorf("error body %s lacks %q", body, k)
		}
	}
	var e httpapi.OpenAIErrorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	if e.Error.Message == "" || e.Error.Type == "" {
		t.Errorf("error %s lacks a message or type", body)
	}
	return e.Error
}

func str(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}

func TestOpenAIImagesURL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	done := b.finishOnlyJob(t)
	resp, body := b.generate(t, nil, `{"prompt": "a lighthouse at dusk", "n": 2, "size": "256x128",
		"quality": "hd", "style": "natural", "user": "user-1234", "model": "tiny-sd"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	images := <-done
	var out httpapi.OpenAIImagesResponse
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Data) != 2 || out.Size != "256x128" || out.OutputFormat != "png" || out.Created < time.Now().Add(-time.Minute).Unix() {
		t.Fatalf("response %s", body)
	}
	for i, d := range out.Data {
		if d.B64JSON != "" || !strings.HasPrefix(d.URL, b.srv.URL+"/media/") {
			t.Fatalf("image %d: %+v", i, d)
		}
		img, err := http.Get(d.URL) // no key: the URL is signed
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		_, err = got.ReadFrom(img.Body)
		img.Body.Close()
		if err != nil || img.StatusCode != http.StatusOK || !bytes.Equal(got.Bytes(), images[i]) {
			t.Errorf("GET image %d: %d, %d bytes, %v", i, img.StatusCode, got.Len(), err)
		}
	}
	// One ordinary job of the key's organization, in the default project.
	id := resp.Header.Get("Diffute-Job-Id")
	var jobID int64
	if _, err := fmt.Sscan(id, &jobID); err != nil {
		t.Fatalf("Diffute-Job-Id %q", id)
	}
	j := b.mem.job(jobID)
	if j == nil || j.Org != org || j.Project != httpapi.DefaultOpenAIProject || j.Model != "tiny-sd" || len(j.Prompts) != 1 {
		t.Fatalf("job %+v", j)
	}
	if p := j.Prompts[0]; p.Prompt != "a lighthouse at dusk" || p.NumImages != 2 || p.Width != 256 || p.Height != 128 || p.Style != "" || p.Seed == nil {
		t.Errorf("prompt %+v", p)
	}
}

func TestOpenAIImagesB64AndDefaults(t *testing.T) {
	t.Parallel()
	b := setup(t)
	done := b.finishOnlyJob(t)
	// No model: the first served one; no size: its native 512×512; no n: 1.
	resp, body := b.generate(t, nil, `{"prompt": "a red fox", "response_format": "b64_json", "size": null, "n": null}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	images := <-done
	var out httpapi.OpenAIImagesResponse
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Data) != 1 || out.Data[0].URL != "" || out.Size != "512x512" {
		t.Fatalf("response %.300s", body)
	}
	data, err := base64.StdEncoding.DecodeString(out.Data[0].B64JSON)
	if err != nil || !bytes.Equal(data, images[0]) {
		t.Errorf("b64_json: %d bytes, %v; want the stored image", len(data), err)
	}
	if j := b.mem.job(b.onlyJob(t)); j.Model != servedModels[0] || j.Prompts[0].Width != 512 || j.Prompts[0].NumImages != 1 {
		t.Errorf("job model %q prompt %+v", j.Model, j.Prompts[0])
	}
}

func TestOpenAIImagesOutputFormat(t *testing.T) {
	t.Parallel()
	b := setup(t)
	go func() {
		id := b.onlyJob(t)
		b.mem.mu.Lock()
		j := b.mem.jobs[id]
		j.Status, j.FinishedAt = diffute.StatusFailed, time.Now()
		j.Error = "the engine gave up"
		b.mem.mu.Unlock()
		b.api.JobEnds.Ended(id)
	}()
	resp, body := b.generate(t, nil, `{"prompt": "a red fox", "output_format": "webp"}`)
	if j := b.mem.job(b.onlyJob(t)); j.OutputFormat != diffute.FormatWebP {
		t.Errorf("output format %q", j.OutputFormat)
	}
	// The job failed: a server error that the SDKs must not retry (a retry
	// would submit the work again).
	if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("x-should-retry") != "false" {
		t.Fatalf("status %d, x-should-retry %q, body %s", resp.StatusCode, resp.Header.Get("x-should-retry"), body)
	}
	if e := openAIError(t, resp, body); e.Type != "server_error" || str(e.Code) != "job_failed" || !strings.Contains(e.Message, "the engine gave up") {
		t.Errorf("error %+v", e)
	}
}

func TestOpenAIImagesBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name, body   string
		status       int
		param, code  string
		messageHints string
	}{
		{"n 0", `{"prompt": "p", "n": 0}`, 400, "n", "integer_below_min_value", ">= 1"},
		{"n 100", `{"prompt": "p", "n": 100}`, 400, "n", "integer_above_max_value", "<= 8"},
		{"n negative", `{"prompt": "p", "n": -1}`, 400, "n", "integer_below_min_value", ""},
		{"n string", `{"prompt": "p", "n": "2"}`, 400, "n", "invalid_type", "integer"},
		{"n fraction", `{"prompt": "p", "n": 1.5}`, 400, "n", "invalid_type", "integer"},
		{"size 13x13", `{"prompt": "p", "size": "13x13"}`, 400, "size", "invalid_value", "multiple of 8"},
		{"size not multiple of 8", `{"prompt": "p", "size": "100x100"}`, 400, "size", "invalid_value", ""},
		{"size too large", `{"prompt": "p", "size": "4096x4096"}`, 400, "size", "invalid_value", ""},
		{"size too many pixels", `{"prompt": "p", "size": "2048x2048"}`, 400, "size", "invalid_value", ""},
		{"size malformed", `{"prompt": "p", "size": "512"}`, 400, "size", "invalid_value", ""},
		{"size with spaces", `{"prompt": "p", "size": "512 x 512"}`, 400, "size", "invalid_value", ""},
		{"size number", `{"prompt": "p", "size": 512}`, 400, "size", "invalid_type", ""},
		{"response_format", `{"prompt": "p", "response_format": "xml"}`, 400, "response_format", "invalid_value", "b64_json"},
		{"output_format", `{"prompt": "p", "output_format": "gif"}`, 400, "output_format", "invalid_value", ""},
		{"quality", `{"prompt": "p", "quality": "ultra"}`, 400, "quality", "invalid_value", ""},
		{"style", `{"prompt": "p", "style": "bold"}`, 400, "style", "invalid_value", ""},
		{"background transparent", `{"prompt": "p", "background": "transparent"}`, 400, "background", "unsupported_value", ""},
		{"output_compression", `{"prompt": "p", "output_compression": 101}`, 400, "output_compression", "invalid_value", ""},
		{"stream", `{"prompt": "p", "stream": true}`, 400, "stream", "unsupported_value", ""},
		{"partial_images", `{"prompt": "p", "partial_images": 2}`, 400, "partial_images", "unsupported_value", ""},
		{"missing prompt", `{"n": 1}`, 400, "prompt", "missing_required_parameter", ""},
		{"empty prompt", `{"prompt": " "}`, 400, "prompt", "empty_string", ""},
		{"prompt number", `{"prompt": 5}`, 400, "prompt", "invalid_type", "string"},
		{"prompt too long", `{"prompt": "` + strings.Repeat("a", 4001) + `"}`, 400, "prompt", "", "4000"},
		{"prompt control character", `{"prompt": "a\u0000b"}`, 400, "prompt", "", ""},
		{"unknown parameter", `{"prompt": "p", "seed": 1}`, 400, "seed", "unknown_parameter", "seed"},
		{"long unknown parameter", `{"prompt": "p", "` + strings.Repeat("x", 100) + `": 1}`, 400, strings.Repeat("x", 64) + "…", "unknown_parameter", ""},
		{"repeated parameter", `{"prompt": "p", "n": 1, "n": 2}`, 400, "n", "", ""},
		{"unknown model", `{"prompt": "p", "model": "dall-e-3"}`, 404, "model", "model_not_found", "tiny-sd"},
		{"not JSON", `prompt=a fox`, 400, "", "", "parse"},
		{"empty body", ``, 400, "", "", ""},
		{"array", `[{"prompt": "p"}]`, 400, "", "", "object"},
		{"trailing data", `{"prompt": "p"} {}`, 400, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := b.generate(t, nil, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.status, body)
			}
			e := openAIError(t, resp, body)
			if e.Type != "invalid_request_error" || str(e.Param) != cmpOr(tc.param, "<null>") || str(e.Code) != cmpOr(tc.code, "<null>") {
				t.Errorf("error %s; want param %q code %q", body, tc.param, tc.code)
			}
			if !strings.Contains(e.Message, tc.messageHints) {
				t.Errorf("message %q does not mention %q", e.Message, tc.messageHints)
			}
		})
	}
	resp, body := b.generate(t, map[string]string{"Content-Type": "text/plain"}, `{"prompt": "p"}`)
	if resp.StatusCode != http.StatusUnsupportedMediaType || openAIError(t, resp, body).Type != "invalid_request_error" {
		t.Errorf("text/plain: %d %s", resp.StatusCode, body)
	}
	if n := b.mem.createCount(); n != 0 {
		t.Errorf("%d jobs created from bad requests", n)
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestOpenAIImagesAuth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	projectKey := b.mem.addKey(diffute.APIKey{ID: 2, Org: org, Project: project, Name: "web"})
	revoked := b.mem.addKey(diffute.APIKey{ID: 3, Org: org, Name: "old", RevokedAt: time.Now()})
	const body = `{"prompt": "p", "n": 0}` // a bad request: past authentication, nothing is submitted
	for _, tc := range []struct {
		name   string
		header map[string]string
		status int
		code   string
	}{
		{"no key", map[string]string{"Authorization": ""}, 401, ""},
		{"x-api-key instead", map[string]string{"Authorization": "", "x-api-key": b.key}, 401, ""},
		{"basic auth", map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(b.key+":"))}, 401, ""},
		{"unknown key", map[string]string{"Authorization": "Bearer dfk_nope"}, 401, "invalid_api_key"},
		{"revoked key", map[string]string{"Authorization": "Bearer " + revoked}, 401, "invalid_api_key"},
		{"other project", map[string]string{"Authorization": "Bearer " + projectKey, "OpenAI-Project": "other"}, 403, "mismatched_project"},
		{"bad project name", map[string]string{"OpenAI-Project": "../x"}, 400, ""},
		{"project key", map[string]string{"Authorization": "Bearer " + projectKey}, 400, "integer_below_min_value"},
		{"its own project named", map[string]string{"Authorization": "bearer " + projectKey, "OpenAI-Project": project}, 400, "integer_below_min_value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, data := b.generate(t, tc.header, body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.status, data)
			}
			if e := openAIError(t, resp, data); str(e.Code) != cmpOr(tc.code, "<null>") || e.Type != "invalid_request_error" {
				t.Errorf("error %s, want code %q", data, tc.code)
			}
		})
	}
}

func TestOpenAIImagesProject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		scoped  bool
		header  string
		project string
	}{
		{"org key", false, "", httpapi.DefaultOpenAIProject},
		{"org key, OpenAI-Project", false, "mobile", "mobile"},
		{"project key", true, "", project},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.api.OpenAIWait = 50 * time.Millisecond // nothing runs the job
			if tc.scoped {
				b.key = b.mem.addKey(diffute.APIKey{ID: 2, Org: org, Project: project})
			}
			h := map[string]string{}
			if tc.header != "" {
				h["OpenAI-Project"] = tc.header
			}
			resp, body := b.generate(t, h, `{"prompt": "p"}`)
			if resp.StatusCode != http.StatusGatewayTimeout {
				t.Fatalf("status %d, body %s", resp.StatusCode, body)
			}
			if j := b.mem.job(b.onlyJob(t)); j.Org != org || j.Project != tc.project {
				t.Errorf("job in %s/%s, want %s/%s", j.Org, j.Project, org, tc.project)
			}
		})
	}
}

// TestOpenAIImagesTimeout: a job that has not ended within the wait goes on;
// the answer names it and tells the SDKs not to retry.
func TestOpenAIImagesTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.OpenAIWait = 100 * time.Millisecond
	resp, body := b.generate(t, nil, `{"prompt": "p"}`)
	if resp.StatusCode != http.StatusGatewayTimeout || resp.Header.Get("x-should-retry") != "false" {
		t.Fatalf("status %d, x-should-retry %q, body %s", resp.StatusCode, resp.Header.Get("x-should-retry"), body)
	}
	e := openAIError(t, resp, body)
	id := b.onlyJob(t)
	loc := fmt.Sprintf("/%s/%s/media/inference/%d", org, httpapi.DefaultOpenAIProject, id)
	if e.Type != "server_error" || str(e.Code) != "timeout" || !strings.Contains(e.Message, loc) || resp.Header.Get("Location") != loc {
		t.Errorf("error %+v, Location %q; want %s", e, resp.Header.Get("Location"), loc)
	}
	if j := b.mem.job(id); j.Status != diffute.StatusQueued {
		t.Errorf("job %s after the timeout, want it still queued", j.Status)
	}
}

// TestOpenAIImagesClientGone: a client that goes away leaves its job queued.
func TestOpenAIImagesClientGone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.srv.URL+"/v1/images/generations", strings.NewReader(`{"prompt": "p"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+b.key)
	go func() {
		b.onlyJob(t)
		cancel()
	}()
	if resp, err := b.srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("answered %d after the client went away", resp.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.logs.String(), "images client went away") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(b.logs.String(), "images client went away") {
		t.Errorf("no log line; logs %s", b.logs.String())
	}
	if j := b.mem.job(b.onlyJob(t)); j.Status != diffute.StatusQueued {
		t.Errorf("job %s, want it still queued", j.Status)
	}
}

func TestOpenAIImagesLimits(t *testing.T) {
	t.Parallel()
	t.Run("rate limit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.api.Policy = func(string) httpapi.TenantPolicy {
			return httpapi.TenantPolicy{RateLimit: httpapi.RateLimit{Rate: 0.001, Burst: 1}}
		}
		b.generate(t, nil, `{"prompt": "p", "n": 0}`) // spends the one token
		resp, body := b.generate(t, nil, `{"prompt": "p"}`)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("status %d, Retry-After %q, body %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		if e := openAIError(t, resp, body); e.Type != "requests" || str(e.Code) != "rate_limit_exceeded" {
			t.Errorf("error %+v", e)
		}
	})
	t.Run("quota", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.api.Tenancy.(*fakeTenancy).SubmitJobFn = func(context.Context, *diffute.Job, diffute.Submission) (int64, bool, error) {
			return 0, false, &diffute.QuotaError{RetryAfter: 5 * time.Hour, Err: diffute.Errorf(diffute.ERATELIMIT, "project acme/default has requested 100 of its 100 images today")}
		}
		resp, body := b.generate(t, nil, `{"prompt": "p"}`)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "18000" || resp.Header.Get("x-should-retry") != "false" {
			t.Fatalf("status %d, Retry-After %q, x-should-retry %q, body %s", resp.StatusCode,
				resp.Header.Get("Retry-After"), resp.Header.Get("x-should-retry"), body)
		}
		if e := openAIError(t, resp, body); e.Type != "insufficient_quota" || str(e.Code) != "insufficient_quota" || !strings.Contains(e.Message, "100 images") {
			t.Errorf("error %+v", e)
		}
	})
	t.Run("store failure", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.api.Tenancy.(*fakeTenancy).SubmitJobFn = func(context.Context, *diffute.Job, diffute.Submission) (int64, bool, error) {
			return 0, false, fmt.Errorf("database is locked")
		}
		resp, body := b.generate(t, nil, `{"prompt": "p"}`)
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("status %d, body %s", resp.StatusCode, body)
		}
		if e := openAIError(t, resp, body); e.Type != "server_error" || strings.Contains(e.Message, "locked") {
			t.Errorf("error %+v: internal details must not reach the client", e)
		}
		if !strings.Contains(b.logs.String(), "database is locked") {
			t.Error("internal error not logged")
		}
	})
}

// TestOpenAIModels: GET /v1/models lists the served models in OpenAI's shape,
// with the same Bearer key check as the images route.
func TestOpenAIModels(t *testing.T) {
	t.Parallel()
	b := setup(t)
	resp, body := b.do(t, http.MethodGet, "/v1/models", map[string]string{"Authorization": "Bearer " + b.key}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/models: %d %s", resp.StatusCode, body)
	}
	var list httpapi.OpenAIModelList
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if list.Object != "list" || len(list.Data) != len(b.api.Models) || len(list.Data) == 0 {
		t.Fatalf("list %+v, want the %d served models", list, len(b.api.Models))
	}
	for i, m := range list.Data {
		if m.ID != b.api.Models[i] || m.Object != "model" || m.OwnedBy != "diffute" {
			t.Errorf("model %d = %+v, want %s", i, m, b.api.Models[i])
		}
	}
	resp, body = b.do(t, http.MethodGet, "/v1/models", map[string]string{"Authorization": "Bearer dfk_wrong"}, nil)
	if e := openAIError(t, resp, body); resp.StatusCode != http.StatusUnauthorized || str(e.Code) != "invalid_api_key" {
		t.Errorf("bad key: %d %+v", resp.StatusCode, e)
	}
}
