package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"go.uber.org/goleak"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// riverState returns the River state of the inference job of Diffute job id.
func (db *DB) riverState(ctx context.Context, id int64) (string, error) {
	var state string
	err := db.write.QueryRowContext(ctx, `SELECT r.state FROM river_job r JOIN jobs j ON j.river_job_id = r.id
		WHERE j.id = ?`, id).Scan(&state)
	return state, err
}

func (ds suite) TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *storetest.Harness {
		db := ds.open(t)
		return &storetest.Harness{
			Store: db.Store(), Keys: db.Store(),
			StartJob:   db.Store().StartJob,
			QueueState: db.riverState,
		}
	})
}

func TestOpenMigratesOnceAndSetsPragmas(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "d.db")
	migs, err := ownMigrations(migrationDirs[SQLite])
	if err != nil || len(migs) < 3 {
		t.Fatalf("ownMigrations = %d, %v", len(migs), err)
	}
	for i := range 2 {
		db, err := Open(ctx, "sqlite:"+path, testOptions())
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		var n int
		migs, _ := ownMigrations(migrationDirs[SQLite])
		if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(migs) || n == 0 {
			t.Errorf("Open #%d: %d migrations recorded (%v), want %d", i+1, n, err, len(migs))
		}
		var mode string
		var fk, busy int
		if err := db.write.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode = %q, %v", mode, err)
		}
		for _, pool := range []*sql.DB{db.read.DB, db.write.DB} {
			if err := pool.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
				t.Errorf("foreign_keys = %d, %v", fk, err)
			}
			if err := pool.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil || busy != 5000 {
				t.Errorf("busy_timeout = %d, %v", busy, err)
			}
		}
		if _, err := db.read.ExecContext(ctx, `DELETE FROM jobs`); err == nil {
			t.Error("the read pool accepted a write")
		}
		var riverTables int
		if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'river_job'`).Scan(&riverTables); err != nil || riverTables != 1 {
			t.Errorf("river_job table missing: %d, %v", riverTables, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(ctx, "sqlite::memory:", testOptions()); err == nil {
		t.Error("Open(:memory:) succeeded; two pools need a file")
	}
}

func (ds suite) TestWorkerPathWritesImagesAndDelivery(t *testing.T) {
	ctx := t.Context()
	db := ds.openWith(t, func(o *Options) { o.DeliveryMaxAttempts = 3; o.Manifests.Media = keyMedia{} })
	s := db.Store()
	job := storetest.NewJob("org", "proj")
	if err := s.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.StartJob(ctx, job.ID); !ok || err != nil {
		t.Fatalf("StartJob = %v, %v", ok, err)
	}
	if ok, err := s.RecordProgress(ctx, job.ID, 0, 1, 2); !ok || err != nil {
		t.Fatalf("RecordProgress = %v, %v", ok, err)
	}
	recipe := diffute.Recipe{Model: "m", ModelSource: "hf:org/m@abc", RNG: "torch", Seeds: []int64{7, 8},
		Scheduler: "euler", TimestepSpacing: "leading", Steps: 30, GuidanceScale: 5, Width: 64, Height: 64}
	for range 2 { // a retried attempt records it again
		if err := s.RecordRecipe(ctx, job.ID, 0, recipe); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordRecipe(ctx, job.ID, 99, recipe); err == nil {
		t.Error("RecordRecipe of a prompt the job lacks succeeded")
	}
	for range 2 { // a retry records the same image again
		if err := s.RecordImage(ctx, job.ID, 0, 0, "k/0/0.png", diffute.Usage{Images: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordImage(ctx, job.ID, 0, 1, "k/0/1.png", diffute.Usage{Images: 1}); err != nil {
		t.Fatal(err)
	}
	got, err := s.JobByID(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Prompts[0]; p.ImagesDone != 2 || len(p.Images) != 2 || p.Images[1] != "k/0/1.png" {
		t.Errorf("prompt 0 after RecordImage: done %d images %v", p.ImagesDone, p.Images)
	}
	if r := got.Prompts[0].Recipe; r == nil || r.ModelSource != "hf:org/m@abc" || len(r.Seeds) != 2 || r.Seeds[1] != 8 || r.TimestepSpacing != "leading" {
		t.Errorf("prompt 0's recipe = %+v, want the one recorded", r)
	}
	if len(got.Prompts) > 1 && got.Prompts[1].Recipe != nil {
		t.Errorf("prompt 1 has a recipe before it ran: %+v", got.Prompts[1].Recipe)
	}
	if m, err := (diffute.Manifests{}).For(ctx, got, "", ""); err != nil || m.Recipes[got.Prompts[0].Name] == nil || len(m.Recipes) != 1 {
		t.Errorf("manifest recipes = %v, %v; want prompt 0's only", m.Recipes, err)
	}
	var steps, total int
	if err := db.read.QueryRowContext(ctx, `SELECT steps_done, steps_total FROM prompts WHERE job_id = ? AND idx = 0`, job.ID).
		Scan(&steps, &total); err != nil || steps != 1 || total != 2 {
		t.Errorf("progress = %d/%d, %v", steps, total, err)
	}

	fin, err := s.FinishJob(ctx, FinishParams{JobID: job.ID, Status: diffute.StatusFailed, Error: "engine exploded"})
	if err != nil {
		t.Fatalf("FinishJob: %v", err)
	}
	if fin.Status != diffute.StatusFailed || fin.FinishedAt.IsZero() {
		t.Errorf("FinishJob = %+v", fin)
	}
	if _, err := s.RecordProgress(ctx, job.ID, 0, 2, 2); err != nil {
		t.Fatal(err)
	} else if ok, _ := s.RecordProgress(ctx, job.ID, 0, 2, 2); ok {
		t.Error("RecordProgress on a finished job reported it running")
	}

	var deliveryID int64
	var riverState string
	var maxAttempts int
	if err := db.read.QueryRowContext(ctx, `SELECT id FROM deliveries WHERE job_id = ?`, job.ID).Scan(&deliveryID); err != nil {
		t.Fatalf("delivery row: %v", err)
	}
	// This job has the only delivery, so its River job is the only one of its
	// kind (matching on args would need JSON functions, which differ between
	// SQLite and PostgreSQL).
	var n int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM deliveries`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("deliveries = %d, %v; want 1", n, err)
	}
	if err := db.read.QueryRowContext(ctx, `SELECT state, max_attempts FROM river_job WHERE kind = ?`,
		diffute.DeliveryArgs{}.Kind()).Scan(&riverState, &maxAttempts); err != nil || riverState != "available" || maxAttempts != 3 {
		t.Errorf("delivery River job = %q max %d, %v", riverState, maxAttempts, err)
	}
	d, err := s.Delivery(ctx, deliveryID)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(d.Payload, &m); err != nil {
		t.Fatal(err)
	}
	if d.URL != job.Webhook || d.Secret != job.Secret || d.Status != diffute.DeliveryPending || len(d.MessageID) != 30 ||
		m["status"] != "failed" || m["error"] != "engine exploded" || m["job_id"] != float64(job.ID) || m["name"] != "Houston" {
		t.Errorf("delivery = %+v payload %s", d, d.Payload)
	}

	at := time.Now().UTC().Truncate(time.Millisecond)
	if err := s.RecordDeliveryAttempt(ctx, AttemptRecord{DeliveryID: deliveryID, Attempt: 1, At: at, StatusCode: 500,
		Latency: 12 * time.Millisecond, Error: "HTTP 500", Excerpt: "oops", Status: diffute.DeliveryPending}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDeliveryAttempt(ctx, AttemptRecord{DeliveryID: deliveryID, Attempt: 2, At: at.Add(time.Second),
		StatusCode: 204, Latency: 3 * time.Millisecond, Status: diffute.DeliveryDelivered}); err != nil {
		t.Fatal(err)
	}
	attempts, err := s.Deliveries(ctx, job.Org, job.Project, job.ID)
	if err != nil || len(attempts) != 2 {
		t.Fatalf("Deliveries = %v, %v", attempts, err)
	}
	if a := attempts[0]; a.Attempt != 1 || a.StatusCode != 500 || a.Excerpt != "oops" || a.Latency != 12*time.Millisecond ||
		!a.At.Equal(at) || a.MessageID != d.MessageID || a.Event != EventInferenceCompleted {
		t.Errorf("attempt 1 = %+v", a)
	}
	if d, _ := s.Delivery(ctx, deliveryID); d.Status != diffute.DeliveryDelivered || d.Attempts != 2 {
		t.Errorf("delivery after attempts: %+v", d)
	}
	wantCode(t, s.RecordDeliveryAttempt(ctx, AttemptRecord{DeliveryID: 999, Attempt: 1, At: at, Status: diffute.DeliveryFailed}), diffute.ENOTFOUND)
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := diffute.ErrorCode(err); got != code {
		t.Errorf("error = %v (code %q), want code %q", err, got, code)
	}
}

func (ds suite) TestFinishJobAfterCancelConflicts(t *testing.T) {
	ctx := t.Context()
	db := ds.open(t)
	s := db.Store()
	job := storetest.NewJob("org", "proj")
	if err := s.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartJob(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelJob(ctx, "org", "proj", job.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.FinishJob(ctx, FinishParams{JobID: job.ID, Status: diffute.StatusSucceeded})
	wantCode(t, err, diffute.ECONFLICT)
	if ok, err := s.RecordProgress(ctx, job.ID, 0, 1, 2); ok || err != nil {
		t.Errorf("RecordProgress after cancel = %v, %v; want false", ok, err)
	}
	// One message: the cancellation's terminal message, none from the finish.
	var (
		n       int
		payload string
	)
	if err := db.read.QueryRowContext(ctx, `SELECT count(*), max(payload) FROM deliveries`).Scan(&n, &payload); err != nil || n != 1 {
		t.Errorf("%d deliveries after a cancel and a conflicting finish (%v), want 1", n, err)
	}
	var m diffute.Manifest
	if err := json.Unmarshal([]byte(payload), &m); err != nil || m.Status != diffute.StatusCanceled || m.JobID != job.ID {
		t.Errorf("terminal message %s (%v)", payload, err)
	}
}

func TestClaimWorkerRequeuesRunningJobs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openSQLiteTest(t)
	job := storetest.NewJob("org", "proj")
	if err := db.Store().CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	// Simulate a process that crashed while working the job.
	if _, err := db.write.ExecContext(ctx, `UPDATE river_job SET state = 'running', attempt = 1`); err != nil {
		t.Fatal(err)
	}
	n, err := db.ClaimWorker(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ClaimWorker = %d, %v; want 1", n, err)
	}
	if state, err := db.riverState(ctx, job.ID); err != nil || state != "available" {
		t.Errorf("state = %q, %v", state, err)
	}
}

// TestClaimWorkerRefusesASecondProcess is the regression test of two processes
// started on one SQLite data directory both running the same job: each
// requeued the other's running job at start. The second claim is refused while
// the first holds it, and succeeds once the first is closed (or dies: the lock
// is the kernel's).
func TestClaimWorkerRefusesASecondProcess(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := suites["SQLite"].url(t)
	first := openURL(t, url, testOptions())
	second := openURL(t, url, testOptions())
	if _, err := first.ClaimWorker(ctx); err != nil {
		t.Fatal(err)
	}
	job := storetest.NewJob("org", "proj")
	if err := first.Store().CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if ok, err := first.Store().StartJob(ctx, job.ID); !ok || err != nil {
		t.Fatalf("StartJob = %v, %v", ok, err)
	}
	if _, err := first.write.ExecContext(ctx, `UPDATE river_job SET state = 'running', attempt = 1`); err != nil {
		t.Fatal(err)
	}
	if n, err := second.ClaimWorker(ctx); !errors.Is(err, ErrAnotherWorker) {
		t.Fatalf("second ClaimWorker = %d, %v; want ErrAnotherWorker", n, err)
	}
	if state, err := second.riverState(ctx, job.ID); err != nil || state != "running" {
		t.Errorf("the first process's running job is %q (%v) after the refused claim; want running", state, err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := second.ClaimWorker(ctx); err != nil || n != 1 {
		t.Errorf("ClaimWorker after the first closed = %d, %v; want its job back", n, err)
	}
	// API-only and CLI processes need no claim: they still open the file.
	openURL(t, url, Options{Inference: testInference})
}

// BenchmarkCreateJob measures accepted jobs per second through Store.CreateJob for a
// three-prompt request (the product page's example), to compare with
// BenchmarkRiverInsert on the same kind of database.
func BenchmarkCreateJob(b *testing.B) {
	db := openSQLiteTest(b)
	s := db.Store()
	ctx := context.Background()
	tmpl := storetest.NewJob("org", "proj")
	b.ResetTimer()
	for b.Loop() {
		job := *tmpl
		job.ID = diffute.NewJobID()
		if err := s.CreateJob(ctx, &job); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

type trivialArgs struct{}

func (trivialArgs) Kind() string { return "bench.trivial" }

// BenchmarkRiverInsert is the raw rate: one River InsertTx of a trivial job per
// transaction on the same kind of database.
func BenchmarkRiverInsert(b *testing.B) {
	db := openSQLiteTest(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		tx, err := db.write.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.river.InsertTx(ctx, tx.Tx, trivialArgs{}, &river.InsertOpts{}); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
