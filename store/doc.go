// Package store is Diffute's SQL store: jobs, prompts, images, API keys and
// webhook deliveries, with River's queue tables beside them, on SQLite (the
// embedded default, one file) or PostgreSQL (scale-out: many API nodes and
// workers share one database). Open(ctx, url, Options{…}) opens either; the URL
// chooses, and everything the store needs (the secret box, how webhook
// manifests are shaped, delivery attempts) is given there, once.
//
// One store, two dialects. The store is written once against database/sql, in the
// SQL both databases share (ON CONFLICT, RETURNING, coalesce, CASE) with ?
// placeholders; the Dialect seam (dialect.go) rewrites placeholders for
// PostgreSQL and picks the migration folder (migrations/sqlite/ or
// migrations/postgres/, twins with the same numbers). What only one database
// does lives in its own file: sqlite.go (the file, its two pools, pragmas) and
// postgres.go (the pgx pool, schema, migration lock). Every test body is written
// once and run on both (suite_test.go; package storetest for the interfaces).
//
// Why database/sql on PostgreSQL too, and not riverpgxv5: the store and River must
// share one transaction type, so that a job row and its River job are written in
// one transaction (River's InsertTx). River's database/sql driver gives that
// (*sql.Tx over pgx's stdlib adapter, one pgx pool underneath), and since River
// 0.51 riverdatabasesql.NewWithPgxListener lets the same client LISTEN on a
// connection hijacked from that pgx pool. Inserts send pg_notify inside the
// transaction; workers wake on commit instead of polling. A second, pgx-typed
// River client just for working would give the same pick-up but two clients, two
// transaction types and twice River's maintenance services per process.
//
// SQLite allows one writer at a time. The database is opened as two pools on the
// same file: a single-connection pool that River and every write use (River's
// SQLite driver asks for one connection, and one writer means no SQLITE_BUSY from
// lock upgrades), and a small read-only pool so that status reads in WAL mode never
// queue behind a write. On PostgreSQL both are the one pgx-backed pool. Migrations
// of our own tables (embedded .sql files recorded in schema_migrations) and
// River's (rivermigrate) run at Open; on PostgreSQL under an advisory lock, since
// several nodes may start at once.
//
// Submissions go through a group commit (batch.go) on both: concurrent jobs share
// one transaction, each job's idempotency claim and quota check in a savepoint.
// SQLite's one writer serialises quota checks by itself; on PostgreSQL, where
// several API nodes write at once, each batch first takes a transaction-scoped
// advisory lock per project with a quota, in sorted order, so two nodes cannot
// both count a project's last free slot. Behaviour that SQLite gets from a
// trigger (a delivery's state following its latest attempt, migration 0004) is a
// plpgsql trigger function in the PostgreSQL twin.
//
// Jobs left running by a dead process: on SQLite one process works the file
// (ClaimWorker holds a lock beside it and refuses a second), so a job still
// running at start was interrupted and is requeued at once. On PostgreSQL each
// working River client holds a lease that it renews every few seconds
// (postgres_lease.go); a running job whose client's lease has expired is made available
// again by any live worker, within seconds rather than River's hour-long rescue.
package store
