package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMetricsAfterAJob runs a real serve: its /metrics lists every known series at
// zero from the start, then counts a job with a webhook, two refused submissions
// and the requests by route; its logs carry the fields operators search by.
func TestMetricsAfterAJob(t *testing.T) {
	t.Parallel()
	srv := startServe(t)
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	recv := newReceiver(t)
	const model = "diffute/tiny-sd"
	const put = `route="PUT /{org}/{project}/media/inference"`

	before := scrape(t, srv.url)
	for series, v := range map[string]float64{
		`diffute_jobs_submitted_total`:                                               0,
		`diffute_jobs_rejected_total{reason="validation"}`:                           0,
		`diffute_jobs_rejected_total{reason="quota"}`:                                0,
		`diffute_jobs_finished_total{status="succeeded"}`:                            0,
		`diffute_jobs_running`:                                                       0,
		`diffute_inference_slots`:                                                    1,
		`diffute_job_queue_wait_seconds_count{model="` + model + `"}`:                0,
		`diffute_images_generated_total{model="` + model + `"}`:                      0,
		`diffute_engine_loaded_models{model="` + model + `"}`:                        0,
		`diffute_webhook_attempts_total{outcome="delivered",status_class="2xx"}`:     0,
		`diffute_webhook_attempts_total{outcome="failed_final",status_class="none"}`: 0,
		`diffute_webhook_attempts_stored{outcome="success"}`:                         0,
		`diffute_queue_depth{queue="default"}`:                                       0,
		`diffute_queue_depth{queue="webhooks"}`:                                      0,
		`diffute_scrape_error`:                                                       0,
	} {
		if got := value(before, series); got != v {
			t.Errorf("at start: %s = %v, want %v", series, got, v)
		}
	}
	build := regexp.MustCompile(`(?m)^diffute_build_info\{commit="[^"]*",device="cpu",go_version="go[0-9.]+[^"]*",onnxruntime_version="1\.[0-9.]+",version="[^"]+"\} 1$`)
	if !build.MatchString(before) {
		t.Errorf("no diffute_build_info with device and ONNX Runtime version:\n%s", grepLines(before, "diffute_build_info"))
	}
	for _, series := range []string{"go_goroutines ", "process_resident_memory_bytes ", `le="+Inf"`} {
		if !strings.Contains(before, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}

	resp, body := doJSON(t, http.MethodPut, srv.url+"/acme/default/media/inference", key, smallRequest(recv.URL+"/hook", model))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	if id := resp.Header.Get("X-Request-Id"); !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(id) {
		t.Errorf("X-Request-Id = %q", id)
	}
	var accepted struct {
		JobID int64 `json:"job_id"`
	}
	if err := json.Unmarshal(body, &accepted); err != nil {
		t.Fatal(err)
	}
	bad := smallRequest(recv.URL+"/hook", model)
	delete(bad, "prompts")
	if resp, body := doJSON(t, http.MethodPut, srv.url+"/acme/default/media/inference", key, bad); resp.StatusCode != http.StatusUnprocessableEntity && resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("PUT without prompts: %s %s", resp.Status, body)
	}
	if resp, _ := doJSON(t, http.MethodPut, srv.url+"/acme/default/media/inference", "", smallRequest("", model)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("PUT without key: %s", resp.Status)
	}
	recv.wait(t, 60*time.Second)

	var text string
	deadline := time.Now().Add(30 * time.Second)
	for {
		text = scrape(t, srv.url)
		// The attempt is recorded just after the receiver answers; poll for it.
		if value(text, `diffute_webhook_attempts_stored{outcome="success"}`) == 1 &&
			value(text, `diffute_webhook_attempts_total{outcome="delivered",status_class="2xx"}`) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	for series, v := range map[string]float64{
		`diffute_jobs_submitted_total`:                                                 1,
		`diffute_jobs_rejected_total{reason="validation"}`:                             1,
		`diffute_jobs_rejected_total{reason="auth"}`:                                   1,
		`diffute_jobs_rejected_total{reason="quota"}`:                                  0,
		`diffute_http_requests_total{code="202",` + put + `}`:                          1,
		`diffute_http_requests_total{code="401",` + put + `}`:                          1,
		`diffute_http_request_duration_seconds_count{code="202",` + put + `}`:          1,
		`diffute_job_queue_wait_seconds_count{model="` + model + `"}`:                  1,
		`diffute_jobs_finished_total{status="succeeded"}`:                              1,
		`diffute_jobs_finished_total{status="failed"}`:                                 0,
		`diffute_jobs_running`:                                                         0,
		`diffute_job_duration_seconds_count{status="succeeded"}`:                       1,
		`diffute_images_generated_total{model="` + model + `"}`:                        3,
		`diffute_generate_duration_seconds_count{model="` + model + `"}`:               2,
		`diffute_webhook_attempts_total{outcome="delivered",status_class="2xx"}`:       1,
		`diffute_webhook_attempts_total{outcome="failed_retrying",status_class="5xx"}`: 0,
		`diffute_webhook_attempts_stored{outcome="success"}`:                           1,
		`diffute_engine_loaded_models{model="` + model + `"}`:                          1,
		`diffute_queue_depth{queue="default"}`:                                         0,
		`diffute_scrape_error`:                                                         0,
	} {
		if got := value(text, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	// Two prompts of 2 steps each: the first report of each call is not timed (it
	// includes loading), so at least one step per call is.
	if got := value(text, `diffute_step_duration_seconds_count{model="`+model+`"}`); got < 2 {
		t.Errorf("step count = %v, want ≥ 2", got)
	}
	if got := value(text, `process_resident_memory_bytes`); got < 1<<20 {
		t.Errorf("resident memory = %v", got)
	}
	// Routes are patterns: no series names a job id or a tenant.
	if strings.Contains(text, strconv.FormatInt(accepted.JobID, 10)) || strings.Contains(grepLines(text, "diffute_http_"), "acme") {
		t.Errorf("a raw path became a label:\n%s", grepLines(text, "diffute_http_"))
	}

	logs := srv.stderr.String()
	lines := logLines(t, logs)
	recvURL, _ := url.Parse(recv.URL)
	var serving, finished, attempt, requests int
	for _, l := range lines {
		switch l["msg"] {
		case "serving":
			serving++
			if l["device"] != "cpu" || l["version"] == "" || l["version"] == nil || l["onnxruntime_version"] == "" || l["go_version"] == nil {
				t.Errorf("start line lacks version or device: %v", l)
			}
		case "inference job finished":
			finished++
			if l["job_id"] != float64(accepted.JobID) || l["org"] != "acme" || l["project"] != "default" || l["status"] != "succeeded" {
				t.Errorf("finish line: %v", l)
			}
			if _, ok := l["duration_ms"].(float64); !ok {
				t.Errorf("finish line without duration_ms: %v", l)
			}
		case "webhook attempt":
			attempt++
			if l["job_id"] != float64(accepted.JobID) || l["org"] != "acme" || l["project"] != "default" ||
				l["host"] != recvURL.Host || l["attempt"] != 1.0 || l["outcome"] != "delivered" || l["status_code"] != 200.0 {
				t.Errorf("attempt line: %v", l)
			}
		case "request":
			requests++
			if id, _ := l["request_id"].(string); id == "" {
				t.Errorf("request line without request_id: %v", l)
			}
			if _, ok := l["duration_ms"].(float64); !ok {
				t.Errorf("request line without duration_ms: %v", l)
			}
		}
		if l["level"] == "INFO" && strings.HasPrefix(l["msg"].(string), "River ") {
			t.Errorf("River's routine line at INFO: %v", l)
		}
	}
	if serving != 1 || finished != 1 || attempt != 1 || requests < 5 {
		t.Errorf("log lines: serving %d, finished %d, webhook attempt %d, request %d; want 1, 1, 1, ≥ 5:\n%.3000s", serving, finished, attempt, requests, logs)
	}
	key0, _, _ := strings.Cut(key, "/")
	for _, secret := range []string{key0, "4f986e48-0129-480e-996a-728ea57c020c", "sig="} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}

// scrape returns the text exposition of /metrics.
func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, b := doJSON(t, http.MethodGet, base+"/metrics", "", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	return string(b)
}

// logLines parses JSON log lines.
func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(logs) {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, l)
	}
	return out
}

func grepLines(text, substr string) string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// value returns the sample of series (name and labels exactly) in an exposition, or
// -1 when absent.
func value(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}
