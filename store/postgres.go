package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// defaultPostgresConns is the pool size when the URL sets no pool_max_conns:
// pgx's default (4 on a small machine) is too few for an API node, whose requests
// each hold a connection for their transaction, plus River's listener.
const defaultPostgresConns = 20

// schemaName is what OpenPostgres accepts as a search_path: one plain identifier,
// which is also River's Config.Schema (River quotes nothing).
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// migrationLockID is the advisory lock key held while migrating ("diffute" in
// ASCII), so that nodes starting together migrate one at a time.
const migrationLockID = 0x64696666757465

// openPostgres opens the PostgreSQL database at url (postgres://…, any pgx
// connection string) and brings its schema up to date. A search_path parameter
// in the URL (…?search_path=diffute) names the schema that holds Diffute's and
// River's tables; it is created if missing. Several processes may open the same
// database: that is the scale-out deployment.
func openPostgres(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message can quote the URL, password included.
		return nil, errors.New("postgres: the database URL does not parse; want postgres://USER:PASSWORD@HOST:PORT/DB[?search_path=SCHEMA]")
	}
	schema := cfg.ConnConfig.RuntimeParams["search_path"]
	if schema != "" && !schemaName.MatchString(schema) {
		return nil, fmt.Errorf("postgres: search_path %q: want one lower-case schema name", schema)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = defaultPostgresConns
	}
	pgxPool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	sqlDB := stdlib.OpenDBFromPool(pgxPool)
	p := &pool{sqlDB, Postgres}
	db := &DB{dialect: Postgres, write: p, read: p, pgx: pgxPool, schema: schema}
	if schema != "" {
		if _, err := sqlDB.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
			db.Close()
			return nil, fmt.Errorf("postgres: create schema %s: %w", schema, err)
		}
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db.finishOpen(ctx)
}

// migrationLock takes the migration advisory lock on a connection of its own and
// returns its release.
func (db *DB) migrationLock(ctx context.Context) (func(), error) {
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: migration lock: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock("+strconv.Itoa(migrationLockID)+")"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("postgres: migration lock: %w", err)
	}
	return func() {
		// Closing the connection would also release the lock; unlock first so
		// the connection can go back to the pool clean.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock("+strconv.Itoa(migrationLockID)+")") // Close releases it anyway
		conn.Close()
	}, nil
}
