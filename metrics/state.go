package metrics

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	queueDepthDesc = prometheus.NewDesc("diffute_queue_depth",
		"Jobs waiting in a queue (available, scheduled or retryable), all processes.", []string{"queue"}, nil)
	queueAgeDesc = prometheus.NewDesc("diffute_queue_oldest_age_seconds",
		"Age of the oldest job due in a queue; 0 when none is due.", []string{"queue"}, nil)
	storedAttemptsDesc = prometheus.NewDesc("diffute_webhook_attempts_stored",
		"Webhook delivery attempts in the database, by outcome (success, http_error, error), all processes.", []string{"outcome"}, nil)
	loadedDesc = prometheus.NewDesc("diffute_engine_loaded_models",
		"1 for each served model the engine of this process holds loaded, 0 for the others.", []string{"model"}, nil)
	scrapeErrorDesc = prometheus.NewDesc("diffute_scrape_error",
		"1 when a database read of this scrape failed.", nil, nil)
	gpuUsedDesc = prometheus.NewDesc("diffute_gpu_memory_used_bytes",
		"GPU memory in use, by every process on the GPU (the NVIDIA driver's figure).", []string{"gpu", "name"}, nil)
	gpuTotalDesc = prometheus.NewDesc("diffute_gpu_memory_total_bytes",
		"GPU memory in all.", []string{"gpu", "name"}, nil)
	unetBatchesDesc = prometheus.NewDesc("diffute_engine_unet_batches_total",
		"UNet batches this process's engine ran with batching across jobs (--batch-requests).", nil, nil)
	unetSharedDesc = prometheus.NewDesc("diffute_engine_unet_batches_shared_total",
		"Of those, the batches several jobs shared.", nil, nil)
)

// stateCollector reads the figures that live outside this process (the database)
// or in the engine at scrape time. A failing database read sets
// diffute_scrape_error rather than failing the scrape: the in-process figures
// are still worth having while the database is down.
type stateCollector struct {
	opts Options
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueDepthDesc, queueAgeDesc, storedAttemptsDesc, loadedDesc, scrapeErrorDesc, gpuUsedDesc, gpuTotalDesc, unetBatchesDesc, unetSharedDesc} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(c.opts.ScrapeTimeout, 5*time.Second))
	defer cancel()
	src := c.opts.Source
	failed := 0.0
	if src.Queues != nil {
		stats, err := src.Queues(ctx)
		if err != nil {
			failed = 1
		}
		byQueue := map[string]QueueStat{}
		for _, q := range c.opts.Queues {
			byQueue[q] = QueueStat{Queue: q}
		}
		for _, s := range stats {
			byQueue[s.Queue] = s
		}
		now := time.Now()
		for _, s := range byQueue {
			age := 0.0
			if !s.OldestDue.IsZero() {
				age = max(0, now.Sub(s.OldestDue).Seconds())
			}
			ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(s.Depth), s.Queue)
			ch <- prometheus.MustNewConstMetric(queueAgeDesc, prometheus.GaugeValue, age, s.Queue)
		}
	}
	if src.WebhookAttempts != nil {
		counts, err := src.WebhookAttempts(ctx)
		if err != nil {
			failed = 1
		}
		for _, o := range StoredAttemptOutcomes {
			if _, ok := counts[o]; !ok {
				ch <- prometheus.MustNewConstMetric(storedAttemptsDesc, prometheus.GaugeValue, 0, o)
			}
		}
		for o, n := range counts {
			ch <- prometheus.MustNewConstMetric(storedAttemptsDesc, prometheus.GaugeValue, float64(n), o)
		}
	}
	var loaded []string
	if src.LoadedModels != nil {
		loaded = src.LoadedModels()
	}
	models := slices.Clone(c.opts.Models)
	for _, m := range loaded {
		if !slices.Contains(models, m) {
			models = append(models, m)
		}
	}
	for _, m := range models {
		v := 0.0
		if slices.Contains(loaded, m) {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(loadedDesc, prometheus.GaugeValue, v, m)
	}
	if src.GPUs != nil {
		// A GPU the driver cannot read now is left out of this scrape.
		gpus, _ := src.GPUs()
		for _, g := range gpus {
			ch <- prometheus.MustNewConstMetric(gpuUsedDesc, prometheus.GaugeValue, float64(g.Used), g.GPU, g.Name)
			ch <- prometheus.MustNewConstMetric(gpuTotalDesc, prometheus.GaugeValue, float64(g.Total), g.GPU, g.Name)
		}
	}
	if src.UNetBatches != nil {
		batches, shared := src.UNetBatches()
		ch <- prometheus.MustNewConstMetric(unetBatchesDesc, prometheus.CounterValue, float64(batches))
		ch <- prometheus.MustNewConstMetric(unetSharedDesc, prometheus.CounterValue, float64(shared))
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrorDesc, prometheus.GaugeValue, failed)
}
