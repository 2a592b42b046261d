package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// This file holds what only SQLite does: one file, two pools on it (one writer,
// a few readers), and the pragmas every connection needs.

// busyTimeout is how long a connection waits for SQLite's write lock before
// failing with SQLITE_BUSY. The read pool and a second process (diffute keys …)
// can both meet a writer; five seconds covers any transaction this package runs.
const busyTimeout = 5 * time.Second

// readConns bounds the read-only pool; status polling is light, and each
// connection holds its own page cache.
const readConns = 4

// openSQLite opens (creating if needed) the database file at path and brings
// its schema up to date.
func openSQLite(ctx context.Context, path string) (*DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("store: open: want a file path, got %q", path)
	}
	write, err := openPool(path, false)
	if err != nil {
		return nil, err
	}
	// River's SQLite driver wants one connection, and one writer serialises our
	// transactions too (BEGIN IMMEDIATE never waits on another of ours).
	write.SetMaxOpenConns(1)
	db := &DB{dialect: SQLite, write: &pool{write, SQLite}, path: path}
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

// openPool opens a database/sql pool on path with the pragmas every connection
// needs; modernc applies _pragma parameters to each new connection. It fails
// only at the first connection, as sql.Open does.
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
	// Each connection keeps its compiled statements (stmtcache.go).
	return openCached("file:" + path + "?" + q.Encode()), nil
}

// ClaimWorker makes this process the one that works the jobs of a SQLite
// database, and returns how many jobs a previous process left running, now made
// available again. It fails with ErrAnotherWorker while another process (or
// another DB of this one) holds the claim: two processes working one file would
// each requeue and run the other's running jobs. The claim is an exclusive
// lock on a file beside the database, released by Close or by the process's
// death, so a crashed worker never blocks its successor. With the claim held,
// a job still marked running was interrupted by a crash: it is requeued at once
// instead of after River's hour-long stuck-job rescue. On PostgreSQL, where many
// workers share the database (SharedByWorkers), it returns 0 and does nothing.
func (db *DB) ClaimWorker(ctx context.Context) (int, error) {
	if db.dialect != SQLite {
		return 0, nil
	}
	if db.workerLock == nil {
		lock, err := lockFile(db.path + "-worker.lock")
		if err != nil {
			return 0, err
		}
		db.workerLock = lock
	}
	res, err := db.write.ExecContext(ctx,
		`UPDATE river_job SET state = 'available' WHERE state = 'running'`)
	if err != nil {
		return 0, fmt.Errorf("store: requeue running jobs: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// ErrAnotherWorker is returned by ClaimWorker when another process works the
// SQLite database already.
var ErrAnotherWorker = errors.New("store: another diffute process is already working this SQLite database; run one serve per data directory (diffute keys and webhooks may run beside it), or use PostgreSQL to run several workers")
