package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/diffute/diffute"

	"github.com/diffute/diffute/internal/syncbuf"
)

// recordedObserver is an Observer that keeps what it was told.
type recordedObserver struct {
	mu       sync.Mutex
	started  []string
	waits    []time.Duration
	attempts []string // "outcome status"
}

func (o *recordedObserver) JobStarted(model string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.started = append(o.started, model)
	o.waits = append(o.waits, d)
}

func (o *recordedObserver) DeliveryAttempt(outcome string, status int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.attempts = append(o.attempts, outcome+" "+strconv.Itoa(status))
}

// lockedBuffer is a bytes.Buffer safe for the workers' goroutines to log into.
type lockedBuffer struct{ syncbuf.Buffer }

// lines returns the JSON log lines with message msg.
func (b *lockedBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if msg == "" || l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// A failed job's line carries its error; each webhook attempt's line carries
// Diffute's job id (not River's), the tenant, the receiver's host, the attempt
// and the next retry; the observer hears of the start and of each attempt.
func TestLogAndObserveFailedJobAndWebhookAttempts(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	obs := &recordedObserver{}
	b := setup(t, setupOpts{
		schedule: []time.Duration{0, 10 * time.Millisecond},
		logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		observer: obs,
	})
	b.engine.GenerateFunc = func(ctx context.Context, req diffute.GenerateRequest, p func(diffute.Progress)) ([]image.Image, error) {
		if req.Prompt == "jungle, painting" {
			return nil, errors.New("model exploded")
		}
		return fakeImages(ctx, req, p)
	}
	b.status.Store(503)
	job := b.newJob(t)
	b.waitHook(t)
	b.waitHook(t)
	waitFor(t, "two attempt log lines", 30*time.Second, func() bool { return len(logs.lines(t, "webhook attempt")) == 2 })

	finished := logs.lines(t, "inference job finished")
	if len(finished) != 1 {
		t.Fatalf("%d finish lines, want 1", len(finished))
	}
	f := finished[0]
	if f["level"] != "WARN" || f["job_id"] != float64(job.ID) || f["org"] != "org" || f["project"] != "proj" ||
		f["status"] != "failed" || f["error"] != "model exploded" || f["model"] != job.Model {
		t.Errorf("finish line: %v", f)
	}
	if d, ok := f["duration_ms"].(float64); !ok || d <= 0 {
		t.Errorf("finish line duration_ms = %v", f["duration_ms"])
	}

	recv, _ := url.Parse(b.recv.URL)
	attempts := logs.lines(t, "webhook attempt")
	for i, a := range attempts {
		if a["job_id"] != float64(job.ID) || a["org"] != "org" || a["project"] != "proj" || a["host"] != recv.Host ||
			a["attempt"] != float64(i+1) || a["status_code"] != 503.0 || a["event"] != "completed" {
			t.Errorf("attempt %d line: %v", i+1, a)
		}
		if _, ok := a["duration_ms"].(float64); !ok {
			t.Errorf("attempt %d line without duration_ms: %v", i+1, a)
		}
		if strings.Contains(a["error"].(string), "/hook") {
			t.Errorf("attempt %d line holds the webhook URL's path: %v", i+1, a)
		}
	}
	first, last := attempts[0], attempts[1]
	if first["outcome"] != AttemptRetrying || first["level"] != "WARN" {
		t.Errorf("first attempt: %v", first)
	}
	next, err := time.Parse(time.RFC3339Nano, first["next_retry_at"].(string))
	if err != nil || next.Before(time.Now().Add(-time.Minute)) || next.After(time.Now().Add(time.Minute)) {
		t.Errorf("first attempt next_retry_at = %v (%v)", first["next_retry_at"], err)
	}
	if last["outcome"] != AttemptFailed || last["level"] != "ERROR" || last["next_retry_at"] != nil {
		t.Errorf("last attempt: %v", last)
	}

	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.started) != 1 || obs.started[0] != job.Model || obs.waits[0] <= 0 {
		t.Errorf("started %v after %v, want one start of %s", obs.started, obs.waits, job.Model)
	}
	if strings.Join(obs.attempts, ",") != AttemptRetrying+" 503,"+AttemptFailed+" 503" {
		t.Errorf("attempts observed: %v", obs.attempts)
	}
	// No line names River's job id as job_id.
	for _, l := range logs.lines(t, "") {
		if id, ok := l["job_id"]; ok && id != float64(job.ID) {
			t.Errorf("a line with another job_id: %v", l)
		}
	}
}

// River's routine INFO lines go out at DEBUG; its warnings keep their level, and
// its job_id becomes river_job_id.
func TestLogRiverLinesLowered(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := newRiverLogger(slog.New(slog.NewJSONHandler(&buf, nil))) // INFO and above
	logger.Info("River client started", "client_id", "c1")
	logger.Warn("jobExecutor: job errored", "job_id", 42)
	var debug bytes.Buffer
	newRiverLogger(slog.New(slog.NewJSONHandler(&debug, &slog.HandlerOptions{Level: slog.LevelDebug}))).
		With("service", "producer").Info("River client started")
	out := buf.String()
	if strings.Contains(out, "River client started") {
		t.Errorf("routine INFO line shown at INFO:\n%s", out)
	}
	if !strings.Contains(out, `"level":"WARN","msg":"jobExecutor: job errored","river_job_id":42`) {
		t.Errorf("warning lost or its job_id kept:\n%s", out)
	}
	if !strings.Contains(debug.String(), `"level":"DEBUG","msg":"River client started","service":"producer"`) {
		t.Errorf("routine line not at DEBUG:\n%s", debug.String())
	}
}
