package store

import (
	"container/list"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"reflect"

	"modernc.org/sqlite"
)

// SQLite compiles every statement it runs, and database/sql hands the driver
// the SQL text each time: River's fetch alone is a long CTE, and compiling the
// service's statements took about a quarter of the CPU of a job on the tiny
// model (BenchmarkPutToWebhook's profile). A cachingConn keeps, per connection,
// the statements it compiled, by their text, and runs the same text again on
// the compiled statement.
//
// A statement compiled once runs with new arguments as often as asked, but not
// twice at once: while the rows of one run are open, a second run of the same
// text (a query inside a loop over another's rows) compiles a statement of its
// own, used once.

// stmtCacheSize bounds the statements one connection keeps; the service and
// River run fewer distinct statements than this.
const stmtCacheSize = 256

// openCached is sql.Open("sqlite", dsn) with each connection's statements cached.
func openCached(dsn string) *sql.DB {
	return sql.OpenDB(cachingConnector{dsn: dsn, drv: &sqlite.Driver{}})
}

type cachingConnector struct {
	dsn string
	drv *sqlite.Driver
}

func (c cachingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return newCachingConn(conn)
}

func (c cachingConnector) Driver() driver.Driver { return c.drv }

// sqliteConn is what a cachingConn needs of the driver's connection.
type sqliteConn interface {
	driver.Conn
	driver.ConnPrepareContext
	driver.ConnBeginTx
	driver.ExecerContext
	driver.QueryerContext
	driver.SessionResetter
	driver.Validator
	driver.Pinger
}

type cachingConn struct {
	sqliteConn
	stmts map[string]*list.Element // of *cachedStmt, most recently used first
	lru   list.List
}

type cachedStmt struct {
	query string
	stmt  interface {
		driver.Stmt
		driver.StmtExecContext
		driver.StmtQueryContext
	}
	busy bool // its rows are open
}

func newCachingConn(c driver.Conn) (driver.Conn, error) {
	sc, ok := c.(sqliteConn)
	if !ok {
		c.Close()
		return nil, errors.New("store: the sqlite driver's connection lacks a method the statement cache needs")
	}
	return &cachingConn{sqliteConn: sc, stmts: map[string]*list.Element{}}, nil
}

// stmt returns the cached statement for query, compiling it if needed; oneOff
// says the caller must close it after use (the cached one is busy, or the
// driver's statement lacks the context methods).
func (c *cachingConn) stmt(ctx context.Context, query string) (st *cachedStmt, oneOff bool, err error) {
	if el, ok := c.stmts[query]; ok {
		st = el.Value.(*cachedStmt)
		if !st.busy {
			c.lru.MoveToFront(el)
			return st, false, nil
		}
	}
	ds, err := c.PrepareContext(ctx, query)
	if err != nil {
		return nil, false, err
	}
	s, ok := ds.(interface {
		driver.Stmt
		driver.StmtExecContext
		driver.StmtQueryContext
	})
	if !ok {
		ds.Close()
		return nil, false, errors.New("store: the sqlite driver's statement lacks the context methods")
	}
	fresh := &cachedStmt{query: query, stmt: s}
	if st != nil { // the cached one is busy
		return fresh, true, nil
	}
	c.stmts[query] = c.lru.PushFront(fresh)
	if c.lru.Len() > stmtCacheSize {
		old := c.lru.Back()
		c.lru.Remove(old)
		evicted := old.Value.(*cachedStmt)
		delete(c.stmts, evicted.query)
		if !evicted.busy {
			evicted.stmt.Close()
		} else {
			evicted.busy = false // closed when its rows close (see cachedRows.Close)
			evicted.query = ""
		}
	}
	return fresh, false, nil
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	st, oneOff, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	res, err := st.stmt.ExecContext(ctx, args)
	if oneOff {
		st.stmt.Close()
	}
	return res, err
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	st, oneOff, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := st.stmt.QueryContext(ctx, args)
	if err != nil {
		if oneOff {
			st.stmt.Close()
		}
		return nil, err
	}
	st.busy = !oneOff
	return &cachedRows{Rows: rows, st: st, oneOff: oneOff}, nil
}

// Close closes the cached statements, then the connection.
func (c *cachingConn) Close() error {
	var errs []error
	for el := c.lru.Front(); el != nil; el = el.Next() {
		if st := el.Value.(*cachedStmt); !st.busy {
			errs = append(errs, st.stmt.Close())
		}
	}
	c.stmts, c.lru = nil, list.List{}
	errs = append(errs, c.sqliteConn.Close())
	return errors.Join(errs...)
}

// cachedRows frees its statement for the next run when closed (and closes a
// one-off statement, or one evicted while the rows were open).
type cachedRows struct {
	driver.Rows
	st     *cachedStmt
	oneOff bool
	closed bool
}

func (r *cachedRows) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.Rows.Close()
	switch {
	case r.oneOff || r.st.query == "": // one-off, or evicted meanwhile
		err = errors.Join(err, r.st.stmt.Close())
	default:
		r.st.busy = false
	}
	return err
}

// The column type methods database/sql asks for (ColumnTypes), passed on.

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

func (r *cachedRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *cachedRows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *cachedRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}
