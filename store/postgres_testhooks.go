package store

import (
	"context"
	"fmt"
)

// MarkRunningForTest puts the River job of Diffute job id in the state a worker
// leaves it in when it dies mid-job: running, attempted by clientID. It exists for
// tests of the rescue path in other packages; nothing else calls it.
func (db *DB) MarkRunningForTest(ctx context.Context, id int64, clientID string) error {
	if db.dialect != Postgres {
		return errLeaseDialect
	}
	_, err := db.write.ExecContext(ctx, `UPDATE river_job SET state = 'running', attempt = 1,
		attempted_at = now(), attempted_by = ARRAY[?]::text[]
		WHERE id = (SELECT river_job_id FROM jobs WHERE id = ?)`, clientID, id)
	if err != nil {
		return fmt.Errorf("store: mark running: %w", err)
	}
	return nil
}
