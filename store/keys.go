package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/diffute/diffute"
)

// CreateAPIKey stores key under hash (the secret itself is never stored) and sets
// key.ID, and key.CreatedAt when it is zero.
func (s *Store) CreateAPIKey(ctx context.Context, key *diffute.APIKey, hash []byte) error {
	if key.Org == "" || len(hash) == 0 {
		return diffute.Errorf(diffute.EINTERNAL, "CreateAPIKey: org and hash are required")
	}
	if key.CreatedAt.IsZero() {
		key.CreatedAt = time.Now().UTC()
	}
	// RETURNING rather than LastInsertId, which PostgreSQL's driver lacks.
	if err := s.db.write.QueryRowContext(ctx, `INSERT INTO api_keys (org, project, name, hash, created_at)
		VALUES (?, ?, ?, ?, ?) RETURNING id`, key.Org, key.Project, key.Name, hash, key.CreatedAt.UTC()).Scan(&key.ID); err != nil {
		return fmt.Errorf("store: create api key: %w", err)
	}
	return nil
}

// APIKeyByHash returns the valid key stored under hash; EUNAUTHORIZED when there is
// none or it was revoked, with one message for both so a caller learns nothing.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (*diffute.APIKey, error) {
	k, err := scanKey(s.db.read.QueryRowContext(ctx, `SELECT id, org, project, name, created_at, revoked_at
		FROM api_keys WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !k.RevokedAt.IsZero()) {
		return nil, diffute.Errorf(diffute.EUNAUTHORIZED, "invalid API key")
	}
	if err != nil {
		return nil, fmt.Errorf("store: api key: %w", err)
	}
	return k, nil
}

// ListAPIKeys lists the keys of org, revoked ones included, oldest first; every
// organization's keys when org is "".
func (s *Store) ListAPIKeys(ctx context.Context, org string) ([]*diffute.APIKey, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT id, org, project, name, created_at, revoked_at
		FROM api_keys WHERE ? = '' OR org = ? ORDER BY id`, org, org)
	if err != nil {
		return nil, fmt.Errorf("store: list api keys: %w", err)
	}
	var keys []*diffute.APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: list api keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("store: list api keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey revokes key id; revoking it again keeps the first revocation time.
// ENOTFOUND when there is no such key.
func (s *Store) RevokeAPIKey(ctx context.Context, id int64) error {
	res, err := s.db.write.ExecContext(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`,
		time.Now().UTC(), id)
	if err != nil {
		return fmt.Errorf("store: revoke api key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: revoke api key: %w", err)
	} else if n == 0 {
		return diffute.Errorf(diffute.ENOTFOUND, "API key %d not found", id)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanKey(sc scanner) (*diffute.APIKey, error) {
	var (
		k       diffute.APIKey
		revoked sql.NullTime
	)
	if err := sc.Scan(&k.ID, &k.Org, &k.Project, &k.Name, &k.CreatedAt, &revoked); err != nil {
		return nil, err
	}
	k.RevokedAt = revoked.Time
	return &k, nil
}
