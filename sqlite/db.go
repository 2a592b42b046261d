package sqlite

import (
	"context"
	"crypto/cipher"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

//go:embed migrations/*.sql migrations_postgres/*.sql
var migrationFS embed.FS

// busyTimeout is how long a connection waits for SQLite's write lock before
// failing with SQLITE_BUSY. The read pool and a second process (diffute keys …)
// can both meet a writer; five seconds covers any transaction this package runs.
const busyTimeout = 5 * time.Second

// readConns bounds the read-only pool; status polling is light, and each
// connection holds its own page cache.
const readConns = 4

// DB is an open Diffute database: the SQLite file, its migrations applied, and an
// insert-only River client through which the store enqueues jobs.
type DB struct {
	dialect Dialect
	write   *pool // SQLite: one connection, every write and River itself
	read    *pool // SQLite: read-only connections for lookups; PostgreSQL: write
	// pgx and schema are set on PostgreSQL only: the pgx pool under write (River
	// listens on its connections) and the schema River's tables live in.
	pgx    *pgxpool.Pool
	schema string
	river  *river.Client[*sql.Tx]
	store  *Store
	// insertJob is prepared once: CreateJob is the hot path of the API, and
	// parsing the statement on every request costs a measurable share of it.
	insertJob *sql.Stmt

	batch jobBatcher // group commit of CreateJob
	// hooks builds webhook payloads outside FinishJob; see SetWebhookHooks.
	hooks atomic.Pointer[WebhookHooks]
	// secretsGen counts rotations made through this DB; see SecretsGeneration.
	secretsGen atomic.Uint64
	// secretAEAD encrypts signing secrets at rest; see SetSecretKey.
	secretAEAD atomic.Pointer[cipher.AEAD]
	// delivery holds the delivery worker's statements, prepared once (they run
	// for every webhook attempt).
	delivery deliveryStmts
}

// Open opens (creating if needed) the database file at path and brings its schema
// up to date: River's migrations, then Diffute's own.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open: want a file path, got %q", path)
	}
	write, err := openPool(path, false)
	if err != nil {
		return nil, err
	}
	// River's SQLite driver wants one connection, and one writer serialises our
	// transactions too (BEGIN IMMEDIATE never waits on another of ours).
	write.SetMaxOpenConns(1)
	db := &DB{dialect: SQLite, write: &pool{write, SQLite}}
	if err := db.migrate(ctx); err != nil {
		write.Close()
		return nil, err
	}
	read, err := openPool(path, true)
	if err != nil {
		write.Close()
		return nil, err
	}
	read.SetMaxOpenConns(readConns)
	db.read = &pool{read, SQLite}
	return db.finishOpen(ctx)
}

// finishOpen builds what both dialects need once the schema is current.
func (db *DB) finishOpen(ctx context.Context) (*DB, error) {
	var err error
	// An insert-only client (no workers, never started): it writes River jobs in
	// the store's transactions and cancels them. Workers live in package queue,
	// which builds its own client over RiverDriver.
	db.river, err = river.NewClient(db.RiverDriver(), &river.Config{
		Logger:              slog.New(slog.DiscardHandler),
		SkipUnknownJobCheck: true,
		Schema:              db.schema,
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: river client: %w", err)
	}
	db.insertJob, err = db.write.PrepareContext(ctx, insertJobSQL)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	if err := db.delivery.prepare(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	db.store = &Store{db: db}
	return db, nil
}

// openPool opens a database/sql pool on path with the pragmas every connection
// needs; modernc applies _pragma parameters to each new connection.
func openPool(path string, readOnly bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.Itoa(int(busyTimeout/time.Millisecond))+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)") // safe in WAL: a crash loses no committed transaction's consistency
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		// Write transactions take the lock at BEGIN, so a transaction that reads
		// and then writes can never fail on a lock upgrade.
		q.Set("_txlock", "immediate")
	}
	pool, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return pool, nil
}

// Close closes both pools. Stop any queue built on db first.
func (db *DB) Close() error {
	var errs []error
	if db.insertJob != nil {
		errs = append(errs, db.insertJob.Close())
	}
	errs = append(errs, db.delivery.close())
	if db.read != nil && db.read != db.write {
		errs = append(errs, db.read.Close())
	}
	errs = append(errs, db.write.Close())
	if db.pgx != nil {
		db.pgx.Close()
	}
	return errors.Join(errs...)
}

// Dialect reports which database db is.
func (db *DB) Dialect() Dialect { return db.dialect }

// RiverSchema is the schema a River client on db must name in its Config ("" on
// SQLite, and on PostgreSQL when the URL sets no search_path).
func (db *DB) RiverSchema() string { return db.schema }

// Store returns the store of db. It implements diffute.Store and diffute.KeyStore.
func (db *DB) Store() *Store { return db.store }

// RiverDriver returns a River driver over db's write pool, for the queue's client.
// On PostgreSQL it is River's database/sql driver with a pgx listener: the store's
// *sql.Tx and River's are one type, and workers still hear inserts through
// LISTEN/NOTIFY instead of polling (see doc.go).
func (db *DB) RiverDriver() riverdriver.Driver[*sql.Tx] {
	if db.dialect == Postgres {
		return riverdatabasesql.NewWithPgxListener(db.write.DB, db.pgx)
	}
	return riversqlite.New(db.write.DB)
}

// RequeueRunningJobs makes River jobs left running by a previous process available
// again and returns how many there were. In embedded mode one process owns the
// file, so a job still marked running at start was interrupted by a crash; waiting
// for River's stuck-job rescue (an hour by default) would delay it needlessly.
// Call it only before this process's queue starts working.
func (db *DB) RequeueRunningJobs(ctx context.Context) (int, error) {
	if db.dialect != SQLite {
		return 0, errors.New("sqlite: RequeueRunningJobs is for the embedded database; PostgreSQL workers rescue through leases")
	}
	res, err := db.write.ExecContext(ctx,
		`UPDATE river_job SET state = 'available' WHERE state = 'running'`)
	if err != nil {
		return 0, fmt.Errorf("sqlite: requeue running jobs: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (db *DB) migrate(ctx context.Context) error {
	if db.dialect == Postgres {
		// Several API nodes and workers may start at once: one migrates, the
		// others wait on the lock and then find nothing left to do.
		unlock, err := db.migrationLock(ctx)
		if err != nil {
			return err
		}
		defer unlock()
	}
	m, err := rivermigrate.New(db.RiverDriver(), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler), Schema: db.schema})
	if err != nil {
		return fmt.Errorf("sqlite: river migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("sqlite: river migrations: %w", err)
	}
	return db.migrateOwn(ctx)
}

// migrateOwn applies each embedded migrations/NNNN_name.sql not yet recorded in
// schema_migrations, each in its own transaction with its record.
func (db *DB) migrateOwn(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TIMESTAMP NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: schema_migrations: %w", err)
	}
	migrations, err := ownMigrations(migrationDirs[db.dialect])
	if err != nil {
		return err
	}
	for _, mig := range migrations {
		if err := db.applyMigration(ctx, mig); err != nil {
			return err
		}
	}
	return nil
}

type migration struct {
	version int
	name    string
	sql     string
}

// migrationDirs holds each dialect's migrations. Every SQLite migration needs a
// PostgreSQL twin with the same number (TestMigrationsHaveBothDialects checks).
var migrationDirs = map[Dialect]string{SQLite: "migrations", Postgres: "migrations_postgres"}

func ownMigrations(dir string) ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("sqlite: migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("sqlite: migration %q: want NNNN_name.sql", e.Name())
		}
		b, err := migrationFS.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("sqlite: migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

func (db *DB) applyMigration(ctx context.Context, m migration) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: migration %s: %w", m.name, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: migration %s: %w", m.name, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("sqlite: migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UTC()); err != nil {
		return fmt.Errorf("sqlite: migration %s: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: migration %s: %w", m.name, err)
	}
	return nil
}
