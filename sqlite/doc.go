// Package sqlite is Diffute's embedded persistence: jobs, prompts, images, API keys
// and webhook deliveries in one SQLite file, with River's queue tables beside them.
//
// It uses modernc.org/sqlite (pure Go, no cgo) through database/sql and River's
// riversqlite driver. The store and River share one *sql.Tx type, so a job row and
// its River job are written in one transaction (River's InsertTx). That is also why
// the store is written against database/sql rather than River's job rows: the
// PostgreSQL twin planned for scale-out can keep these code paths by using River's
// database/sql driver, and both must pass the same suite (package storetest).
//
// SQLite allows one writer at a time. The database is opened as two pools on the
// same file: a single-connection pool that River and every write use (River's
// SQLite driver asks for one connection, and one writer means no SQLITE_BUSY from
// lock upgrades), and a small read-only pool so that status reads in WAL mode never
// queue behind a write. Migrations of our own tables (embedded .sql files recorded
// in schema_migrations) and River's (rivermigrate) run at Open.
package sqlite
