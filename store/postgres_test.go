package store

import (
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/pgtest"
	"github.com/diffute/diffute/storetest"
)

// TestMigrationsHaveBothDialects keeps the two migration folders in step: a new
// SQLite migration without its PostgreSQL twin would leave scale-out deployments
// without the table the new code reads.
func TestMigrationsHaveBothDialects(t *testing.T) {
	t.Parallel()
	names := map[Dialect]map[string]bool{}
	for d, dir := range migrationDirs {
		migs, err := ownMigrations(dir)
		if err != nil {
			t.Fatal(err)
		}
		names[d] = map[string]bool{}
		for _, m := range migs {
			num, _, _ := strings.Cut(m.name, "_")
			names[d][num] = true
		}
	}
	for num := range names[SQLite] {
		if !names[Postgres][num] {
			t.Errorf("migrations/sqlite/%s_*.sql has no twin in migrations/postgres/", num)
		}
	}
	for num := range names[Postgres] {
		if !names[SQLite][num] {
			t.Errorf("migrations/postgres/%s_*.sql has no twin in migrations/sqlite/", num)
		}
	}
	if _, err := fs.ReadDir(migrationFS, "migrations/postgres"); err != nil {
		t.Fatal(err)
	}
}

// TestQuotaAcrossNodesPostgres submits at once through several DB handles on one
// PostgreSQL schema, as several API nodes would: their transactions run in
// parallel, so without the per-project advisory lock two of them could both count
// the project's last free slot. Exactly MaxActiveJobs submissions must pass.
func TestQuotaAcrossNodesPostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := pgtest.URL(t)
	const nodes, perNode, limit = 4, 12, 5
	var dbs []*DB
	for range nodes {
		db, err := Open(ctx, url, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
	}
	sub := diffute.Submission{Quota: diffute.Quota{MaxActiveJobs: limit}}
	var (
		wg       sync.WaitGroup
		accepted atomic.Int32
		refused  atomic.Int32
	)
	start := make(chan struct{})
	for _, db := range dbs {
		for range perNode {
			wg.Go(func() {
				<-start
				_, _, err := db.Store().SubmitJob(ctx, storetest.NewJob("acme", "p"), sub)
				switch {
				case err == nil:
					accepted.Add(1)
				case diffute.ErrorCode(err) == diffute.ERATELIMIT:
					refused.Add(1)
				default:
					t.Errorf("SubmitJob: %v", err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if accepted.Load() != limit || refused.Load() != nodes*perNode-limit {
		t.Fatalf("accepted %d, refused %d of %d; want exactly %d accepted", accepted.Load(), refused.Load(), nodes*perNode, limit)
	}
	var active int
	if err := dbs[0].read.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE org = 'acme' AND project = 'p'`).Scan(&active); err != nil || active != limit {
		t.Fatalf("stored jobs = %d, %v; want %d", active, err, limit)
	}
}

// TestIdempotencyAcrossNodesPostgres sends one Idempotency-Key through several
// DB handles at once, as retries landing on different API nodes would: exactly
// one job is made, and every answer names it.
func TestIdempotencyAcrossNodesPostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := pgtest.URL(t)
	const nodes, perNode = 4, 10
	var dbs []*DB
	for range nodes {
		db, err := Open(ctx, url, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
	}
	sub := diffute.Submission{IdempotencyKey: "retry-me", RequestHash: []byte("hash-1")}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		ids = map[int64]int{}
	)
	start := make(chan struct{})
	for _, db := range dbs {
		for range perNode {
			wg.Go(func() {
				<-start
				id, _, err := db.Store().SubmitJob(ctx, storetest.NewJob("acme", "p"), sub)
				if err != nil {
					t.Errorf("SubmitJob: %v", err)
					return
				}
				mu.Lock()
				ids[id]++
				mu.Unlock()
			})
		}
	}
	close(start)
	wg.Wait()
	var stored int
	if err := dbs[0].read.QueryRowContext(ctx, `SELECT count(*) FROM jobs`).Scan(&stored); err != nil || stored != 1 || len(ids) != 1 {
		t.Fatalf("stored jobs = %d (%v), answers named %v; want one job named by all", stored, err, ids)
	}
}
