package main

import (
	"context"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/metrics"
	"github.com/diffute/diffute/onnx"
	"github.com/diffute/diffute/store"
)

// newMetrics wires /metrics to the database (queues, webhook attempts) and the
// engine (loaded models); eng is nil in an API-only process.
func newMetrics(db *store.DB, eng *onnx.Engine) *metrics.Metrics {
	src := metrics.Source{
		Queues: func(ctx context.Context) ([]metrics.QueueStat, error) {
			stats, err := db.Store().QueueStats(ctx)
			out := make([]metrics.QueueStat, len(stats))
			for i, s := range stats {
				out[i] = metrics.QueueStat{Queue: s.Queue, Depth: s.Depth, OldestDue: s.OldestDue}
			}
			return out, err
		},
		WebhookAttempts: db.Store().AttemptCounts,
	}
	if eng != nil {
		src.LoadedModels = eng.Loaded
	}
	return metrics.New(src)
}

// observeJob records each finished job's run time (start to finish).
func observeJob(m *metrics.Metrics) func(*diffute.Job) {
	return func(j *diffute.Job) {
		if j.StartedAt.IsZero() || j.FinishedAt.IsZero() {
			return
		}
		m.ObserveJob(j.Status, j.FinishedAt.Sub(j.StartedAt))
	}
}
