package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/diffute/diffute"
)

// scrape serves m's /metrics, parses the text exposition and returns each
// sample by series: `name{label="value",…}` with labels sorted by name, and for
// histograms name_count and name_sum.
func scrape(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("not the text exposition format: %v", err)
	}
	return samples(families)
}

func samples(families map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			labels := make([]string, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			slices.Sort(labels)
			series := name
			if len(labels) > 0 {
				series += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[series] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[series] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				h := m.GetHistogram()
				out[strings.Replace(series, name, name+"_count", 1)] = float64(h.GetSampleCount())
				out[strings.Replace(series, name, name+"_sum", 1)] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[strings.Replace(series, name, name+"_bucket", 1)+fmt.Sprintf("[le=%g]", b.GetUpperBound())] = float64(b.GetCumulativeCount())
				}
			case m.Untyped != nil:
				out[series] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}

func newTestMetrics(src Source) *Metrics {
	return New(Options{
		Build:  BuildInfo{Version: "v1.2.3", Commit: "abc", GoVersion: "go1.26", Device: "cpu", ONNXRuntimeVersion: "1.29.0"},
		Models: []string{"m1", "m2"}, Queues: []string{"default", "webhooks"}, Slots: 2, Source: src,
	})
}

// Every series with known label values is there before anything happens, at zero.
func TestMetricsPresentAtZeroFromStart(t *testing.T) {
	t.Parallel()
	m := newTestMetrics(Source{
		Queues:          func(context.Context) ([]QueueStat, error) { return nil, nil },
		WebhookAttempts: func(context.Context) (map[string]int64, error) { return map[string]int64{}, nil },
		LoadedModels:    func() []string { return nil },
		Running:         func() int { return 0 },
	})
	got := scrape(t, m)
	want := map[string]float64{
		`diffute_build_info{commit="abc",device="cpu",go_version="go1.26",onnxruntime_version="1.29.0",version="v1.2.3"}`: 1,
		`diffute_jobs_running`:                              0,
		`diffute_inference_slots`:                           2,
		`diffute_jobs_submitted_total`:                      0,
		`diffute_scrape_error`:                              0,
		`diffute_queue_depth{queue="default"}`:              0,
		`diffute_queue_depth{queue="webhooks"}`:             0,
		`diffute_queue_oldest_age_seconds{queue="default"}`: 0,
	}
	for _, r := range RejectReasons {
		want[fmt.Sprintf(`diffute_jobs_rejected_total{reason=%q}`, r)] = 0
	}
	for _, o := range WebhookOutcomes {
		for _, c := range StatusClasses {
			want[fmt.Sprintf(`diffute_webhook_attempts_total{outcome=%q,status_class=%q}`, o, c)] = 0
		}
	}
	for _, o := range StoredAttemptOutcomes {
		want[fmt.Sprintf(`diffute_webhook_attempts_stored{outcome=%q}`, o)] = 0
	}
	for _, s := range JobOutcomes {
		want[fmt.Sprintf(`diffute_jobs_finished_total{status=%q}`, s)] = 0
		want[fmt.Sprintf(`diffute_job_duration_seconds_count{status=%q}`, s)] = 0
	}
	for _, model := range []string{"m1", "m2"} {
		want[fmt.Sprintf(`diffute_job_queue_wait_seconds_count{model=%q}`, model)] = 0
		want[fmt.Sprintf(`diffute_images_generated_total{model=%q}`, model)] = 0
		want[fmt.Sprintf(`diffute_step_duration_seconds_count{model=%q}`, model)] = 0
		want[fmt.Sprintf(`diffute_generate_duration_seconds_count{model=%q}`, model)] = 0
		want[fmt.Sprintf(`diffute_engine_loaded_models{model=%q}`, model)] = 0
	}
	for series, v := range want {
		if g, ok := got[series]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", series, g, ok, v)
		}
	}
	// The Go runtime and process collectors are in the registry.
	for _, series := range []string{"go_goroutines", "process_resident_memory_bytes", "process_start_time_seconds"} {
		if _, ok := got[series]; !ok {
			t.Errorf("%s missing", series)
		}
	}
	// Nothing is in the global default registry.
	if n, err := testutilCount(); err != nil || n != 0 {
		t.Errorf("diffute series in the default registry: %d (%v)", n, err)
	}
}

func TestMetricsCountAfterTraffic(t *testing.T) {
	t.Parallel()
	running := 1
	m := newTestMetrics(Source{
		Queues: func(context.Context) ([]QueueStat, error) {
			return []QueueStat{{Queue: "default", Depth: 3, OldestDue: time.Now().Add(-2 * time.Second)}}, nil
		},
		WebhookAttempts: func(context.Context) (map[string]int64, error) {
			return map[string]int64{"success": 4, "error": 1}, nil
		},
		LoadedModels: func() []string { return []string{"m1", `odd"name\`} },
		Running:      func() int { return running },
	})
	const route = "PUT /{org}/{project}/media/inference"
	m.ObserveRequest(route, 202, 3*time.Millisecond)
	m.ObserveRequest(route, 202, 40*time.Millisecond)
	m.ObserveRequest(route, 422, time.Millisecond)
	m.JobSubmitted()
	m.JobSubmitted()
	m.JobRejected("validation")
	m.JobRejected("something new") // bounded: counted as internal
	m.JobStarted("m1", 30*time.Millisecond)
	m.ObserveJob(diffute.StatusSucceeded, 300*time.Millisecond)
	m.ObserveJob(diffute.StatusSucceeded, 20*time.Minute)
	m.ObserveJob(diffute.StatusFailed, time.Second)
	m.DeliveryAttempt("delivered", 204)
	m.DeliveryAttempt("failed_retrying", 503)
	m.DeliveryAttempt("failed_retrying", 0)
	m.DeliveryAttempt("failed_final", 404)
	m.ObserveStep("m1", 3*time.Millisecond, 4)
	m.ObserveGenerate("m1", 2, time.Second)
	got := scrape(t, m)
	for series, v := range map[string]float64{
		`diffute_http_requests_total{code="202",route="PUT /{org}/{project}/media/inference"}`:                            2,
		`diffute_http_requests_total{code="422",route="PUT /{org}/{project}/media/inference"}`:                            1,
		`diffute_http_request_duration_seconds_count{code="202",route="PUT /{org}/{project}/media/inference"}`:            2,
		`diffute_http_request_duration_seconds_bucket{code="202",route="PUT /{org}/{project}/media/inference"}[le=0.005]`: 1,
		`diffute_jobs_submitted_total`:                                2,
		`diffute_jobs_rejected_total{reason="validation"}`:            1,
		`diffute_jobs_rejected_total{reason="internal"}`:              1,
		`diffute_jobs_rejected_total{reason="quota"}`:                 0,
		`diffute_job_queue_wait_seconds_count{model="m1"}`:            1,
		`diffute_job_queue_wait_seconds_bucket{model="m1"}[le=0.025]`: 0,
		`diffute_job_queue_wait_seconds_bucket{model="m1"}[le=0.05]`:  1,
		`diffute_job_queue_wait_seconds_count{model="m2"}`:            0,
		`diffute_jobs_running`:                                        1,
		`diffute_jobs_finished_total{status="succeeded"}`:             2,
		`diffute_jobs_finished_total{status="failed"}`:                1,
		`diffute_jobs_finished_total{status="canceled"}`:              0,
		// Cumulative buckets: 0.3 s falls in le=0.5, 1200 s in le=1800.
		`diffute_job_duration_seconds_bucket{status="succeeded"}[le=0.25]`:              0,
		`diffute_job_duration_seconds_bucket{status="succeeded"}[le=0.5]`:               1,
		`diffute_job_duration_seconds_bucket{status="succeeded"}[le=600]`:               1,
		`diffute_job_duration_seconds_bucket{status="succeeded"}[le=1800]`:              2,
		`diffute_job_duration_seconds_count{status="succeeded"}`:                        2,
		`diffute_webhook_attempts_total{outcome="delivered",status_class="2xx"}`:        1,
		`diffute_webhook_attempts_total{outcome="failed_retrying",status_class="5xx"}`:  1,
		`diffute_webhook_attempts_total{outcome="failed_retrying",status_class="none"}`: 1,
		`diffute_webhook_attempts_total{outcome="failed_final",status_class="4xx"}`:     1,
		`diffute_webhook_attempts_total{outcome="failed_final",status_class="5xx"}`:     0,
		`diffute_webhook_attempts_stored{outcome="success"}`:                            4,
		`diffute_webhook_attempts_stored{outcome="error"}`:                              1,
		`diffute_webhook_attempts_stored{outcome="http_error"}`:                         0,
		`diffute_queue_depth{queue="default"}`:                                          3,
		`diffute_queue_depth{queue="webhooks"}`:                                         0,
		`diffute_engine_loaded_models{model="m1"}`:                                      1,
		`diffute_engine_loaded_models{model="m2"}`:                                      0,
		`diffute_engine_loaded_models{model="odd\"name\\"}`:                             1,
		`diffute_step_duration_seconds_count{model="m1"}`:                               4,
		`diffute_step_duration_seconds_bucket{model="m1"}[le=0.001]`:                    0,
		`diffute_step_duration_seconds_bucket{model="m1"}[le=0.005]`:                    4,
		`diffute_images_generated_total{model="m1"}`:                                    2,
		`diffute_generate_duration_seconds_count{model="m1"}`:                           1,
		`diffute_scrape_error`: 0,
	} {
		if g, ok := got[series]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", series, g, ok, v)
		}
	}
	if age := got[`diffute_queue_oldest_age_seconds{queue="default"}`]; age < 1.9 || age > 10 {
		t.Errorf("queue age = %v, want about 2 s", age)
	}
	running = 0
	if got := scrape(t, m)[`diffute_jobs_running`]; got != 0 {
		t.Errorf("jobs running after the job = %v, want 0", got)
	}
}

func TestMetricsScrapeErrorWhenTheDatabaseFails(t *testing.T) {
	t.Parallel()
	m := newTestMetrics(Source{Queues: func(context.Context) ([]QueueStat, error) { return nil, errors.New("down") }})
	got := scrape(t, m)
	if got[`diffute_scrape_error`] != 1 {
		t.Errorf("scrape error = %v, want 1", got[`diffute_scrape_error`])
	}
	// The known queues are still listed; the in-process figures still served.
	if _, ok := got[`diffute_queue_depth{queue="default"}`]; !ok {
		t.Error("queue depth missing while the database is down")
	}
	if _, ok := got[`diffute_jobs_submitted_total`]; !ok {
		t.Error("in-process figures missing while the database is down")
	}
}

// The GPUs' memory is read at scrape time, one series pair per GPU; a GPU the
// driver could not read is left out, the others kept, and nothing else fails.
func TestMetricsGPUMemory(t *testing.T) {
	t.Parallel()
	read := []GPUStat{{GPU: "0", Name: "NVIDIA H200", Used: 3 << 30, Total: 141 << 30}}
	var readErr error
	m := newTestMetrics(Source{GPUs: func() ([]GPUStat, error) { return read, readErr }})
	got := scrape(t, m)
	if got[`diffute_gpu_memory_used_bytes{gpu="0",name="NVIDIA H200"}`] != 3<<30 ||
		got[`diffute_gpu_memory_total_bytes{gpu="0",name="NVIDIA H200"}`] != 141<<30 {
		t.Errorf("GPU series: used %v total %v", got[`diffute_gpu_memory_used_bytes{gpu="0",name="NVIDIA H200"}`],
			got[`diffute_gpu_memory_total_bytes{gpu="0",name="NVIDIA H200"}`])
	}
	read = append(read[:1:1], GPUStat{GPU: "1", Name: "NVIDIA H200", Used: 1, Total: 2})
	read, readErr = read[1:], errors.New("GPU 0: NVML returned 15")
	got = scrape(t, m)
	if _, ok := got[`diffute_gpu_memory_used_bytes{gpu="0",name="NVIDIA H200"}`]; ok {
		t.Error("the unreadable GPU 0 is still listed")
	}
	if got[`diffute_gpu_memory_used_bytes{gpu="1",name="NVIDIA H200"}`] != 1 || got[`diffute_scrape_error`] != 0 {
		t.Errorf("GPU 1 or scrape error wrong: %v", got)
	}
	// A process on the CPU has no GPU series at all.
	for k := range scrape(t, newTestMetrics(Source{})) {
		if strings.HasPrefix(k, "diffute_gpu_") {
			t.Errorf("CPU process lists %s", k)
		}
	}
}

// testutilCount counts diffute_ series in the global default registry.
func testutilCount() (int, error) {
	families, err := prometheus.DefaultGatherer.Gather()
	n := 0
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "diffute_") {
			n++
		}
	}
	return n, err
}

// The names, types and help texts follow Prometheus' conventions (promlint).
func TestMetricsFollowNamingConventions(t *testing.T) {
	t.Parallel()
	problems, err := testutil.GatherAndLint(newTestMetrics(Source{}).Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// BenchmarkObserveRequest is the cost the metrics add to each HTTP request.
func BenchmarkObserveRequest(b *testing.B) {
	m := newTestMetrics(Source{})
	for b.Loop() {
		m.ObserveRequest("GET /{org}/{project}/media/inference/{job_id}", http.StatusOK, 3*time.Millisecond)
	}
}

// BenchmarkScrape is one scrape of a registry with every known series.
func BenchmarkScrape(b *testing.B) {
	m := newTestMetrics(Source{
		Queues:          func(context.Context) ([]QueueStat, error) { return nil, nil },
		WebhookAttempts: func(context.Context) (map[string]int64, error) { return map[string]int64{}, nil },
	})
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	for b.Loop() {
		m.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// The engine's UNet batches are counters read at scrape time, present only
// where batching across jobs is on.
func TestMetricsUNetBatches(t *testing.T) {
	t.Parallel()
	got := scrape(t, newTestMetrics(Source{UNetBatches: func() (int64, int64) { return 7, 3 }}))
	if got[`diffute_engine_unet_batches_total`] != 7 || got[`diffute_engine_unet_batches_shared_total`] != 3 {
		t.Errorf("batches %v, shared %v, want 7 and 3", got[`diffute_engine_unet_batches_total`], got[`diffute_engine_unet_batches_shared_total`])
	}
	if _, ok := scrape(t, newTestMetrics(Source{}))[`diffute_engine_unet_batches_total`]; ok {
		t.Error("the batch counters are listed without batching")
	}
}
