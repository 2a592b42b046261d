package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"testing"
)

// The statement cache runs a repeated statement on its compiled form, and never
// reuses one whose rows are still open: the same query inside a loop over its
// own rows, and past the cache's bound, returns what SQLite does without it.
func TestStatementCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openCached("file:" + filepath.Join(t.TempDir(), "c.db") + "?_pragma=journal_mode(WAL)")
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE n (v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := db.ExecContext(ctx, `INSERT INTO n (v) VALUES (?)`, i); err != nil {
			t.Fatal(err)
		}
	}
	const q = `SELECT v FROM n WHERE v >= ? ORDER BY v`
	// A transaction holds one connection for all its statements.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	scan := func(rows *sql.Rows, each func(int)) {
		t.Helper()
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			each(v)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := tx.QueryContext(ctx, q, 2)
	if err != nil {
		t.Fatal(err)
	}
	var outer, inner []int
	scan(rows, func(v int) {
		outer = append(outer, v)
		sub, err := tx.QueryContext(ctx, q, v) // the same text while its rows are open
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		scan(sub, func(int) { n++ })
		if err := sub.Err(); err != nil {
			t.Fatal(err)
		}
		inner = append(inner, n)
	})
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(outer) != 3 || outer[0] != 2 || outer[2] != 4 || len(inner) != 3 || inner[0] != 3 || inner[2] != 1 {
		t.Fatalf("outer %v inner %v, want [2 3 4] and [3 2 1]", outer, inner)
	}

	// Rows left open while more distinct statements run than the cache keeps:
	// their statement is evicted, and they still finish.
	open, err := tx.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !open.Next() {
		t.Fatal("no first row")
	}
	for i := range stmtCacheSize + 10 {
		var got int
		if err := tx.QueryRowContext(ctx, `SELECT `+strconv.Itoa(i)).Scan(&got); err != nil || got != i {
			t.Fatalf("SELECT %d: %d, %v", i, got, err)
		}
	}
	rest := 0
	scan(open, func(int) { rest++ })
	if err := open.Err(); err != nil {
		t.Fatal(err)
	}
	if rest != 4 {
		t.Fatalf("%d rows after the first, want 4", rest)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	// A statement run again is the one compiled the first time.
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cached := func() (n int, st *cachedStmt) {
		if err := conn.Raw(func(dc any) error {
			c := dc.(*cachingConn)
			n = c.lru.Len()
			if el, ok := c.stmts[q]; ok {
				st = el.Value.(*cachedStmt)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n, st
	}
	var first *cachedStmt
	for i := range 3 {
		var n int
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM n WHERE v >= ?`, i).Scan(&n); err != nil || n != 5-i {
			t.Fatalf("count from %d: %d, %v", i, n, err)
		}
		rows, err := conn.QueryContext(ctx, q, i)
		if err != nil {
			t.Fatal(err)
		}
		scan(rows, func(int) {})
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		size, st := cached()
		if st == nil || size > stmtCacheSize {
			t.Fatalf("run %d: statement cached %v, cache size %d", i, st != nil, size)
		}
		if first == nil {
			first = st
		} else if st != first {
			t.Errorf("run %d compiled the statement again", i)
		}
		if st.busy {
			t.Errorf("run %d: the statement is still busy after its rows closed", i)
		}
	}
}
