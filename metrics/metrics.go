package metrics

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/diffute/diffute"
)

// Default histogram buckets, in seconds.
var (
	// JobBuckets span a turbo model's one-step image to a large batch on a CPU.
	JobBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}
	// StepBuckets span a tiny test model's step to a large SDXL step on a CPU.
	StepBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	// QueueWaitBuckets span a job picked up at once to one waiting behind a long
	// backlog.
	QueueWaitBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}
	// RequestBuckets span a cached status read to a PUT that waits for its job
	// (Prefer: wait, up to 60 s).
	RequestBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
)

// The label values known in advance; each has its series from the start.
var (
	// RejectReasons are the reasons a job submission is refused (JobRejected).
	RejectReasons = []string{"validation", "auth", "quota", "rate_limited", "not_found", "conflict", "unavailable", "internal"}
	// WebhookOutcomes are the outcomes of one webhook attempt (DeliveryAttempt).
	WebhookOutcomes = []string{"delivered", "failed_retrying", "failed_final"}
	// StatusClasses are the receiver's answers to a webhook attempt: an HTTP
	// status class, or "none" when no answer came (connection refused, timeout).
	StatusClasses = []string{"2xx", "3xx", "4xx", "5xx", "none"}
	// JobOutcomes are the final statuses of a job.
	JobOutcomes = []diffute.JobStatus{diffute.StatusSucceeded, diffute.StatusFailed, diffute.StatusCanceled}
	// StoredAttemptOutcomes are the outcomes of stored webhook attempts
	// (Source.WebhookAttempts).
	StoredAttemptOutcomes = []string{"success", "http_error", "error"}
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
	// WebhookAttempts returns the webhook attempts stored, by outcome
	// (StoredAttemptOutcomes).
	WebhookAttempts func(ctx context.Context) (map[string]int64, error)
	// LoadedModels returns the models the engine holds loaded.
	LoadedModels func() []string
	// Running returns how many inference jobs this process is working now.
	Running func() int
	// GPUs returns the machine's GPUs and their memory (a process on a CUDA
	// device); nil: no GPU series.
	GPUs func() ([]GPUStat, error)
	// UNetBatches returns the engine's UNet batches since it started and how
	// many of them several jobs shared (batching across jobs); nil: none.
	UNetBatches func() (batches, shared int64)
}

// GPUStat is one GPU's memory, all its users' (the driver's figures).
type GPUStat struct {
	GPU         string // the driver's index
	Name        string
	Used, Total uint64 // bytes
}

// BuildInfo labels diffute_build_info.
type BuildInfo struct {
	Version            string
	Commit             string // VCS revision; empty when unknown
	GoVersion          string
	Device             string // cpu, cuda:0, …; "none" in an API-only process
	ONNXRuntimeVersion string // empty in an API-only process
}

// Options configure New.
type Options struct {
	Build BuildInfo
	// Models are the served models; each has its engine and queue wait series.
	Models []string
	// Queues are the queues Source.Queues reports on; each has its depth series,
	// at zero while the queue is empty.
	Queues []string
	// Slots is how many inference jobs this process runs at once (--workers,
	// --concurrency).
	Slots  int
	Source Source
	// ScrapeTimeout bounds the database reads of one scrape; 0: 5 s.
	ScrapeTimeout time.Duration
}

// Metrics holds Diffute's instruments in a registry of their own. The zero value
// is not usable; call New.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	jobsSubmitted prometheus.Counter
	jobsRejected  *prometheus.CounterVec
	queueWait     *prometheus.HistogramVec
	jobsFinished  *prometheus.CounterVec
	jobDuration   *prometheus.HistogramVec
	webhooks      *prometheus.CounterVec
	images        *prometheus.CounterVec
	steps         *prometheus.HistogramVec
	generate      *prometheus.HistogramVec
}

// New registers every instrument, with the series of opts' known label values
// at zero.
func New(opts Options) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "diffute_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "diffute_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request (the whole body written), by route pattern and status code.",
			Buckets: RequestBuckets,
		}, []string{"route", "code"}),
		jobsSubmitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "diffute_jobs_submitted_total",
			Help: "Job submissions accepted by this process's API.",
		}),
		jobsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "diffute_jobs_rejected_total",
			Help: "Job submissions refused by this process's API, by reason.",
		}, []string{"reason"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "diffute_job_queue_wait_seconds",
			Help:    "Time from a job's submission to its start by this process's workers, by model.",
			Buckets: QueueWaitBuckets,
		}, []string{"model"}),
		jobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "diffute_jobs_finished_total",
			Help: "Jobs this process's workers finished, by final status.",
		}, []string{"status"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "diffute_job_duration_seconds",
			Help:    "Jobs this process's workers finished: start to finish, by final status.",
			Buckets: JobBuckets,
		}, []string{"status"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "diffute_webhook_attempts_total",
			Help: "Webhook delivery attempts made by this process, by outcome and the receiver's status class.",
		}, []string{"outcome", "status_class"}),
		images: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "diffute_images_generated_total",
			Help: "Images generated by this process, by model.",
		}, []string{"model"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "diffute_step_duration_seconds",
			Help:    "Denoising step durations in this process, by model.",
			Buckets: StepBuckets,
		}, []string{"model"}),
		generate: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "diffute_generate_duration_seconds",
			Help:    "Engine calls (one prompt's images) in this process, by model.",
			Buckets: JobBuckets,
		}, []string{"model"}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration, m.jobsSubmitted, m.jobsRejected, m.queueWait,
		m.jobsFinished, m.jobDuration, m.webhooks, m.images, m.steps, m.generate,
		&stateCollector{opts: opts},
	)
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "diffute_build_info",
		Help: "Always 1; the labels say which build runs, on which device and ONNX Runtime.",
	}, []string{"version", "commit", "go_version", "device", "onnxruntime_version"})
	b := opts.Build
	build.WithLabelValues(b.Version, b.Commit, b.GoVersion, b.Device, b.ONNXRuntimeVersion).Set(1)
	reg.MustRegister(build)
	running := opts.Source.Running
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "diffute_jobs_running",
		Help: "Inference jobs this process's workers are running now.",
	}, func() float64 {
		if running == nil {
			return 0
		}
		return float64(running())
	}))

	slots := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "diffute_inference_slots",
		Help: "Inference jobs this process runs at once (its --workers or --concurrency); 0 in an API-only process.",
	})
	slots.Set(float64(opts.Slots))
	reg.MustRegister(slots)
	for _, r := range RejectReasons {
		m.jobsRejected.WithLabelValues(r)
	}
	for _, o := range WebhookOutcomes {
		for _, c := range StatusClasses {
			m.webhooks.WithLabelValues(o, c)
		}
	}
	for _, s := range JobOutcomes {
		m.jobsFinished.WithLabelValues(string(s))
		m.jobDuration.WithLabelValues(string(s))
	}
	for _, model := range opts.Models {
		m.queueWait.WithLabelValues(model)
		m.images.WithLabelValues(model)
		m.steps.WithLabelValues(model)
		m.generate.WithLabelValues(model)
	}
	m.handler = promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return m
}

// Registry is the registry that holds every instrument.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ServeHTTP serves the metrics in the exposition format the scraper asks for.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.handler.ServeHTTP(w, r) }

// ObserveRequest records one HTTP request answered with status after d; route is
// the route pattern that matched, never the raw path.
func (m *Metrics) ObserveRequest(route string, status int, d time.Duration) {
	code := strconv.Itoa(status)
	m.httpRequests.WithLabelValues(route, code).Inc()
	m.httpDuration.WithLabelValues(route, code).Observe(d.Seconds())
}

// JobSubmitted records an accepted job submission.
func (m *Metrics) JobSubmitted() { m.jobsSubmitted.Inc() }

// JobRejected records a refused job submission; reason is one of RejectReasons
// (any other counts as "internal", which keeps the label's values bounded).
func (m *Metrics) JobRejected(reason string) {
	if !slices.Contains(RejectReasons, reason) {
		reason = "internal"
	}
	m.jobsRejected.WithLabelValues(reason).Inc()
}

// JobStarted records a job of model started after waiting d in its queue.
func (m *Metrics) JobStarted(model string, d time.Duration) {
	m.queueWait.WithLabelValues(model).Observe(d.Seconds())
}

// ObserveJob records a finished job: its final status and the time from start
// to finish.
func (m *Metrics) ObserveJob(status diffute.JobStatus, d time.Duration) {
	m.jobsFinished.WithLabelValues(string(status)).Inc()
	m.jobDuration.WithLabelValues(string(status)).Observe(d.Seconds())
}

// DeliveryAttempt records one webhook attempt: its outcome (WebhookOutcomes) and
// the receiver's status code, 0 when it did not answer.
func (m *Metrics) DeliveryAttempt(outcome string, statusCode int) {
	m.webhooks.WithLabelValues(outcome, statusClass(statusCode)).Inc()
}

func statusClass(code int) string {
	if code < 200 || code > 599 {
		return "none"
	}
	return strconv.Itoa(code/100) + "xx"
}

// ObserveStep records n denoising steps of model that took d each.
func (m *Metrics) ObserveStep(model string, d time.Duration, n int) {
	h := m.steps.WithLabelValues(model)
	for range n {
		h.Observe(d.Seconds())
	}
}

// ObserveGenerate records one engine call for model that made images in d.
func (m *Metrics) ObserveGenerate(model string, images int, d time.Duration) {
	m.generate.WithLabelValues(model).Observe(d.Seconds())
	m.images.WithLabelValues(model).Add(float64(images))
}
