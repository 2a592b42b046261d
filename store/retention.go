package store

import (
	"context"
	"fmt"
	"time"
)

// ExpiredMedia is one finished job whose media retention has passed.
type ExpiredMedia struct {
	JobID int64
	Keys  []string // media keys of its images
}

// ExpiredMedia returns up to limit finished jobs that ended before cutoff and
// whose media has not been deleted yet, with their images' media keys.
func (s *Store) ExpiredMedia(ctx context.Context, cutoff time.Time, limit int) ([]ExpiredMedia, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT id FROM jobs
		WHERE finished_at IS NOT NULL AND finished_at < ? AND media_deleted_at IS NULL
		ORDER BY finished_at LIMIT ?`, cutoff.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: expired media: %w", err)
	}
	var out []ExpiredMedia
	for rows.Next() {
		var e ExpiredMedia
		if err := rows.Scan(&e.JobID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: expired media: %w", err)
		}
		out = append(out, e)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("store: expired media: %w", err)
	}
	for i := range out {
		rows, err := s.db.read.QueryContext(ctx, `SELECT media_key FROM images WHERE job_id = ? ORDER BY prompt_idx, image_idx`, out[i].JobID)
		if err != nil {
			return nil, fmt.Errorf("store: expired media: %w", err)
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: expired media: %w", err)
			}
			out[i].Keys = append(out[i].Keys, k)
		}
		if err := closeRows(rows); err != nil {
			return nil, fmt.Errorf("store: expired media: %w", err)
		}
	}
	return out, nil
}

// MarkMediaDeleted records that job id's media was deleted at at. Its image rows
// stay (they are the job's history); the media handler answers 410 for them.
func (s *Store) MarkMediaDeleted(ctx context.Context, id int64, at time.Time) error {
	if _, err := s.db.write.ExecContext(ctx, `UPDATE jobs SET media_deleted_at = ? WHERE id = ? AND media_deleted_at IS NULL`,
		at.UTC(), id); err != nil {
		return fmt.Errorf("store: mark media deleted: %w", err)
	}
	return nil
}

// DeleteExpiredIdempotencyKeys removes idempotency keys older than cutoff and
// returns how many there were.
func (s *Store) DeleteExpiredIdempotencyKeys(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.db.write.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < ?`, cutoff.UTC())
	if err != nil {
		return 0, fmt.Errorf("store: delete idempotency keys: %w", err)
	}
	return res.RowsAffected()
}
