package diffute

import (
	"context"
	"time"
)

// IdempotencyWindow is how long an Idempotency-Key is remembered: a retry within
// it gets the original job, a reuse after it makes a new one.
const IdempotencyWindow = 24 * time.Hour

// Quota bounds one project's use. Zero fields mean no bound.
type Quota struct {
	MaxActiveJobs   int `json:"max_active_jobs"`    // queued + running jobs at once
	MaxImagesPerDay int `json:"max_images_per_day"` // images requested per UTC day
}

// Submission is what SubmitJob checks besides the job itself.
type Submission struct {
	// IdempotencyKey is the client's Idempotency-Key; "" for none.
	IdempotencyKey string
	// RequestHash identifies the request body: the same key with another body is
	// refused (EUNPROCESSABLE).
	RequestHash []byte
	Quota       Quota
}

// Usage is metered work: images stored, width×height×denoising steps summed over
// them, and the engine's wall time spent generating them.
type Usage struct {
	Images     int64
	PixelSteps int64
	EngineTime time.Duration
}

// Add adds u2 to u.
func (u *Usage) Add(u2 Usage) {
	u.Images += u2.Images
	u.PixelSteps += u2.PixelSteps
	u.EngineTime += u2.EngineTime
}

// UsageDay is the usage of one project on one UTC day ("2006-01-02").
type UsageDay struct {
	Day string
	Usage
}

// UsageDayFormat is the layout of UsageDay.Day.
const UsageDayFormat = "2006-01-02"

// TenancyStore is the part of the store behind idempotent submission, quotas and
// usage metering.
type TenancyStore interface {
	// SubmitJob is CreateJob with sub's checks in the same transaction. When
	// sub.IdempotencyKey was used for the same request within IdempotencyWindow,
	// it creates nothing and returns the original job's ID and replayed=true;
	// used with another request: EUNPROCESSABLE. Over sub.Quota: ERATELIMIT.
	SubmitJob(ctx context.Context, job *Job, sub Submission) (jobID int64, replayed bool, err error)
	// Usage returns the usage of org/project per day from from to to (UTC days,
	// inclusive), days without usage left out, oldest first.
	Usage(ctx context.Context, org, project string, from, to time.Time) ([]UsageDay, error)
}

// DefaultMediaRetention is how long images are kept after their job ends unless
// configured otherwise.
const DefaultMediaRetention = 7 * 24 * time.Hour

// QuotaError is a refusal by a project quota (code ERATELIMIT). RetryAfter is
// when the quota frees up, when that is known (the daily image count restarts at
// 00:00 UTC); 0 when it depends on other jobs finishing.
type QuotaError struct {
	Err        *Error
	RetryAfter time.Duration
}

func (e *QuotaError) Error() string { return e.Err.Error() }
func (e *QuotaError) Unwrap() error { return e.Err }
