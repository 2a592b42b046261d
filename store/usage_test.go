package store

import (
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/storetest"
)

// TestRecordImageMetersInItsTransaction is the regression test of an image
// recorded just before a crash never being metered (image and usage were two
// transactions): recording an image meters it, on the job and on the project's
// day, and recording it again (a retried worker) meters nothing more.
func (ds suite) TestRecordImageMetersInItsTransaction(t *testing.T) {
	ctx := t.Context()
	db := ds.open(t)
	s := db.Store()
	job := storetest.NewJob("acme", "p")
	if err := s.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.StartJob(ctx, job.ID); !ok || err != nil {
		t.Fatalf("StartJob = %v, %v", ok, err)
	}
	u := diffute.Usage{Images: 1, PixelSteps: 64 * 64 * 2, EngineTime: 250 * time.Millisecond}
	for range 2 {
		if err := s.RecordImage(ctx, job.ID, 0, 0, "acme/p/x/Ansel_Adams/0.png", u); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Job(ctx, "acme", "p", job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Usage.Images != 1 || got.Usage.PixelSteps != u.PixelSteps || got.Usage.EngineTime != u.EngineTime {
		t.Errorf("job usage = %+v, want one image's", got.Usage)
	}
	now := time.Now().UTC()
	days, err := s.Usage(ctx, "acme", "p", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil || len(days) != 1 || days[0].Images != 1 {
		t.Errorf("project usage = %+v, %v; want 1 image today", days, err)
	}
}

// TestCancelledJobBilledAndCountedForWhatItMade is the regression test of a
// cancelled running job whose finished images stayed reachable but were neither
// billed nor counted toward the daily image quota: a cancelled (or failed) job
// counts the images it made, not those it asked for.
func (ds suite) TestCancelledJobBilledAndCountedForWhatItMade(t *testing.T) {
	ctx := t.Context()
	s := ds.open(t).Store()
	q := diffute.Submission{Quota: diffute.Quota{MaxImagesPerDay: 8}} // NewJob asks for 6
	job := storetest.NewJob("acme", "p")
	if _, _, err := s.SubmitJob(ctx, job, q); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.StartJob(ctx, job.ID); !ok || err != nil {
		t.Fatalf("StartJob = %v, %v", ok, err)
	}
	for i := range 3 {
		if err := s.RecordImage(ctx, job.ID, 0, i, "k", diffute.Usage{Images: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CancelJob(ctx, "acme", "p", job.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.Job(ctx, "acme", "p", job.ID)
	if err != nil || got.Usage.Images != 3 || got.Prompts[0].ImagesDone != 3 {
		t.Fatalf("cancelled job: usage %+v, images done %d, %v; want 3 billed and kept", got.Usage, got.Prompts[0].ImagesDone, err)
	}
	// 3 made + 6 asked > 8: refused. Before, the cancelled job counted 0.
	_, _, err = s.SubmitJob(ctx, storetest.NewJob("acme", "p"), q)
	if diffute.ErrorCode(err) != diffute.ERATELIMIT {
		t.Fatalf("a 6-image job after 3 made of a cancelled one, quota 8: %v, want ERATELIMIT", err)
	}
	// 3 made + 6 asked ≤ 9: accepted; the 3 images the cancelled job never
	// made are not held against the project.
	q.Quota.MaxImagesPerDay = 9
	if _, _, err := s.SubmitJob(ctx, storetest.NewJob("acme", "p"), q); err != nil {
		t.Fatalf("quota 9: %v", err)
	}
}
