package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/diffute/diffute"
)

var _ diffute.TenancyStore = (*Store)(nil)

// claimAndCheck claims p's idempotency key and checks its project's quotas, counting
// the jobs and images that earlier jobs of the same batch add.
func (s *Store) claimAndCheck(ctx context.Context, tx *tx, p *pendingJob, activeAdded, imagesAdded int) (int64, bool, error) {
	now := p.job.CreatedAt.UTC()
	if p.sub.IdempotencyKey != "" {
		id, replayed, err := claimIdempotencyKey(ctx, tx, p.job, *p.sub, now)
		if err != nil || replayed {
			return id, replayed, err
		}
	}
	return 0, false, checkQuota(ctx, tx, p.job, p.ins.numImages, p.sub.Quota, now, activeAdded, imagesAdded)
}

// claimIdempotencyKey records sub's key for job, or reports the job an earlier
// request with the same key made (replayed) or refuses a different request.
func claimIdempotencyKey(ctx context.Context, tx *tx, job *diffute.Job, sub diffute.Submission, now time.Time) (int64, bool, error) {
	// An expired claim is released first, so the key can start a new job.
	if _, err := tx.ExecContext(ctx, `DELETE FROM idempotency_keys
		WHERE org = ? AND project = ? AND idem_key = ? AND created_at < ?`,
		job.Org, job.Project, sub.IdempotencyKey, now.Add(-diffute.IdempotencyWindow)); err != nil {
		return 0, false, fmt.Errorf("store: idempotency key: %w", err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (org, project, idem_key, request_hash, job_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (org, project, idem_key) DO NOTHING`,
		job.Org, job.Project, sub.IdempotencyKey, sub.RequestHash, job.ID, now)
	if err != nil {
		return 0, false, fmt.Errorf("store: idempotency key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, false, fmt.Errorf("store: idempotency key: %w", err)
	} else if n == 1 {
		return 0, false, nil
	}
	var (
		hash  []byte
		jobID int64
	)
	err = tx.QueryRowContext(ctx, `SELECT request_hash, job_id FROM idempotency_keys
		WHERE org = ? AND project = ? AND idem_key = ?`, job.Org, job.Project, sub.IdempotencyKey).Scan(&hash, &jobID)
	if errors.Is(err, sql.ErrNoRows) {
		// Cannot happen inside the transaction that just saw the conflict.
		return 0, false, diffute.Errorf(diffute.ECONFLICT, "idempotency key is being released; retry")
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: idempotency key: %w", err)
	}
	if !bytes.Equal(hash, sub.RequestHash) {
		return 0, false, diffute.FieldErrorf(diffute.EUNPROCESSABLE, "Idempotency-Key",
			"this Idempotency-Key was used within the last 24 hours with a different request body; use a new key for a new request")
	}
	return jobID, true, nil
}

// checkQuota refuses job when its project is at q's bounds. It counts in the
// write transaction, so on SQLite (one writer) two submissions cannot both take
// the last slot.
func checkQuota(ctx context.Context, tx *tx, job *diffute.Job, numImages int, q diffute.Quota, now time.Time, activeAdded, imagesAdded int) error {
	if q.MaxActiveJobs > 0 {
		var active int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM jobs
			WHERE org = ? AND project = ? AND status IN ('queued', 'running')`, job.Org, job.Project).Scan(&active); err != nil {
			return fmt.Errorf("store: quota: %w", err)
		}
		active += activeAdded
		if active >= q.MaxActiveJobs {
			return &diffute.QuotaError{Err: diffute.Errorf(diffute.ERATELIMIT,
				"project %s/%s has %d jobs queued or running, its limit; submit again when one finishes",
				job.Org, job.Project, active)}
		}
	}
	if q.MaxImagesPerDay > 0 {
		day := now.Truncate(24 * time.Hour)
		var used int
		// Requested images of today's jobs; of a job that failed or was
		// cancelled, the images it made (and was billed for), not those it
		// asked for.
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(CASE WHEN status IN ('failed', 'canceled')
			THEN usage_images ELSE num_images END), 0) FROM jobs
			WHERE org = ? AND project = ? AND created_at >= ?`,
			job.Org, job.Project, day).Scan(&used); err != nil {
			return fmt.Errorf("store: quota: %w", err)
		}
		used += imagesAdded
		if used+numImages > q.MaxImagesPerDay {
			return &diffute.QuotaError{RetryAfter: day.Add(24 * time.Hour).Sub(now), Err: diffute.Errorf(diffute.ERATELIMIT,
				"project %s/%s has requested %d of its %d images today (UTC) and this request asks for %d; the count restarts at 00:00 UTC",
				job.Org, job.Project, used, q.MaxImagesPerDay, numImages)}
		}
	}
	return nil
}
