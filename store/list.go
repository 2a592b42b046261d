package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/diffute/diffute"
)

// MaxListJobs bounds one page of ListJobs.
const MaxListJobs = 100

// ListJobs returns up to limit jobs of org/project, newest first, with their
// prompts and progress, and the cursor of the next page (0 when this is the
// last). before, when non-zero, is such a cursor: the job_id of the last job of
// the previous page; the page continues after it (a keyset cursor, stable while
// new jobs arrive). An unknown before is ENOTFOUND. limit is at most
// MaxListJobs; the store reads one job more to know whether a page follows, so
// that this holds at the maximum too.
func (s *Store) ListJobs(ctx context.Context, org, project string, limit int, before int64) ([]*diffute.Job, int64, error) {
	if limit <= 0 || limit > MaxListJobs {
		limit = MaxListJobs
	}
	jobs, err := s.listJobs(ctx, org, project, limit+1, before)
	if err != nil || len(jobs) <= limit {
		return jobs, 0, err
	}
	return jobs[:limit], jobs[limit-1].ID, nil
}

func (s *Store) listJobs(ctx context.Context, org, project string, limit int, before int64) ([]*diffute.Job, error) {
	query := `SELECT id FROM jobs WHERE org = ? AND project = ? ORDER BY created_at DESC, id DESC LIMIT ?`
	args := []any{org, project, limit}
	if before != 0 {
		var createdAt time.Time
		err := s.db.read.QueryRowContext(ctx, `SELECT created_at FROM jobs WHERE id = ? AND org = ? AND project = ?`,
			before, org, project).Scan(&createdAt)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, diffute.FieldErrorf(diffute.ENOTFOUND, "before", "no job %d to continue after", before)
		}
		if err != nil {
			return nil, fmt.Errorf("store: list jobs: %w", err)
		}
		// Portable keyset condition (no row values), so the same SQL serves PostgreSQL.
		query = `SELECT id FROM jobs WHERE org = ? AND project = ?
			AND (created_at < ? OR (created_at = ? AND id < ?))
			ORDER BY created_at DESC, id DESC LIMIT ?`
		args = []any{org, project, createdAt, createdAt, before, limit}
	}
	rows, err := s.db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: list jobs: %w", err)
		}
		ids = append(ids, id)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	// One load per job: a page is at most MaxListJobs+1 small reads on the read
	// pool, and it keeps one definition of what a loaded job holds.
	jobs := make([]*diffute.Job, 0, len(ids))
	for _, id := range ids {
		j, err := loadJob(ctx, s.db.read, id, &scope{org, project})
		if diffute.ErrorCode(err) == diffute.ENOTFOUND {
			continue // deleted between the two reads
		}
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// QueueStat is the backlog of one River queue: jobs waiting to run (available,
// scheduled or retryable) and the age of the oldest that is due.
type QueueStat struct {
	Queue     string
	Depth     int
	OldestDue time.Time // zero when nothing is due
}

// QueueStats returns the backlog of every queue that has jobs waiting. It reads
// River's own table, so it counts work inserted by any process.
func (s *Store) QueueStats(ctx context.Context) ([]QueueStat, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT queue, state, scheduled_at FROM river_job
		WHERE state IN ('available', 'scheduled', 'retryable')`)
	if err != nil {
		return nil, fmt.Errorf("store: queue stats: %w", err)
	}
	byQueue := map[string]*QueueStat{}
	var order []string
	now := time.Now()
	for rows.Next() {
		var (
			queue, state string
			at           time.Time
		)
		if err := rows.Scan(&queue, &state, &at); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: queue stats: %w", err)
		}
		st := byQueue[queue]
		if st == nil {
			st = &QueueStat{Queue: queue}
			byQueue[queue] = st
			order = append(order, queue)
		}
		st.Depth++
		if !at.After(now) && (st.OldestDue.IsZero() || at.Before(st.OldestDue)) {
			st.OldestDue = at
		}
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("store: queue stats: %w", err)
	}
	out := make([]QueueStat, 0, len(order))
	for _, q := range order {
		out = append(out, *byQueue[q])
	}
	return out, nil
}

// AttemptCounts returns the number of webhook attempts recorded, by outcome:
// "success" (a 2xx answer), "http_error" (another status) and "error" (no answer:
// refused, timed out, reset). Counted from the delivery log, so every process's
// attempts are included.
func (s *Store) AttemptCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT
		CASE WHEN error = '' AND status_code BETWEEN 200 AND 299 THEN 'success'
		     WHEN status_code > 0 THEN 'http_error' ELSE 'error' END AS outcome,
		count(*) FROM delivery_attempts GROUP BY 1`)
	if err != nil {
		return nil, fmt.Errorf("store: attempt counts: %w", err)
	}
	out := map[string]int64{"success": 0, "http_error": 0, "error": 0}
	for rows.Next() {
		var (
			outcome string
			n       int64
		)
		if err := rows.Scan(&outcome, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: attempt counts: %w", err)
		}
		out[outcome] = n
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("store: attempt counts: %w", err)
	}
	return out, nil
}
