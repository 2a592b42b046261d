package queue

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/diffute/diffute"
)

// MaintenanceQueue is the River queue of housekeeping jobs (retention), apart
// from inference and webhooks so that neither waits behind it.
const MaintenanceQueue = "maintenance"

// DefaultRetentionInterval is how often the retention job runs.
const DefaultRetentionInterval = time.Hour

// retentionBatch is how many jobs' media one pass of the loop deletes before
// looking again; the pass repeats until nothing has expired.
const retentionBatch = 100

// RetentionArgs is the periodic job that deletes expired media.
type RetentionArgs struct{}

// Kind implements river.JobArgs.
func (RetentionArgs) Kind() string { return "diffute.retention" }

type retentionWorker struct {
	river.WorkerDefaults[RetentionArgs]
	q *Queue
}

func (w *retentionWorker) Work(ctx context.Context, _ *river.Job[RetentionArgs]) error {
	now := time.Now()
	if _, err := w.q.DeleteExpiredMedia(ctx, now); err != nil {
		return err
	}
	return w.q.SweepMedia(ctx, now)
}

// sweepAge is how old a temporary file or an empty folder must be before the
// sweep removes it: far longer than any write takes.
const sweepAge = time.Hour

// MediaSweeper is a media store that leaves things behind to clean: disk media
// (temporary files of writes a crash cut short, folders retention emptied).
type MediaSweeper interface {
	Sweep(ctx context.Context, before time.Time) (int, error)
}

// SweepMedia runs Config.Sweeper, when set, on what is older than sweepAge. The
// retention job runs it after deleting expired media, and at start.
func (q *Queue) SweepMedia(ctx context.Context, now time.Time) error {
	if q.cfg.Sweeper == nil {
		return nil
	}
	n, err := q.cfg.Sweeper.Sweep(ctx, now.Add(-sweepAge))
	if err != nil {
		return fmt.Errorf("queue: sweep media: %w", err)
	}
	if n > 0 {
		q.cfg.Logger.InfoContext(ctx, "swept leftover temporary files and empty folders from media", slog.Int("removed", n))
	}
	return nil
}

// DeleteExpiredMedia deletes the images of every job that ended more than
// MediaRetention before now, marks those jobs, forgets idempotency keys past
// their window, and returns how many jobs' media it deleted. The periodic
// retention job calls it; it is safe to run again after a crash (deleting an
// absent object is not an error).
func (q *Queue) DeleteExpiredMedia(ctx context.Context, now time.Time) (int, error) {
	if _, err := q.store.DeleteExpiredIdempotencyKeys(ctx, now.Add(-diffute.IdempotencyWindow)); err != nil {
		return 0, err
	}
	total := 0
	for {
		expired, err := q.store.ExpiredMedia(ctx, now.Add(-q.cfg.MediaRetention), retentionBatch)
		if err != nil {
			return total, err
		}
		for _, e := range expired {
			for _, key := range e.Keys {
				if err := q.cfg.Media.Delete(ctx, key); err != nil {
					return total, fmt.Errorf("queue: retention: delete %s: %w", key, err)
				}
			}
			if err := q.store.MarkMediaDeleted(ctx, e.JobID, now); err != nil {
				return total, err
			}
			total++
		}
		if len(expired) < retentionBatch {
			break
		}
	}
	if total > 0 {
		q.cfg.Logger.InfoContext(ctx, "retention deleted expired media", slog.Int("jobs", total))
	}
	return total, nil
}
