package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
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

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/secretbox"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// Options configure a database at Open. Everything the store needs is given
// here, once: nothing is set on a DB after it is open.
type Options struct {
	// Secrets seals what the store keeps but must never show: each job's bearer
	// secret and each project's webhook signing secrets. Without it (diffute
	// keys, which touches API keys only) every read or write of a secret fails
	// and the key check is neither made nor needed. Its key lives
	// outside the data directory (see package secretbox), so a copy of the data
	// alone reveals no secret; the first key a database sees is remembered, and
	// Open refuses another (ErrSecretKeyMismatch).
	Secrets *secretbox.Box
	// LegacySigningKey is the key that sealed webhook signing secrets before
	// they were sealed with Secrets (webhook-secrets.key in the data directory
	// on SQLite; derived from the secret key on PostgreSQL). When rows sealed
	// that way remain, Open re-seals them with Secrets and needs it.
	LegacySigningKey []byte
	// Manifests shapes the webhook messages the store writes in its own
	// transactions (started, prompt.completed, a finished or cancelled job's
	// message, a redelivery). The zero value lists no image URLs (an API-only
	// process without media).
	Manifests diffute.Manifests
	// DeliveryMaxAttempts is the River MaxAttempts of each webhook delivery;
	// 0 means 8, the length of the default retry schedule.
	DeliveryMaxAttempts int
	// Inference is how inference jobs are queued: the queue's policy
	// (queue.Inference), applied here because the River job is written in the
	// submission's transaction. Required.
	Inference InferencePolicy
}

// InferencePolicy is the queue's rule for the River job of each submission.
type InferencePolicy struct {
	// MaxAttempts is River's MaxAttempts of an inference job.
	MaxAttempts int
	// Queue names the River queue of model's jobs on a database that several
	// worker processes share or not (DB.SharedByWorkers).
	Queue func(model string, sharedByWorkers bool) string
}

// Open opens the database at url and brings its schema up to date: River's
// migrations, then Diffute's own. url is sqlite:PATH (or sqlite://PATH), the
// embedded default, or postgres://… (postgresql://…), any pgx connection string,
// for scale-out: several processes may open the same PostgreSQL database.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	if opts.Inference.Queue == nil || opts.Inference.MaxAttempts < 1 {
		return nil, errors.New("store: open: Options.Inference is required (queue.Inference)")
	}
	if opts.DeliveryMaxAttempts < 1 {
		opts.DeliveryMaxAttempts = defaultDeliveryMaxAttempts
	}
	var (
		db  *DB
		err error
	)
	switch {
	case strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://"):
		db, err = openPostgres(ctx, url)
	case strings.HasPrefix(url, "sqlite://"):
		db, err = openSQLite(ctx, strings.TrimPrefix(url, "sqlite://"))
	case strings.HasPrefix(url, "sqlite:"):
		db, err = openSQLite(ctx, strings.TrimPrefix(url, "sqlite:"))
	default:
		scheme, _, _ := strings.Cut(url, ":") // not the whole URL: it may hold a password
		return nil, fmt.Errorf("store: open: scheme %q unknown; want sqlite:PATH or postgres://…", scheme)
	}
	if err != nil {
		return nil, err
	}
	db.opts = opts
	db.store.secrets = opts.Secrets
	if opts.Secrets != nil {
		if err := db.useSecrets(ctx); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// IsPostgresURL reports whether url names a PostgreSQL database for Open.
func IsPostgresURL(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// DB is an open Diffute database: its migrations applied, and an insert-only
// River client through which the store enqueues jobs.
type DB struct {
	opts    Options
	dialect Dialect
	path    string // SQLite: the database file
	// workerLock is held while this DB is the SQLite file's worker (ClaimWorker).
	workerLock *os.File
	write      *pool // SQLite: one connection, every write and River itself
	read       *pool // SQLite: read-only connections for lookups; PostgreSQL: write
	// pgx and schema are set on PostgreSQL only: the pgx pool under write (River
	// listens on its connections) and the schema River's tables live in.
	pgx    *pgxpool.Pool
	schema string
	// wake is SQLite's in-process shortcut for River's notifications (wake.go).
	wake  wakeHub
	river *river.Client[*sql.Tx]
	store *Store
	// insertJob is prepared once: CreateJob is the hot path of the API, and
	// parsing the statement on every request costs a measurable share of it.
	insertJob *sql.Stmt

	batch jobBatcher // group commit of CreateJob
	// secretsGen counts rotations made through this DB; see SecretsGeneration.
	secretsGen atomic.Uint64
	// delivery holds the delivery worker's statements, prepared once (they run
	// for every webhook attempt).
	delivery deliveryStmts
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
		// River sends at most one insert notification per queue per cooldown;
		// its 100 ms default would leave every job that follows another within
		// 100 ms to wait for the workers' next poll.
		FetchCooldown: insertNotifyCooldown,
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: river client: %w", err)
	}
	db.insertJob, err = db.write.PrepareContext(ctx, insertJobSQL)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	if err := db.delivery.prepare(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	db.store = &Store{db: db}
	return db, nil
}

// insertNotifyCooldown spaces the insert notifications of one queue: short
// enough that a job submitted right after another is still heard at once.
const insertNotifyCooldown = 2 * time.Millisecond

// Close closes both pools. Stop any queue built on db first.
func (db *DB) Close() error {
	var errs []error
	if db.workerLock != nil {
		errs = append(errs, db.workerLock.Close())
		db.workerLock = nil
	}
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

// Dialect reports which database db is, for logs and metrics labels. Callers
// that need to behave differently ask a capability instead (SharedByWorkers,
// Listens).
func (db *DB) Dialect() Dialect { return db.dialect }

// SharedByWorkers reports whether several processes work the database's jobs
// at once (PostgreSQL). They then hold worker leases (RenewLease) and rescue
// the jobs of one whose lease lapsed (RescueOrphanedJobs). When false (SQLite)
// one process works it, made so by ClaimWorker.
func (db *DB) SharedByWorkers() bool { return db.dialect == Postgres }

// Listens reports whether every worker hears of new jobs at once, whichever
// process inserted them (PostgreSQL's LISTEN/NOTIFY). When false (SQLite) a
// worker hears at once of the jobs its own process inserts (wake.go) and of
// other processes' at its next poll.
func (db *DB) Listens() bool { return db.dialect == Postgres }

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
	return &wakeDriver{Driver: riversqlite.New(db.write.DB), hub: &db.wake}
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
		return fmt.Errorf("store: river migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("store: river migrations: %w", err)
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
		return fmt.Errorf("store: schema_migrations: %w", err)
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
var migrationDirs = map[Dialect]string{SQLite: "migrations/sqlite", Postgres: "migrations/postgres"}

func ownMigrations(dir string) ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("store: migration %q: want NNNN_name.sql", e.Name())
		}
		b, err := migrationFS.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("store: migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

func (db *DB) applyMigration(ctx context.Context, m migration) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migration %s: %w", m.name, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return fmt.Errorf("store: migration %s: %w", m.name, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("store: migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UTC()); err != nil {
		return fmt.Errorf("store: migration %s: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migration %s: %w", m.name, err)
	}
	return nil
}
