package store

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Dialect is the SQL database under the store. The store's statements are written
// once, in the subset SQLite and PostgreSQL share (ON CONFLICT, RETURNING,
// coalesce, CASE), with ? placeholders; the dialect only rewrites placeholders and
// chooses the migration folder. Anything that differs more than that belongs in a
// dialect-specific file (sqlite.go, postgres.go, postgres_lease.go), not in a second copy of the store.
type Dialect int

const (
	// SQLite is the embedded default: one file, one writer.
	SQLite Dialect = iota
	// Postgres is the scale-out database shared by API nodes and workers.
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// rebind rewrites the ? placeholders of query into d's form ($1, $2, … for
// PostgreSQL). Our statements never hold a ? inside a string literal, and River's
// own statements, which already use $n, never come through here.
func (d Dialect) rebind(query string) string {
	if d != Postgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// jsonInt is the SQL expression for the integer member key of the JSON object
// in column (River's args): SQLite's json_extract reads its text and binary
// JSON alike; PostgreSQL's args are jsonb.
func (d Dialect) jsonInt(column, key string) string {
	if d == Postgres {
		return "(" + column + "->>'" + key + "')::bigint"
	}
	return "json_extract(" + column + ", '$." + key + "')"
}

// pool is a database/sql pool whose query methods rebind placeholders for its
// dialect, so that store code reads the same on both databases. The embedded
// *sql.DB gives the rest (Ping, Close, pool settings).
type pool struct {
	*sql.DB
	dialect Dialect
}

func (p *pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return p.DB.ExecContext(ctx, p.dialect.rebind(query), args...)
}

func (p *pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return p.DB.QueryContext(ctx, p.dialect.rebind(query), args...)
}

func (p *pool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return p.DB.QueryRowContext(ctx, p.dialect.rebind(query), args...)
}

func (p *pool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return p.DB.PrepareContext(ctx, p.dialect.rebind(query))
}

// BeginTx starts a transaction whose statements are rebound too. Hand River the
// embedded *sql.Tx (tx.Tx) for InsertTx and friends.
func (p *pool) BeginTx(ctx context.Context, opts *sql.TxOptions) (*tx, error) {
	t, err := p.DB.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &tx{Tx: t, dialect: p.dialect}, nil
}

// tx is a transaction of a pool; see pool.
type tx struct {
	*sql.Tx
	dialect Dialect
}

func (t *tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.Tx.ExecContext(ctx, t.dialect.rebind(query), args...)
}

func (t *tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.Tx.QueryContext(ctx, t.dialect.rebind(query), args...)
}

func (t *tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.Tx.QueryRowContext(ctx, t.dialect.rebind(query), args...)
}

// isForeignKeyViolation reports whether err is a foreign-key failure on either
// database: SQLite only says so in its message, PostgreSQL in SQLSTATE 23503.
func isForeignKeyViolation(err error) bool {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pgErr.Code == "23503"
	}
	return strings.Contains(err.Error(), "FOREIGN KEY constraint failed")
}
