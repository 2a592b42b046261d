package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Worker leases let workers on PostgreSQL find the jobs of a worker that died
// (SIGKILL, OOM, a lost machine) without waiting for River's stuck-job rescue,
// which cannot tell a dead worker's job from a long one still running. Each
// working River client renews a lease row under its client ID; River appends that
// ID to a job's attempted_by when the client fetches the job. A running job whose
// last attempt belongs to a client with no live lease is orphaned. All times are
// the database's clock, so the nodes' clocks need not agree.

var errLeaseDialect = errors.New("store: worker leases need PostgreSQL; the embedded database requeues at start")

// RenewLease records that River client clientID is alive for ttl more.
func (db *DB) RenewLease(ctx context.Context, clientID string, ttl time.Duration) error {
	if db.dialect != Postgres {
		return errLeaseDialect
	}
	if _, err := db.write.ExecContext(ctx, `INSERT INTO worker_leases (client_id, expires_at)
		VALUES (?, now() + make_interval(secs => ?))
		ON CONFLICT (client_id) DO UPDATE SET expires_at = excluded.expires_at`,
		clientID, ttl.Seconds()); err != nil {
		return fmt.Errorf("store: renew lease: %w", err)
	}
	return nil
}

// DropLease removes clientID's lease, when it stops cleanly, and old leases of
// clients long gone.
func (db *DB) DropLease(ctx context.Context, clientID string) error {
	if db.dialect != Postgres {
		return errLeaseDialect
	}
	if _, err := db.write.ExecContext(ctx, `DELETE FROM worker_leases
		WHERE client_id = ? OR expires_at < now() - interval '1 day'`, clientID); err != nil {
		return fmt.Errorf("store: drop lease: %w", err)
	}
	return nil
}

// RescueOrphanedJobs makes running River jobs whose client holds no live lease
// available again, and returns how many. The job keeps its attempt count, so a
// job that kills every worker it lands on still ends after MaxAttempts.
func (db *DB) RescueOrphanedJobs(ctx context.Context) (int, error) {
	if db.dialect != Postgres {
		return 0, errLeaseDialect
	}
	res, err := db.write.ExecContext(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now()
		WHERE state = 'running' AND NOT EXISTS (SELECT 1 FROM worker_leases l
			WHERE l.client_id = river_job.attempted_by[array_upper(river_job.attempted_by, 1)]
			AND l.expires_at > now())`)
	if err != nil {
		return 0, fmt.Errorf("store: rescue orphaned jobs: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: rescue orphaned jobs: %w", err)
	}
	return int(n), nil
}
