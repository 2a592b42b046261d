package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
)

func TestCreateInference(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req := exampleRequest()
	prompt0(req)["seed"] = 42
	resp, body := b.put(t, mustJSON(t, req))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	var got struct {
		JobID  json.Number `json:"job_id"`
		Status string      `json:"status"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	id, err := strconv.ParseInt(got.JobID.String(), 10, 64)
	if err != nil || id < 1<<40 || id > diffute.MaxSeed {
		t.Fatalf("job_id %s is not an integer in [2^40, 2^53)", got.JobID)
	}
	if got.Status != "queued" {
		t.Errorf("status %q, want queued", got.Status)
	}
	if loc, want := resp.Header.Get("Location"), "/"+org+"/"+project+"/media/inference/"+got.JobID.String(); loc != want {
		t.Errorf("Location %q, want %q", loc, want)
	}
	job := b.mem.job(id)
	if job == nil {
		t.Fatal("job not stored")
	}
	if job.Org != org || job.Project != project || job.Name != "Houston" || job.Status != diffute.StatusQueued ||
		job.Model != "stabilityai/stable-diffusion-xl-base-1.0" || job.OutputFormat != diffute.FormatPNG ||
		job.Secret != "4f986e48-0129-480e-996a-728ea57c020c" || job.Webhook != "https://hooks.example.com/diffute" {
		t.Errorf("stored job %+v", job)
	}
	if time.Since(job.CreatedAt) > time.Minute || job.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt %v, want now in UTC", job.CreatedAt)
	}
	if len(job.Prompts) != 3 {
		t.Fatalf("%d prompts stored, want 3", len(job.Prompts))
	}
	for i, p := range job.Prompts {
		if p.Index != i || p.Seed == nil || *p.Seed < 0 || *p.Seed > diffute.MaxSeed || p.NumImages != 3 {
			t.Errorf("prompt %d stored as %+v", i, p)
		}
	}
	if *job.Prompts[0].Seed != 42 {
		t.Errorf("explicit seed stored as %d, want 42", *job.Prompts[0].Seed)
	}
	if *job.Prompts[1].Seed == *job.Prompts[2].Seed {
		t.Errorf("two resolved seeds are equal (%d): not random", *job.Prompts[1].Seed)
	}

	// A second submission is a different job with an unrelated ID.
	resp, body = b.put(t, mustJSON(t, req))
	if resp.StatusCode != http.StatusAccepted || strings.Contains(string(body), got.JobID.String()) {
		t.Errorf("second submission: %d %s", resp.StatusCode, body)
	}
}

// runningJob stores a running job with one finished image in the real disk store.
func runningJob(t *testing.T, b *testBundle) *diffute.Job {
	t.Helper()
	seed := int64(7)
	g := 7.5
	id := diffute.NewJobID()
	key := diffute.MediaKey(org, project, id, "Ansel_Adams", 0, "png")
	if err := b.disk.Put(t.Context(), key, []byte("png bytes"), "image/png"); err != nil {
		t.Fatal(err)
	}
	job := &diffute.Job{
		ID: id, Org: org, Project: project, Name: "Houston", Model: "tiny-sd",
		Webhook: "https://hooks.example.com/x", Secret: "very-secret-token-123", OutputFormat: "png",
		Status: diffute.StatusRunning, CreatedAt: time.Now().Add(-time.Minute), StartedAt: time.Now(),
		Prompts: []diffute.JobPrompt{
			{PromptRequest: diffute.PromptRequest{Name: "Ansel_Adams", Prompt: "Yosemite", Style: "photo", NumImages: 2,
				Width: 64, Height: 64, Seed: &seed, Steps: 4, GuidanceScale: &g, Scheduler: "euler"},
				ImagesDone: 1, Images: []string{key}},
			{PromptRequest: diffute.PromptRequest{Name: "Henri", Prompt: "jungle", NumImages: 2, Width: 64, Height: 64, Seed: &seed},
				Index: 1},
		},
	}
	b.mem.putJob(job)
	return job
}

func TestJobStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := runningJob(t, b)
	path := "/" + org + "/" + project + "/media/inference/" + strconv.FormatInt(job.ID, 10)

	resp, body := b.get(t, path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), job.Secret) || strings.Contains(string(body), "secret") {
		t.Fatalf("status response contains the secret: %s", body)
	}
	var st httpapi.JobStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if st.JobID != job.ID || st.Status != diffute.StatusRunning || st.Name != "Houston" || st.Model != "tiny-sd" ||
		st.StartedAt == nil || st.FinishedAt != nil || st.Manifest != nil || st.Progress != 0.25 {
		t.Errorf("status %+v", st)
	}
	p := st.Prompts[0]
	if p.Name != "Ansel_Adams" || p.Prompt != "Yosemite" || p.Style != "photo" || p.NumImages != 2 || p.ImagesDone != 1 ||
		p.Progress != 0.5 || *p.Seed != 7 || p.Steps != 4 || *p.GuidanceScale != 7.5 || p.Scheduler != "euler" || len(p.Images) != 1 {
		t.Errorf("prompt status %+v", p)
	}
	if st.Prompts[1].Progress != 0 || len(st.Prompts[1].Images) != 0 {
		t.Errorf("second prompt %+v", st.Prompts[1])
	}
	if st.Webhook.URL != job.Webhook || st.Webhook.State != diffute.DeliveryPending || st.Webhook.Attempts != 0 ||
		st.Webhook.Log == nil || len(st.Webhook.Log.Messages) != 0 {
		t.Errorf("webhook %+v", st.Webhook)
	}
	// The partial image URL opens without an API key.
	img, imgBody := b.do(t, http.MethodGet, strings.TrimPrefix(p.Images[0], b.srv.URL), nil, nil)
	if img.StatusCode != http.StatusOK || string(imgBody) != "png bytes" {
		t.Errorf("partial image URL: %d %q", img.StatusCode, imgBody)
	}
	// Every key the shape promises is there, with JSON null for unset times.
	var raw map[string]any
	json.Unmarshal(body, &raw)
	for _, k := range []string{"job_id", "name", "model", "status", "progress", "created_at", "started_at", "finished_at", "prompts", "webhook"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("status JSON lacks %q: %s", k, body)
		}
	}

	// Finished, with a failed then a successful delivery: manifest, no partial lists.
	job.Status, job.FinishedAt = diffute.StatusSucceeded, time.Now()
	job.Prompts[0].ImagesDone = 2
	b.mem.putJob(job)
	// The state is the terminal message's, as the store keeps it.
	wh := b.api.Webhooks.(*fakeWebhooks)
	setState := func(state diffute.DeliveryState) {
		wh.mu.Lock()
		defer wh.mu.Unlock()
		wh.messages[job.ID] = []diffute.WebhookMessage{{DeliveryID: 1, Event: diffute.EventCompleted, State: state}}
	}
	setState(diffute.DeliveryFailed)
	b.mem.mu.Lock()
	b.mem.deliveries[job.ID] = []diffute.DeliveryAttempt{{Attempt: 1, StatusCode: 500}}
	b.mem.mu.Unlock()
	_, body = b.get(t, path)
	st = httpapi.JobStatus{}
	json.Unmarshal(body, &st)
	if st.Webhook.State != diffute.DeliveryFailed || st.Webhook.Attempts != 1 || st.Webhook.LastStatusCode != 500 {
		t.Errorf("webhook after a failed attempt: %+v", st.Webhook)
	}
	setState(diffute.DeliveryDelivered)
	b.mem.mu.Lock()
	b.mem.deliveries[job.ID] = append(b.mem.deliveries[job.ID], diffute.DeliveryAttempt{Attempt: 2, StatusCode: 204, Latency: 3 * time.Millisecond})
	b.mem.mu.Unlock()
	_, body = b.get(t, path)
	st = httpapi.JobStatus{}
	json.Unmarshal(body, &st)
	if st.Webhook.State != diffute.DeliveryDelivered || st.Webhook.Attempts != 2 || st.Webhook.LastStatusCode != 204 {
		t.Errorf("webhook after a delivery: %+v", st.Webhook)
	}
	if st.Manifest == nil || st.Manifest.JobID != job.ID || st.Manifest.Status != diffute.StatusSucceeded ||
		len(st.Manifest.Images["Ansel_Adams"]) != 1 || len(st.Manifest.Images["Henri"]) != 0 {
		t.Fatalf("manifest %+v", st.Manifest)
	}
	if len(st.Prompts[0].Images) != 0 {
		t.Errorf("terminal job still lists partial images: %v", st.Prompts[0].Images)
	}
	if strings.Contains(string(body), job.Secret) {
		t.Fatalf("status response contains the secret: %s", body)
	}

	// The delivery log.
	resp, body = b.get(t, path+"/deliveries")
	var dl struct {
		JobID      int64 `json:"job_id"`
		Deliveries []struct {
			Attempt    int     `json:"attempt"`
			StatusCode int     `json:"status_code"`
			LatencyMS  float64 `json:"latency_ms"`
		} `json:"deliveries"`
	}
	if err := json.Unmarshal(body, &dl); err != nil || resp.StatusCode != 200 {
		t.Fatalf("deliveries: %d %s", resp.StatusCode, body)
	}
	if dl.JobID != job.ID || len(dl.Deliveries) != 2 || dl.Deliveries[1].StatusCode != 204 || dl.Deliveries[1].LatencyMS != 3 {
		t.Errorf("deliveries %+v", dl)
	}

	// A failed job reports its error.
	job.Status, job.Error = diffute.StatusFailed, "engine: out of memory"
	b.mem.putJob(job)
	_, body = b.get(t, path)
	st = httpapi.JobStatus{}
	json.Unmarshal(body, &st)
	if st.Error != job.Error || st.Manifest == nil || st.Manifest.Error != job.Error {
		t.Errorf("failed job status: %s", body)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := runningJob(t, b)
	path := "/" + org + "/" + project + "/media/inference/" + strconv.FormatInt(job.ID, 10)
	hdr := map[string]string{"x-api-key": b.key}
	resp, body := b.do(t, http.MethodDelete, path, hdr, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cancel: %d %s", resp.StatusCode, body)
	}
	var st httpapi.JobStatus
	if err := json.Unmarshal(body, &st); err != nil || st.Status != diffute.StatusCanceled {
		t.Fatalf("cancel answered %s", body)
	}
	if got := b.mem.job(job.ID).Status; got != diffute.StatusCanceled {
		t.Errorf("stored status %q after cancel", got)
	}
	resp, body = b.do(t, http.MethodDelete, path, hdr, nil)
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("second cancel: %d %s, want 409", resp.StatusCode, body)
	}
	decodeProblem(t, resp, body)
}

// TestTenantIsolation checks that another tenant's job is indistinguishable from a
// missing one, and that malformed job IDs are plain 404s.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := runningJob(t, b)
	id := strconv.FormatInt(job.ID, 10)
	globex := b.mem.addKey(diffute.APIKey{ID: 9, Org: "globex"})
	hdr := map[string]string{"x-api-key": globex}
	for _, tc := range []struct {
		method, path string
		hdr          map[string]string
		want         int
	}{
		{http.MethodGet, "/globex/" + project + "/media/inference/" + id, hdr, 404},
		{http.MethodDelete, "/globex/" + project + "/media/inference/" + id, hdr, 404},
		{http.MethodGet, "/globex/" + project + "/media/inference/" + id + "/deliveries", hdr, 404},
		{http.MethodGet, "/globex/" + project + "/media/inference/12345", hdr, 404},
		{http.MethodGet, "/" + org + "/" + project + "/media/inference/" + id, hdr, 403},
		{http.MethodGet, "/" + org + "/" + project + "/media/inference/" + id, nil, 401},
		{http.MethodGet, "/" + org + "/other/media/inference/" + id, map[string]string{"x-api-key": b.key}, 404},
		{http.MethodGet, "/" + org + "/" + project + "/media/inference/abc", map[string]string{"x-api-key": b.key}, 404},
		{http.MethodGet, "/" + org + "/" + project + "/media/inference/-1", map[string]string{"x-api-key": b.key}, 404},
		{http.MethodGet, "/" + org + "/" + project + "/media/inference/99999999999999999999", map[string]string{"x-api-key": b.key}, 404},
	} {
		resp, body := b.do(t, tc.method, tc.path, tc.hdr, nil)
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d; %s", tc.method, tc.path, resp.StatusCode, tc.want, body)
			continue
		}
		decodeProblem(t, resp, body)
	}
	if got := b.mem.job(job.ID).Status; got != diffute.StatusRunning {
		t.Errorf("another tenant changed the job to %q", got)
	}
}

func TestMediaServing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	key := diffute.MediaKey(org, project, 1234567890123, "p", 0, "png")
	data := []byte(strings.Repeat("abcdefghij", 50))
	if err := b.disk.Put(t.Context(), key, data, "image/png"); err != nil {
		t.Fatal(err)
	}
	u, err := b.disk.URL(t.Context(), key, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(u, b.srv.URL)
	resp, body := b.do(t, http.MethodGet, path, nil, nil)
	if resp.StatusCode != 200 || string(body) != string(data) || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("GET media: %d %q %v", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "private, max-age=3600" && cc != "private, max-age=3599" {
		t.Errorf("Cache-Control %q", cc)
	}
	resp, _ = b.do(t, http.MethodGet, path, map[string]string{"If-None-Match": etag}, nil)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
	}
	resp, body = b.do(t, http.MethodGet, path, map[string]string{"Range": "bytes=-5"}, nil)
	if resp.StatusCode != http.StatusPartialContent || string(body) != "fghij" || resp.Header.Get("Content-Range") != "bytes 495-499/500" {
		t.Errorf("Range: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
	resp, body = b.do(t, http.MethodHead, path, nil, nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != 500 {
		t.Errorf("HEAD: %d, %d body bytes, Content-Length %d", resp.StatusCode, len(body), resp.ContentLength)
	}

	sig := path[strings.Index(path, "sig=")+4:]
	flip := "A"
	if sig[0] == 'A' {
		flip = "B"
	}
	tampered := strings.Replace(path, "sig="+sig, "sig="+flip+sig[1:], 1)
	expired := strings.TrimPrefix(b.signer.URL(key, time.Now().Add(-time.Second)), b.srv.URL)
	absent := strings.TrimPrefix(b.signer.URL(key+"x.png", time.Now().Add(time.Hour)), b.srv.URL)
	for _, tc := range []struct {
		name, path string
		want       int
	}{
		{"tampered signature", tampered, 403},
		{"expired", expired, 403},
		{"unsigned", "/media/" + key, 403},
		{"other key, same signature", strings.Replace(path, "/0.png", "/1.png", 1), 403},
		{"absent (signed, so it was deleted)", absent, 410},
	} {
		resp, body := b.do(t, http.MethodGet, tc.path, nil, nil)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
			continue
		}
		p := decodeProblem(t, resp, body)
		if strings.Contains(p.Instance, "sig=") || resp.Header.Get("ETag") != "" {
			t.Errorf("%s: problem leaks the query or keeps media headers: %+v", tc.name, p)
		}
	}
}

func TestRouteFallbacks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	resp, body := b.do(t, http.MethodGet, "/no/such/route/at/all/here", nil, nil)
	if resp.StatusCode != 404 {
		t.Fatalf("unknown route: %d", resp.StatusCode)
	}
	decodeProblem(t, resp, body)
	resp, body = b.do(t, http.MethodPost, "/"+org+"/"+project+"/media/inference", nil, "{}")
	if resp.StatusCode != 405 {
		t.Fatalf("POST inference: %d, want 405", resp.StatusCode)
	}
	decodeProblem(t, resp, body)
	if allow := resp.Header.Get("Allow"); !strings.Contains(allow, "PUT") {
		t.Errorf("Allow %q does not list PUT", allow)
	}
	resp, body = b.do(t, http.MethodDelete, "/media/a/b.png", nil, nil)
	if resp.StatusCode != 405 {
		t.Errorf("DELETE media: %d, want 405", resp.StatusCode)
	}
	decodeProblem(t, resp, body)
	resp, _ = b.do(t, http.MethodPost, "/healthz", nil, nil)
	if resp.StatusCode != 405 {
		t.Errorf("POST /healthz: %d, want 405", resp.StatusCode)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if resp, body := b.do(t, http.MethodGet, "/readyz", nil, nil); resp.StatusCode != 200 {
		t.Errorf("readyz with a healthy store: %d %s", resp.StatusCode, body)
	}
	b.store.PingFn = func(context.Context) error { return errors.New("database is locked") }
	resp, body := b.do(t, http.MethodGet, "/readyz", nil, nil)
	if resp.StatusCode != 503 {
		t.Fatalf("readyz with a failing store: %d", resp.StatusCode)
	}
	if p := decodeProblem(t, resp, body); strings.Contains(p.Detail, "locked") {
		t.Errorf("readyz leaks the cause to the client: %q", p.Detail)
	}
	if !strings.Contains(b.logs.String(), "database is locked") {
		t.Error("the cause of not being ready was not logged")
	}
	// An explicit Ready function takes precedence.
	b.api.Ready = func(context.Context) error { return nil } // no request is in flight
	if resp, _ := b.get(t, "/readyz"); resp.StatusCode != 200 {
		t.Errorf("readyz with Ready returning nil: %d", resp.StatusCode)
	}
}

// TestInternalErrors checks that a store failure and a panic both become a 500 that
// says nothing, logged once with what the operator needs, and leave the server healthy.
func TestInternalErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.store.CreateJobFn = func(context.Context, *diffute.Job) error {
		return errors.New("disk I/O error at /var/lib/diffute/db")
	}
	resp, body := b.put(t, mustJSON(t, exampleRequest()))
	if resp.StatusCode != 500 {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
	p := decodeProblem(t, resp, body)
	if p.Detail != "internal error" || strings.Contains(string(body), "disk I/O") {
		t.Errorf("internal detail reached the client: %s", body)
	}
	logs := b.logs.String()
	if n := strings.Count(logs, "disk I/O error"); n != 1 {
		t.Errorf("the error was logged %d times, want once:\n%s", n, logs)
	}
	for _, want := range []string{`"job_id":`, `"org":"acme"`, `"project":"web-app"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("error log lacks %s:\n%s", want, logs)
		}
	}

	b.store.JobFn = func(context.Context, string, string, int64) (*diffute.Job, error) {
		panic("nil map in the store")
	}
	resp, body = b.get(t, "/"+org+"/"+project+"/media/inference/1234567890123")
	if resp.StatusCode != 500 {
		t.Fatalf("panic: status %d, want 500", resp.StatusCode)
	}
	if p := decodeProblem(t, resp, body); p.Detail != "internal error" {
		t.Errorf("panic detail %q", p.Detail)
	}
	if !strings.Contains(b.logs.String(), "nil map in the store") {
		t.Error("the panic was not logged")
	}
	if resp, _ := b.do(t, http.MethodGet, "/healthz", nil, nil); resp.StatusCode != 200 {
		t.Errorf("/healthz after a panic: %d", resp.StatusCode)
	}
}

// TestLogsHoldNoSecrets checks that the request log has one line per request and
// never the API key, the webhook secret, a media signature or a body.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	b := setup(t)
	resp, body := b.put(t, mustJSON(t, exampleRequest()))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	u, _ := b.disk.URL(t.Context(), "acme/web-app/1/p/0.png", time.Hour)
	b.do(t, http.MethodGet, strings.TrimPrefix(u, b.srv.URL), nil, nil)
	b.put(t, `{"name": "x", "secret": "body-secret-xyz"`) // malformed, still must not be logged
	logs := b.logs.String()
	sig := u[strings.Index(u, "sig=")+4:]
	key, _, _ := strings.Cut(b.key, "/")
	for _, secret := range []string{key, "4f986e48-0129-480e-996a-728ea57c020c", sig, "body-secret-xyz", "Yosemite"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
	var lines int
	for line := range strings.Lines(logs) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == "request" {
			lines++
			for _, k := range []string{"method", "path", "route", "status", "duration_ms", "request_id"} {
				if _, ok := rec[k]; !ok {
					t.Errorf("request log line lacks %q: %s", k, line)
				}
			}
		}
	}
	if lines != 3 {
		t.Errorf("%d request log lines, want 3:\n%s", lines, logs)
	}
}

// A negative prompt sent as "" and an rng survive submission and show in the
// status; an absent negative prompt stays absent (the engine treats the two
// differently on SDXL).
func TestNegativePromptAndRNGRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req := exampleRequest()
	prompt0(req)["negative_prompt"] = ""
	prompt0(req)["rng"] = "cuda"
	delete(req["prompts"].([]any)[1].(map[string]any), "negative_prompt")
	resp, body := b.put(t, mustJSON(t, req))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	var acc struct {
		JobID int64 `json:"job_id"`
	}
	if err := json.Unmarshal(body, &acc); err != nil {
		t.Fatal(err)
	}
	job := b.mem.job(acc.JobID)
	if p := job.Prompts[0]; p.NegativePrompt == nil || *p.NegativePrompt != "" || p.RNG != diffute.RNGCUDA {
		t.Errorf("prompt 0 stored with negative %v, rng %q", p.NegativePrompt, p.RNG)
	}
	if p := job.Prompts[1]; p.NegativePrompt != nil || p.RNG != "" {
		t.Errorf("prompt 1 stored with negative %v, rng %q; want none", p.NegativePrompt, p.RNG)
	}
	_, body = b.get(t, "/"+org+"/"+project+"/media/inference/"+strconv.FormatInt(acc.JobID, 10))
	var st struct {
		Prompts []map[string]any `json:"prompts"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if neg, ok := st.Prompts[0]["negative_prompt"]; !ok || neg != "" || st.Prompts[0]["rng"] != "cuda" {
		t.Errorf("status prompt 0 = %v", st.Prompts[0])
	}
	if _, ok := st.Prompts[1]["negative_prompt"]; ok {
		t.Errorf("status prompt 1 has a negative_prompt: %v", st.Prompts[1])
	}
}
