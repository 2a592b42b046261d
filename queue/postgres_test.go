package queue

import (
	"context"
	"encoding/json"
	"image"
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/pgtest"
	"github.com/diffute/diffute/storetest"
)

// TestPostgresJobSucceedsThroughNotify runs a job on PostgreSQL with a poll
// interval far longer than the test's deadline: the worker can only have picked
// the job up through LISTEN/NOTIFY.
func TestPostgresJobSucceedsThroughNotify(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{databaseURL: pgtest.URL(t), poll: 10 * time.Minute})
	job := b.newJob(t)
	var m diffute.Manifest
	if err := json.Unmarshal(b.waitHook(t).body, &m); err != nil {
		t.Fatal(err)
	}
	if m.JobID != job.ID || m.Status != diffute.StatusSucceeded || len(m.Images["Ansel_Adams"]) != 3 {
		t.Errorf("manifest = %+v", m)
	}
	waitFor(t, "delivery recorded", 10*time.Second, func() bool {
		s, n := b.deliveryStatus(t, job.ID)
		return s == diffute.DeliveryDelivered && n == 1
	})
}

// TestPostgresOrphanedJobIsRescued leaves a job running under a River client
// that holds no lease, as a SIGKILLed worker does, and expects a live worker to
// take it back and finish it, each image once.
func TestPostgresOrphanedJobIsRescued(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	b := setup(t, setupOpts{databaseURL: url, noStart: true, leaseTTL: 400 * time.Millisecond})
	job := b.newJob(t)
	// A dead worker: it fetched the job (state running, its ID in attempted_by),
	// started it and stored the first image of the first prompt, then vanished.
	if ok, err := b.store.StartJob(t.Context(), job.ID); err != nil || !ok {
		t.Fatalf("StartJob = %v, %v", ok, err)
	}
	key := diffute.MediaKey("org", "proj", job.ID, job.Prompts[0].Name, 0, "png")
	if err := b.store.RecordImage(t.Context(), job.ID, 0, 0, key, diffute.Usage{Images: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.db.MarkRunningForTest(t.Context(), job.ID, "dead-worker"); err != nil {
		t.Fatal(err)
	}
	b.start(t)
	var m diffute.Manifest
	if err := json.Unmarshal(b.waitHook(t).body, &m); err != nil {
		t.Fatal(err)
	}
	if m.JobID != job.ID || m.Status != diffute.StatusSucceeded {
		t.Fatalf("manifest = %+v", m)
	}
	for _, p := range job.Prompts {
		if got := len(m.Images[p.Name]); got != p.NumImages {
			t.Errorf("%s: %d images in the manifest, want %d", p.Name, got, p.NumImages)
		}
	}
	// The first image was already stored: the rescuer generates the other two.
	if calls := b.engine.Calls(); len(calls) == 0 || calls[0].NumImages != job.Prompts[0].NumImages-1 {
		t.Errorf("engine calls = %+v; want the first prompt resumed after its stored image", calls)
	}
}

// TestPostgresStopHandsRunningJobBack stops a worker whose job outlives the
// shutdown deadline: the job goes back to the queue at once and another worker,
// on the same database, finishes it from where it stopped.
func TestPostgresStopHandsRunningJobBack(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	a := setup(t, setupOpts{databaseURL: url})
	blocked := make(chan struct{})
	a.engine.GenerateFunc = func(ctx context.Context, req diffute.GenerateRequest, p func(diffute.Progress)) ([]image.Image, error) {
		if req.Prompt == "jungle, painting" {
			close(blocked)
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return fakeImages(ctx, req, p)
	}
	job := a.newJob(t)
	select {
	case <-blocked:
	case <-time.After(20 * time.Second):
		t.Fatal("job did not reach prompt 1")
	}
	b := setup(t, setupOpts{databaseURL: url, noStart: true})
	b.queue.cfg.Media = a.media // one shared media store, as S3 is
	b.start(t)
	expired, cancel := context.WithCancel(t.Context())
	cancel()
	if err := a.queue.Stop(expired); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	var m diffute.Manifest
	if err := json.Unmarshal(a.waitHook(t).body, &m); err != nil {
		t.Fatal(err)
	}
	if m.JobID != job.ID || m.Status != diffute.StatusSucceeded || len(m.Images["Ansel_Adams"]) != 3 ||
		len(m.Images["Henri_Rousseau"]) != 2 || len(m.Images["Rachel_Ruysch"]) != 1 {
		t.Fatalf("manifest = %+v", m)
	}
	if calls := b.engine.Calls(); len(calls) != 2 || calls[0].Prompt != "jungle, painting" {
		t.Errorf("second worker's engine calls = %+v; want prompts 1 and 2 only", calls)
	}
}

// TestPostgresWorkerTakesOnlyItsModels routes jobs by model: a worker serving
// tiny-sd never receives a job for another model, which waits for a worker that
// serves it.
func TestPostgresWorkerTakesOnlyItsModels(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	a := setup(t, setupOpts{databaseURL: url}) // serves tiny-sd
	other := storetest.NewJob("org", "proj")
	other.Model = "acme/other-model"
	other.Webhook = a.recv.URL + "/hook"
	if err := a.store.CreateJob(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	mine := a.newJob(t)
	var m diffute.Manifest
	if err := json.Unmarshal(a.waitHook(t).body, &m); err != nil || m.JobID != mine.ID {
		t.Fatalf("first webhook is for job %d (%v), want the tiny-sd job %d", m.JobID, err, mine.ID)
	}
	for _, c := range a.engine.Calls() {
		if c.Model != "tiny-sd" {
			t.Fatalf("the tiny-sd worker ran a %s job", c.Model)
		}
	}
	if got, err := a.store.JobByID(t.Context(), other.ID); err != nil || got.Status != diffute.StatusQueued {
		t.Fatalf("other model's job = %v, %v; want still queued", got, err)
	}

	setup(t, setupOpts{databaseURL: url, models: []string{"acme/other-model"}})
	if err := json.Unmarshal(a.waitHook(t).body, &m); err != nil || m.JobID != other.ID || m.Status != diffute.StatusSucceeded {
		t.Fatalf("second webhook = %+v (%v), want job %d succeeded", m, err, other.ID)
	}
}
