package metrics

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/diffute/diffute"
)

// Default histogram buckets, in seconds.
var (
	// JobBuckets span a turbo model's one-step image to a large batch on a CPU.
	JobBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}
	// StepBuckets span a tiny test model's step to a large SDXL step on a CPU.
	StepBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
)

// QueueStat is the backlog of one queue at scrape time.
type QueueStat struct {
	Queue     string
	Depth     int
	OldestDue time.Time // zero when nothing is due
}

// Source is what the metrics read at scrape time; any field may be nil.
type Source struct {
	// Queues returns the backlog per queue.
	Queues func(ctx context.Context) ([]QueueStat, error)
	// WebhookAttempts returns webhook attempts recorded, by outcome.
	WebhookAttempts func(ctx context.Context) (map[string]int64, error)
	// LoadedModels returns the models the engine holds loaded.
	LoadedModels func() []string
}

// Metrics holds the in-process figures and renders all of them. The zero value is
// not usable; call New.
type Metrics struct {
	src Source

	mu      sync.Mutex
	jobs    map[string]*histogram // by final status
	steps   map[string]*histogram // by model
	gens    map[string]*histogram // Generate calls, by model
	images  map[string]float64    // by model
	started time.Time
}

// New returns Metrics reading src at scrape time.
func New(src Source) *Metrics {
	return &Metrics{
		src: src, jobs: map[string]*histogram{}, steps: map[string]*histogram{}, gens: map[string]*histogram{},
		images: map[string]float64{}, started: time.Now(),
	}
}

// ObserveJob records a finished job: its status and the time from start to finish.
func (m *Metrics) ObserveJob(status diffute.JobStatus, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	observe(m.jobs, string(status), JobBuckets, d.Seconds())
}

// ObserveStep records denoising steps of model that took d each.
func (m *Metrics) ObserveStep(model string, d time.Duration, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for range n {
		observe(m.steps, model, StepBuckets, d.Seconds())
	}
}

// ObserveGenerate records one engine call for model that made images in d.
func (m *Metrics) ObserveGenerate(model string, images int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	observe(m.gens, model, JobBuckets, d.Seconds())
	m.images[model] += float64(images)
}

func observe(hs map[string]*histogram, label string, buckets []float64, v float64) {
	h := hs[label]
	if h == nil {
		h = &histogram{bounds: buckets, counts: make([]uint64, len(buckets))}
		hs[label] = h
	}
	h.observe(v)
}

// histogram is a Prometheus histogram: counts per upper bound (not cumulative
// here; made cumulative when written), the sum and the count.
type histogram struct {
	bounds []float64
	counts []uint64
	sum    float64
	count  uint64
}

func (h *histogram) observe(v float64) {
	for i, b := range h.bounds {
		if v <= b {
			h.counts[i]++
			break
		}
	}
	h.sum += v
	h.count++
}

// ServeHTTP writes the metrics. A failing database read is reported as a
// diffute_scrape_error gauge rather than failing the scrape: the in-process
// figures are still worth having while the database is down.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	bw := bufio.NewWriter(w)
	m.Write(r.Context(), bw)
	bw.Flush()
}

// Write renders every metric in the text exposition format.
func (m *Metrics) Write(ctx context.Context, w io.Writer) {
	scrapeErr := 0.0
	if m.src.Queues != nil {
		stats, err := m.src.Queues(ctx)
		if err != nil {
			scrapeErr = 1
		}
		header(w, "diffute_queue_depth", "gauge", "Jobs waiting in a queue (available, scheduled or retryable), all processes.")
		now := time.Now()
		for _, s := range stats {
			fmt.Fprintf(w, "diffute_queue_depth{queue=%s} %d\n", quote(s.Queue), s.Depth)
		}
		header(w, "diffute_queue_oldest_age_seconds", "gauge", "Age of the oldest job due in a queue; 0 when none is due.")
		for _, s := range stats {
			age := 0.0
			if !s.OldestDue.IsZero() {
				age = now.Sub(s.OldestDue).Seconds()
			}
			fmt.Fprintf(w, "diffute_queue_oldest_age_seconds{queue=%s} %s\n", quote(s.Queue), num(age))
		}
	}
	if m.src.WebhookAttempts != nil {
		counts, err := m.src.WebhookAttempts(ctx)
		if err != nil {
			scrapeErr = 1
		}
		header(w, "diffute_webhook_attempts_total", "counter", "Webhook delivery attempts recorded, by outcome (success, http_error, error), all processes.")
		for _, k := range sortedKeys(counts) {
			fmt.Fprintf(w, "diffute_webhook_attempts_total{outcome=%s} %d\n", quote(k), counts[k])
		}
	}
	if m.src.LoadedModels != nil {
		header(w, "diffute_engine_loaded_models", "gauge", "Models the engine of this process holds loaded (1 per model).")
		for _, name := range m.src.LoadedModels() {
			fmt.Fprintf(w, "diffute_engine_loaded_models{model=%s} 1\n", quote(name))
		}
	}

	m.mu.Lock()
	header(w, "diffute_images_generated_total", "counter", "Images generated by this process, by model.")
	for _, k := range sortedKeys(m.images) {
		fmt.Fprintf(w, "diffute_images_generated_total{model=%s} %s\n", quote(k), num(m.images[k]))
	}
	writeHistograms(w, "diffute_job_duration_seconds", "Inference jobs finished by this process: start to finish, by status.", "status", m.jobs)
	writeHistograms(w, "diffute_step_duration_seconds", "Denoising step durations in this process, by model.", "model", m.steps)
	writeHistograms(w, "diffute_generate_duration_seconds", "Engine calls (one prompt's images) in this process, by model.", "model", m.gens)
	m.mu.Unlock()

	// ONNX Runtime allocates outside the Go heap, so resident memory is the figure
	// that shows the engine's weights and activations.
	header(w, "diffute_process_resident_memory_bytes", "gauge", "Resident memory of this process (engine weights and buffers included).")
	fmt.Fprintf(w, "diffute_process_resident_memory_bytes %s\n", num(float64(residentBytes())))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	header(w, "diffute_go_heap_bytes", "gauge", "Bytes of the Go heap in use.")
	fmt.Fprintf(w, "diffute_go_heap_bytes %d\n", ms.HeapAlloc)
	header(w, "diffute_uptime_seconds", "gauge", "Seconds since this process started serving metrics.")
	fmt.Fprintf(w, "diffute_uptime_seconds %s\n", num(time.Since(m.started).Seconds()))
	header(w, "diffute_scrape_error", "gauge", "1 when a database read of this scrape failed.")
	fmt.Fprintf(w, "diffute_scrape_error %s\n", num(scrapeErr))
}

func header(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func writeHistograms(w io.Writer, name, help, label string, hs map[string]*histogram) {
	header(w, name, "histogram", help)
	for _, k := range sortedKeys(hs) {
		h := hs[k]
		var cum uint64
		for i, b := range h.bounds {
			cum += h.counts[i]
			fmt.Fprintf(w, "%s_bucket{%s=%s,le=%q} %d\n", name, label, quote(k), num(b), cum)
		}
		fmt.Fprintf(w, "%s_bucket{%s=%s,le=\"+Inf\"} %d\n", name, label, quote(k), h.count)
		fmt.Fprintf(w, "%s_sum{%s=%s} %s\n", name, label, quote(k), num(h.sum))
		fmt.Fprintf(w, "%s_count{%s=%s} %d\n", name, label, quote(k), h.count)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// quote writes a label value with the exposition format's escapes.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

func num(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// residentBytes reads the resident set size from /proc (Linux); 0 elsewhere.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}
