package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/secretbox"
)

// UseSecretBox makes the store encrypt webhook secrets with box before writing
// them and decrypt them on reading. Call it once, after Open and before any job
// is written. Without it secrets are stored as given, which only tests of this
// package rely on; serve always sets one.
//
// The first key used with a database is remembered as a sealed check value; a
// later call with another key fails (ErrSecretKeyMismatch) instead of leaving
// every stored secret unreadable.
func (db *DB) UseSecretBox(ctx context.Context, box *secretbox.Box) error {
	var sealed string
	err := db.write.QueryRowContext(ctx, `SELECT sealed FROM secret_key_check WHERE id = 1`).Scan(&sealed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		sealed, err = box.Seal(keyCheckPlaintext, keyCheckContext)
		if err != nil {
			return fmt.Errorf("sqlite: secret key check: %w", err)
		}
		if _, err := db.write.ExecContext(ctx, `INSERT INTO secret_key_check (id, sealed) VALUES (1, ?)
			ON CONFLICT (id) DO NOTHING`, sealed); err != nil {
			return fmt.Errorf("sqlite: secret key check: %w", err)
		}
	case err != nil:
		return fmt.Errorf("sqlite: secret key check: %w", err)
	default:
		if got, err := box.Open(sealed, keyCheckContext); err != nil || got != keyCheckPlaintext {
			return ErrSecretKeyMismatch
		}
	}
	db.store.secrets = box
	return nil
}

// ErrSecretKeyMismatch is returned by UseSecretBox when the database was written
// with another secret key.
var ErrSecretKeyMismatch = errors.New("sqlite: the secret key is not the one this database's webhook secrets were encrypted with; start with the original key (DIFFUTE_SECRET_KEY or --secret-key-file)")

const (
	keyCheckPlaintext = "diffute secret key check v1"
	keyCheckContext   = "diffute/secret-key-check"
)

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
