package store

import (
	"context"
	"fmt"
	"time"

	"github.com/diffute/diffute"
)

// RecordUsage adds u to job id's usage and to its project's usage on the UTC day
// of at, in one transaction. Workers meter through RecordImage, in the image's
// own transaction; this is for work that made no image.
func (s *Store) RecordUsage(ctx context.Context, id int64, u diffute.Usage, at time.Time) error {
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: record usage: %w", err)
	}
	defer tx.Rollback()
	if err := addUsage(ctx, tx, id, u, at); err != nil {
		return fmt.Errorf("store: record usage: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: record usage: commit: %w", err)
	}
	return nil
}

// addUsage adds u to job id and to its project's day of at, in tx.
func addUsage(ctx context.Context, tx *tx, id int64, u diffute.Usage, at time.Time) error {
	var org, project string
	if err := tx.QueryRowContext(ctx, `SELECT org, project FROM jobs WHERE id = ?`, id).Scan(&org, &project); err != nil {
		return fmt.Errorf("usage: job %d: %w", id, err)
	}
	ms := u.EngineTime.Milliseconds()
	if _, err := tx.ExecContext(ctx, `UPDATE jobs SET usage_images = usage_images + ?,
		usage_pixel_steps = usage_pixel_steps + ?, usage_engine_ms = usage_engine_ms + ? WHERE id = ?`,
		u.Images, u.PixelSteps, ms, id); err != nil {
		return fmt.Errorf("usage: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO usage_daily (org, project, day, images, pixel_steps, engine_ms)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (org, project, day) DO UPDATE SET
		images = usage_daily.images + excluded.images,
		pixel_steps = usage_daily.pixel_steps + excluded.pixel_steps,
		engine_ms = usage_daily.engine_ms + excluded.engine_ms`,
		org, project, at.UTC().Format(diffute.UsageDayFormat), u.Images, u.PixelSteps, ms); err != nil {
		return fmt.Errorf("usage: %w", err)
	}
	return nil
}

// Usage returns org/project's usage per UTC day from from to to, inclusive.
func (s *Store) Usage(ctx context.Context, org, project string, from, to time.Time) ([]diffute.UsageDay, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT day, images, pixel_steps, engine_ms FROM usage_daily
		WHERE org = ? AND project = ? AND day >= ? AND day <= ? ORDER BY day`,
		org, project, from.UTC().Format(diffute.UsageDayFormat), to.UTC().Format(diffute.UsageDayFormat))
	if err != nil {
		return nil, fmt.Errorf("store: usage: %w", err)
	}
	var out []diffute.UsageDay
	for rows.Next() {
		var (
			d  diffute.UsageDay
			ms int64
		)
		if err := rows.Scan(&d.Day, &d.Images, &d.PixelSteps, &ms); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: usage: %w", err)
		}
		d.EngineTime = time.Duration(ms) * time.Millisecond
		out = append(out, d)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("store: usage: %w", err)
	}
	return out, nil
}
