package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/metrics"
	"github.com/diffute/diffute/onnx"
	"github.com/diffute/diffute/queue"
	"github.com/diffute/diffute/store"
)

// newMetrics wires /metrics to the database (queues, webhook attempts), the
// engine (loaded models) and the queue (running jobs); eng is nil in an API-only
// process, and running is read at scrape time.
func newMetrics(db *store.DB, eng *onnx.Engine, build metrics.BuildInfo, models []string, slots int, running func() int) *metrics.Metrics {
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
		Running:         running,
	}
	if eng != nil {
		src.LoadedModels = eng.Loaded
		if strings.HasPrefix(build.Device, "cuda") {
			src.GPUs = gpuStats
		}
		if bs := eng.BatchStats(); bs != nil {
			src.UNetBatches = func() (int64, int64) { return bs.Batches.Load(), bs.Shared.Load() }
		}
	}
	queues := []string{store.DeliveryQueue, queue.MaintenanceQueue}
	for _, m := range models {
		if q := queue.InferenceQueueFor(m, db.SharedByWorkers()); !slices.Contains(queues, q) {
			queues = append(queues, q)
		}
	}
	return metrics.New(metrics.Options{Build: build, Models: models, Queues: queues, Slots: slots, Source: src})
}

// gpuStats is the GPUs' memory for /metrics, from the driver.
func gpuStats() ([]metrics.GPUStat, error) {
	gpus, err := onnx.GPUs()
	out := make([]metrics.GPUStat, len(gpus))
	for i, g := range gpus {
		out[i] = metrics.GPUStat{GPU: strconv.Itoa(g.Index), Name: g.Name, Used: g.Used, Total: g.Total}
	}
	return out, err
}

// buildInfo describes this binary and the device it runs on: device is the
// --device of a process with workers, "none" in an API-only one.
func buildInfo(device string, eng *onnx.Engine) metrics.BuildInfo {
	v, commit, _, goVersion := buildVersion()
	b := metrics.BuildInfo{Version: v, Commit: commit, GoVersion: goVersion, Device: "none"}
	if eng != nil {
		b.Device, b.ONNXRuntimeVersion = device, onnx.RuntimeVersion()
	}
	return b
}

// buildVersion reads the version (the -X main.version of the build, else the
// module version), VCS commit ("" when unknown) and Go version of this binary.
func buildVersion() (v, commit string, modified bool, goVersion string) {
	v, goVersion = version, runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	return v, commit, modified, goVersion
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
