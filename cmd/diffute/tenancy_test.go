package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tinyRequest asks for n 64×64 images in 2 steps.
func tinyRequest(webhook string, n int) map[string]any {
	return map[string]any{
		"name":                  "tenancy",
		"prompts":               []map[string]any{{"name": "p", "prompt": "a lighthouse", "num_images": n, "height": 64, "width": 64, "steps": 2, "seed": 1}},
		"webhook":               webhook,
		"secret":                "whsec-tenancy-4242",
		"pretrained_model_name": "diffute/tiny-sd",
	}
}

func putWithKey(t *testing.T, url, apiKey, idemKey string, body any) (*http.Response, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", apiKey)
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, data
}

func jobIDOf(t *testing.T, body []byte) int64 {
	t.Helper()
	var v struct {
		JobID int64 `json:"job_id"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.JobID == 0 {
		t.Fatalf("no job_id in %s (%v)", body, err)
	}
	return v.JobID
}

// TestIdempotencyKey200Parallel sends 200 identical requests with one
// Idempotency-Key at once: one job, every answer names it.
func TestIdempotencyKey200Parallel(t *testing.T) {
	t.Parallel()
	srv := startServe(t, "--workers", "0", "--rate-burst", "1000")
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	url := srv.url + "/acme/default/media/inference"
	body := tinyRequest("", 1)

	const n = 200
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ids      = map[int64]int{}
		fresh    int
		failures []string
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, data := putWithKey(t, url, key, "order-7f3a", body)
			mu.Lock()
			defer mu.Unlock()
			if resp.StatusCode != http.StatusAccepted {
				failures = append(failures, resp.Status+" "+string(data))
				return
			}
			var v struct {
				JobID int64 `json:"job_id"`
			}
			json.Unmarshal(data, &v)
			ids[v.JobID]++
			if resp.Header.Get("Idempotent-Replayed") != "true" {
				fresh++
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed, first: %s", len(failures), n, failures[0])
	}
	if len(ids) != 1 || fresh != 1 {
		t.Fatalf("job IDs %v, %d answers not marked as replays; want one job, one fresh answer", ids, fresh)
	}
	var id int64
	for k := range ids {
		id = k
	}
	resp, data := doJSON(t, http.MethodGet, fmt.Sprintf("%s/%d", url, id), key, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the job: %s %s", resp.Status, data)
	}
	// One job in the project: its usage/quota view agrees. A second key for the
	// same body is a second job.
	resp, data = putWithKey(t, url, key, "order-7f3b", body)
	if resp.StatusCode != http.StatusAccepted || jobIDOf(t, data) == id {
		t.Fatalf("another key: %s %s", resp.Status, data)
	}
	// The first key with another body: 422 naming the header.
	resp, data = putWithKey(t, url, key, "order-7f3a", tinyRequest("", 2))
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(data), `"field":"Idempotency-Key"`) {
		t.Fatalf("same key, other body: %s %s", resp.Status, data)
	}
	// A malformed key is refused, naming the header.
	resp, data = putWithKey(t, url, key, "has space", body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(data), "Idempotency-Key") {
		t.Fatalf("malformed key: %s %s", resp.Status, data)
	}
	// Another organization using the same Idempotency-Key gets its own job.
	other := createKey(t, srv.getenv, srv.dataDir, "globex", "")
	resp, data = putWithKey(t, srv.url+"/globex/default/media/inference", other, "order-7f3a", body)
	if resp.StatusCode != http.StatusAccepted || jobIDOf(t, data) == id || resp.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("other tenant, same key: %s %s", resp.Status, data)
	}
}

// TestTenantLimits: a tenant at its daily image limit gets 429 while another
// tenant's jobs run to completion; a tenant over its request rate gets 429 with
// Retry-After; usage is metered per project.
func TestTenantLimits(t *testing.T) {
	t.Parallel()
	limits := filepath.Join(t.TempDir(), "limits.json")
	if err := os.WriteFile(limits, []byte(`{"acme": {"max_images_per_day": 3}, "initech": {"rate_limit": 0.001, "rate_burst": 2}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, "--org-limits", limits)
	acme := createKey(t, srv.getenv, srv.dataDir, "acme", "")
	globex := createKey(t, srv.getenv, srv.dataDir, "globex", "")
	initech := createKey(t, srv.getenv, srv.dataDir, "initech", "")
	recv := newReceiver(t)

	resp, data := doJSON(t, http.MethodPut, srv.url+"/acme/default/media/inference", acme, tinyRequest(recv.URL, 3))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("acme's first job: %s %s", resp.Status, data)
	}
	acmeJob := jobIDOf(t, data)
	resp, data = doJSON(t, http.MethodPut, srv.url+"/acme/default/media/inference", acme, tinyRequest(recv.URL, 1))
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(data), "3 images today") {
		t.Fatalf("acme over its daily images: %s %s", resp.Status, data)
	}
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 1 || ra > 24*3600 {
		t.Errorf("Retry-After %q, want the seconds until 00:00 UTC", resp.Header.Get("Retry-After"))
	}
	// Another tenant is not held back: its jobs are accepted and run.
	var globexJobs []int64
	for range 2 {
		resp, data := doJSON(t, http.MethodPut, srv.url+"/globex/default/media/inference", globex, tinyRequest(recv.URL, 2))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("globex while acme is limited: %s %s", resp.Status, data)
		}
		globexJobs = append(globexJobs, jobIDOf(t, data))
	}
	done := map[int64]bool{}
	for len(done) < 3 {
		h := recv.wait(t, 60*time.Second)
		var m struct {
			JobID  int64  `json:"job_id"`
			Status string `json:"status"`
		}
		json.Unmarshal(h.body, &m)
		if m.Status != "succeeded" {
			t.Fatalf("job %d: %s", m.JobID, h.body)
		}
		done[m.JobID] = true
	}
	if !done[acmeJob] || !done[globexJobs[0]] || !done[globexJobs[1]] {
		t.Fatalf("finished %v, want acme's %d and globex's %v", done, acmeJob, globexJobs)
	}

	// Usage: globex/default made 4 images of 64×64 in 2 steps.
	resp, data = doJSON(t, http.MethodGet, srv.url+"/globex/default/usage", globex, nil)
	var usage struct {
		Days  []map[string]any `json:"days"`
		Total struct {
			Images        int64   `json:"images"`
			PixelSteps    int64   `json:"pixel_steps"`
			EngineSeconds float64 `json:"engine_seconds"`
		} `json:"total"`
	}
	if err := json.Unmarshal(data, &usage); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("usage: %s %s", resp.Status, data)
	}
	if usage.Total.Images != 4 || usage.Total.PixelSteps != 4*64*64*2 || usage.Total.EngineSeconds <= 0 || len(usage.Days) != 1 {
		t.Errorf("globex usage = %s", data)
	}
	resp, data = doJSON(t, http.MethodGet, fmt.Sprintf("%s/acme/default/media/inference/%d", srv.url, acmeJob), acme, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(data), `"usage":{"images":3,"pixel_steps":24576`) ||
		!strings.Contains(string(data), `"expires_at"`) {
		t.Errorf("acme status lacks usage or expires_at: %s", data)
	}
	resp, data = doJSON(t, http.MethodGet, srv.url+"/globex/default/usage?from=2026-13-01", globex, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(data), `"field":"from"`) {
		t.Errorf("bad from: %s %s", resp.Status, data)
	}

	// initech may make 2 requests, then waits about 1000 s for the next.
	for i := range 3 {
		resp, data := doJSON(t, http.MethodGet, srv.url+"/initech/default/usage", initech, nil)
		if i < 2 && resp.StatusCode != http.StatusOK {
			t.Fatalf("initech request %d: %s %s", i, resp.Status, data)
		}
		if i == 2 {
			ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			if resp.StatusCode != http.StatusTooManyRequests || ra < 900 || ra > 1000 {
				t.Fatalf("initech over its rate: %s Retry-After %q %s", resp.Status, resp.Header.Get("Retry-After"), data)
			}
		}
	}
	// …while globex's own bucket is untouched.
	if resp, _ := doJSON(t, http.MethodGet, srv.url+"/globex/default/usage", globex, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("globex after initech's 429: %s", resp.Status)
	}
}

// TestCrossTenantProbes tries every tenant endpoint with another organization's
// key, and with a key scoped to another project: all refused, nothing leaks.
func TestCrossTenantProbes(t *testing.T) {
	t.Parallel()
	srv := startServe(t, "--workers", "0")
	acme := createKey(t, srv.getenv, srv.dataDir, "acme", "")
	globex := createKey(t, srv.getenv, srv.dataDir, "globex", "")
	scoped := createKey(t, srv.getenv, srv.dataDir, "acme", "other")
	resp, data := doJSON(t, http.MethodPut, srv.url+"/acme/default/media/inference", acme, tinyRequest("", 1))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PUT: %s %s", resp.Status, data)
	}
	id := jobIDOf(t, data)
	probes := []struct{ method, path string }{
		{http.MethodPut, "/acme/default/media/inference"},
		{http.MethodGet, fmt.Sprintf("/acme/default/media/inference/%d", id)},
		{http.MethodGet, fmt.Sprintf("/acme/default/media/inference/%d/deliveries", id)},
		{http.MethodGet, "/acme/default/usage"},
		{http.MethodDelete, fmt.Sprintf("/acme/default/media/inference/%d", id)},
	}
	for _, k := range []struct{ name, key string }{{"globex", globex}, {"acme/other", scoped}} {
		for _, p := range probes {
			var body any
			if p.method == http.MethodPut {
				body = tinyRequest("", 1)
			}
			resp, data := doJSON(t, p.method, srv.url+p.path, k.key, body)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s key: %s %s = %s, want 403", k.name, p.method, p.path, resp.Status)
			}
			if strings.Contains(string(data), "tenancy") || strings.Contains(string(data), "lighthouse") {
				t.Errorf("%s key: %s %s leaks the job: %s", k.name, p.method, p.path, data)
			}
		}
	}
	// globex's key on its own paths with acme's job ID: no such job.
	for _, p := range probes[1:] {
		if p.path == "/acme/default/usage" {
			continue
		}
		path := strings.Replace(p.path, "/acme/", "/globex/", 1)
		if resp, _ := doJSON(t, p.method, srv.url+path, globex, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("globex: %s %s = %s, want 404", p.method, path, resp.Status)
		}
	}
	// No key, and a made-up key.
	for _, key := range []string{"", "dfk_notakey"} {
		if resp, _ := doJSON(t, http.MethodGet, fmt.Sprintf("%s/acme/default/media/inference/%d", srv.url, id), key, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("key %q: %s, want 401", key, resp.Status)
		}
	}
	// The job is untouched by the probes (the DELETEs were refused).
	if _, data := doJSON(t, http.MethodGet, fmt.Sprintf("%s/acme/default/media/inference/%d", srv.url, id), acme, nil); !strings.Contains(string(data), `"status":"queued"`) {
		t.Errorf("job after probes: %s", data)
	}
}

// TestNoSecretInLogsOrDatabase runs a job with a webhook through a real server
// with debug-free JSON logs, and then looks for every secret it used in the logs
// and in the database files.
func TestNoSecretInLogsOrDatabase(t *testing.T) {
	t.Parallel()
	const secretKey = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="
	srv := startServeEnv(t, map[string]string{"DIFFUTE_SECRET_KEY": secretKey}, "--media-retention", "2s", "--retention-interval", "1s")
	apiKey := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	recv := newReceiver(t)
	req := tinyRequest(recv.URL, 1)
	const webhookSecret = "whsec-tenancy-4242"
	resp, data := putWithKey(t, srv.url+"/acme/default/media/inference", apiKey+"/label", "idem-secret-test", req)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PUT: %s %s", resp.Status, data)
	}
	id := jobIDOf(t, data)
	hook := recv.wait(t, 60*time.Second)
	if got := hook.header.Get("Authorization"); got != "Bearer "+webhookSecret {
		t.Fatalf("webhook Authorization = %q: the sealed secret did not open", got)
	}
	var m struct {
		Images    map[string][]string `json:"images"`
		ExpiresAt *time.Time          `json:"expires_at"`
	}
	if err := json.Unmarshal(hook.body, &m); err != nil || m.ExpiresAt == nil || len(m.Images["p"]) != 1 {
		t.Fatalf("manifest %s (%v)", hook.body, err)
	}
	// Some failures too: they log.
	doJSON(t, http.MethodGet, srv.url+"/acme/default/media/inference/1", "dfk_wrong"+webhookSecret, nil)
	doJSON(t, http.MethodPut, srv.url+"/acme/default/media/inference", apiKey, map[string]any{"secret": webhookSecret})
	statusURL := fmt.Sprintf("%s/acme/default/media/inference/%d", srv.url, id)
	_, status := doJSON(t, http.MethodGet, statusURL, apiKey, nil)
	if strings.Contains(string(status), webhookSecret) {
		t.Errorf("status returns the webhook secret: %s", status)
	}

	// Retention (2 s here) deletes the image; its URL then answers 410.
	imageURL := m.Images["p"][0]
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(imageURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusGone {
			break
		}
		if resp.StatusCode != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("image URL: %s, want 200 until retention, then 410", resp.Status)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	// The job is marked just after its files go.
	for {
		_, status := doJSON(t, http.MethodGet, statusURL, apiKey, nil)
		if strings.Contains(string(status), `"media_deleted_at"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after retention lacks media_deleted_at: %s", status)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}

	secrets := map[string]string{"API key": apiKey, "webhook secret": webhookSecret, "secret key": secretKey, "secret key (raw part)": secretKey[:20]}
	logs := srv.stderr.String()
	if !strings.Contains(logs, `"msg":"request"`) {
		t.Fatalf("no request logs captured:\n%s", logs)
	}
	for name, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the logs contain the %s", name)
		}
	}
	files, _ := filepath.Glob(filepath.Join(srv.dataDir, "diffute.db*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for name, s := range secrets {
			if name != "API key" && bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains the %s in plain text", filepath.Base(f), name)
			}
		}
		if bytes.Contains(b, []byte(apiKey)) {
			t.Errorf("%s contains the API key", filepath.Base(f))
		}
	}
}

func TestSecretKeyConfig(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	f := tenancyFlags{secretKeyFile: filepath.Join(dataDir, "secret.key")}
	if _, err := f.secretBox(dataDir); err == nil || !strings.Contains(err.Error(), "inside --data-dir") {
		t.Errorf("key file in the data dir: %v", err)
	}
	f = tenancyFlags{secretKey: "too-short"}
	if _, err := f.secretBox(dataDir); err == nil || !strings.Contains(err.Error(), "openssl rand -base64 32") {
		t.Errorf("bad key: %v", err)
	}
	f = tenancyFlags{}
	if _, err := f.secretBox(dataDir); err == nil || !strings.Contains(err.Error(), "DIFFUTE_SECRET_KEY") {
		t.Errorf("no key: %v", err)
	}
	f = tenancyFlags{secretKeyFile: filepath.Join(t.TempDir(), "conf", "secret.key")}
	if _, err := f.secretBox(dataDir); err != nil {
		t.Errorf("key file outside: %v", err)
	}
	limits := filepath.Join(t.TempDir(), "limits.json")
	os.WriteFile(limits, []byte(`{"acme": {"max_jobs": 3}}`), 0o600)
	f = tenancyFlags{orgLimits: limits}
	if _, err := f.policy(); err == nil || !strings.Contains(err.Error(), "max_jobs") {
		t.Errorf("unknown field in --org-limits: %v", err)
	}
}
