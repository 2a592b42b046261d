package sqlite

import (
	"fmt"
	"strconv"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/secretbox"
)

// UseSecretBox makes the store encrypt webhook secrets with box before writing
// them and decrypt them on reading. Call it once, after Open and before any job
// is written. Without it secrets are stored as given, which only tests of this
// package rely on; serve always sets one.
func (db *DB) UseSecretBox(box *secretbox.Box) { db.store.secrets = box }

// secretContext binds a sealed secret to its job, so a sealed value copied into
// another job's row does not decrypt there.
func secretContext(jobID int64) string { return "diffute/job-secret/" + strconv.FormatInt(jobID, 10) }

// openSecret decrypts job's secret in place, passing err through.
func (s *Store) openSecret(job *diffute.Job, err error) (*diffute.Job, error) {
	if err != nil || s.secrets == nil {
		return job, err
	}
	plain, err := s.secrets.Open(job.Secret, secretContext(job.ID))
	if err != nil {
		return nil, fmt.Errorf("sqlite: job %d: webhook secret: %w", job.ID, err)
	}
	job.Secret = plain
	return job, nil
}
