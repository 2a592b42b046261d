package store

import (
	"context"
	"sync"
	"testing"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/storetest"
)

// TestCreateJobConcurrentBatches sends many CreateJob calls at once: they share
// transactions, yet each job has its prompts and its River job, and a job that
// cannot be stored (a repeated ID) fails alone without taking its batch with it.
func (ds suite) TestCreateJobConcurrentBatches(t *testing.T) {
	db := ds.open(t)
	s := db.Store()
	ctx := context.Background()
	dup := storetest.NewJob("org", "proj")
	if err := s.CreateJob(ctx, dup); err != nil {
		t.Fatal(err)
	}
	const n = 60
	jobs := make([]*diffute.Job, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		jobs[i] = storetest.NewJob("org", "proj")
		if i%10 == 3 {
			jobs[i].ID = dup.ID // already stored: must fail alone
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.CreateJob(ctx, jobs[i])
		}()
	}
	wg.Wait()
	for i, job := range jobs {
		if i%10 == 3 {
			if errs[i] == nil {
				t.Errorf("job %d reused an ID and was accepted", i)
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("job %d: %v", i, errs[i])
		}
		got, err := s.Job(ctx, "org", "proj", job.ID)
		if err != nil || len(got.Prompts) != len(job.Prompts) {
			t.Fatalf("job %d read back: %v %+v", i, err, got)
		}
		var state string
		if err := db.read.QueryRowContext(ctx, `SELECT r.state FROM jobs j JOIN river_job r ON r.id = j.river_job_id WHERE j.id = ?`, job.ID).Scan(&state); err != nil || state != "available" {
			t.Fatalf("job %d River state %q: %v", i, state, err)
		}
	}
	var riverJobs int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM river_job`).Scan(&riverJobs); err != nil || riverJobs != 1+n-n/10 {
		t.Fatalf("%d River jobs (%v), want %d: a failed batch left its jobs behind", riverJobs, err, 1+n-n/10)
	}
}
