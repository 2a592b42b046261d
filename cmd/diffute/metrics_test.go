package main

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMetricsAfterAJob runs a job with a webhook and checks that /metrics reports
// it: a job duration, steps, images, the webhook attempt, the loaded model, memory.
func TestMetricsAfterAJob(t *testing.T) {
	t.Parallel()
	srv := startServe(t)
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	recv := newReceiver(t)
	resp, body := doJSON(t, http.MethodPut, srv.url+"/acme/default/media/inference", key, smallRequest(recv.URL+"/hook", "diffute/tiny-sd"))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	recv.wait(t, 60*time.Second)

	want := map[string]float64{
		`diffute_job_duration_seconds_count{status="succeeded"}`:           1,
		`diffute_images_generated_total{model="diffute/tiny-sd"}`:          3,
		`diffute_generate_duration_seconds_count{model="diffute/tiny-sd"}`: 2,
		`diffute_webhook_attempts_total{outcome="success"}`:                1,
		`diffute_engine_loaded_models{model="diffute/tiny-sd"}`:            1,
	}
	var text string
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, b := doJSON(t, http.MethodGet, srv.url+"/metrics", "", nil)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("/metrics: %s %s", resp.Status, resp.Header.Get("Content-Type"))
		}
		text = string(b)
		// The attempt is recorded just after the receiver answers; poll for it.
		if value(text, `diffute_webhook_attempts_total{outcome="success"}`) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for series, v := range want {
		if got := value(text, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	// Two prompts of 2 steps each: the first report of each call is not timed (it
	// includes loading), so at least one step per call is.
	if got := value(text, `diffute_step_duration_seconds_count{model="diffute/tiny-sd"}`); got < 2 {
		t.Errorf("step count = %v, want ≥ 2", got)
	}
	if got := value(text, `diffute_process_resident_memory_bytes`); got < 1<<20 {
		t.Errorf("resident memory = %v", got)
	}
	for _, series := range []string{`diffute_queue_depth`, `diffute_scrape_error 0`, `le="+Inf"`} {
		if !strings.Contains(text, series) {
			t.Errorf("/metrics lacks %s:\n%s", series, text)
		}
	}
	// Logs are JSON with the job's tenant.
	if !regexp.MustCompile(`"msg":"inference job finished","job_id":\d+,"org":"acme","project":"default"`).MatchString(srv.stderr.String()) {
		t.Errorf("no JSON log line with job_id, org and project:\n%.2000s", srv.stderr.String())
	}
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
