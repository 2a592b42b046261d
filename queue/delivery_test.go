package queue

import (
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/webhook"
)

// A receiver's Retry-After pushes the next attempt back, but never past the cap,
// and never earlier than the schedule.
func TestNextRetryHonoursRetryAfterWithinCap(t *testing.T) {
	t.Parallel()
	cfg := webhook.Config{RetrySchedule: []time.Duration{0, time.Second, time.Second}, MaxRetryAfter: time.Minute}.WithDefaults()
	w := newDeliveryWorker(&Queue{cfg: Config{Webhook: cfg}})
	job := func(id int64) *river.Job[diffute.DeliveryArgs] {
		return &river.Job[diffute.DeliveryArgs]{JobRow: &rivertype.JobRow{ID: id, Attempt: 1}}
	}
	for _, c := range []struct {
		retryAfter time.Duration
		min, max   time.Duration
	}{
		{0, 900 * time.Millisecond, 1100 * time.Millisecond},         // the schedule, with jitter
		{30 * time.Second, 30 * time.Second, 31 * time.Second},       // Retry-After wins
		{7 * 24 * time.Hour, time.Minute, time.Minute + time.Second}, // capped
	} {
		// Work chooses the time (and logs it); River reads it back through NextRetry.
		w.nextRetry.Store(int64(7), w.retryAt(1, c.retryAfter))
		d := time.Until(w.NextRetry(job(7)))
		if d < c.min-50*time.Millisecond || d > c.max {
			t.Errorf("Retry-After %v: next attempt in %v, want %v–%v", c.retryAfter, d, c.min, c.max)
		}
	}
	if _, left := w.nextRetry.Load(int64(7)); left {
		t.Error("next retry kept after use")
	}
	// Without a time from Work, NextRetry follows the schedule.
	if d := time.Until(w.NextRetry(job(7))); d < 850*time.Millisecond || d > 1100*time.Millisecond {
		t.Errorf("no time from Work: next attempt in %v, want about 1 s", d)
	}
}
