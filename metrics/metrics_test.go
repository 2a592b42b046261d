package metrics

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/diffute/diffute"
)

// sampleRE is one sample line of the text exposition format.
var sampleRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)$`)

func TestExpositionFormatAndHistograms(t *testing.T) {
	t.Parallel()
	m := New(Source{
		Queues: func(context.Context) ([]QueueStat, error) {
			return []QueueStat{{Queue: "default", Depth: 3, OldestDue: time.Now().Add(-2 * time.Second)}}, nil
		},
		WebhookAttempts: func(context.Context) (map[string]int64, error) {
			return map[string]int64{"success": 4, "error": 1}, nil
		},
		LoadedModels: func() []string { return []string{`odd"name\`} },
	})
	m.ObserveJob(diffute.StatusSucceeded, 300*time.Millisecond)
	m.ObserveJob(diffute.StatusSucceeded, 20*time.Minute)
	m.ObserveStep("m", 3*time.Millisecond, 4)
	m.ObserveGenerate("m", 2, time.Second)
	var b bytes.Buffer
	m.Write(context.Background(), &b)
	text := b.String()
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		if !sampleRE.MatchString(line) {
			t.Errorf("not a valid sample line: %q", line)
		}
	}
	for _, want := range []string{
		`diffute_queue_depth{queue="default"} 3`,
		`diffute_webhook_attempts_total{outcome="success"} 4`,
		`diffute_engine_loaded_models{model="odd\"name\\"} 1`,
		// Cumulative buckets: 0.3 s falls in le=0.5, 1200 s in le=1800.
		`diffute_job_duration_seconds_bucket{status="succeeded",le="0.25"} 0`,
		`diffute_job_duration_seconds_bucket{status="succeeded",le="0.5"} 1`,
		`diffute_job_duration_seconds_bucket{status="succeeded",le="600"} 1`,
		`diffute_job_duration_seconds_bucket{status="succeeded",le="1800"} 2`,
		`diffute_job_duration_seconds_bucket{status="succeeded",le="+Inf"} 2`,
		`diffute_job_duration_seconds_count{status="succeeded"} 2`,
		`diffute_step_duration_seconds_count{model="m"} 4`,
		`diffute_step_duration_seconds_bucket{model="m",le="0.001"} 0`,
		`diffute_step_duration_seconds_bucket{model="m",le="0.005"} 4`,
		`diffute_images_generated_total{model="m"} 2`,
		`diffute_scrape_error 0`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("missing %s in:\n%s", want, text)
		}
	}
	if !regexp.MustCompile(`diffute_queue_oldest_age_seconds\{queue="default"\} (1\.9|2\.)`).MatchString(text) {
		t.Errorf("queue age not about 2 s:\n%s", text)
	}
}

func TestScrapeErrorWhenTheDatabaseFails(t *testing.T) {
	t.Parallel()
	m := New(Source{Queues: func(context.Context) ([]QueueStat, error) { return nil, errors.New("down") }})
	var b bytes.Buffer
	m.Write(context.Background(), &b)
	if !strings.Contains(b.String(), "diffute_scrape_error 1\n") {
		t.Errorf("scrape error not reported:\n%s", b.String())
	}
}
