package queue

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/secretbox"
	"github.com/diffute/diffute/store"
	"github.com/diffute/diffute/storetest"
	"github.com/diffute/diffute/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hook is one webhook request a receiver got.
type hook struct {
	header http.Header
	body   []byte
}

type testBundle struct {
	dir    string
	db     *store.DB
	store  *store.Store
	queue  *Queue
	engine *fakeEngine
	media  *dirMedia
	hooks  chan hook
	recv   *httptest.Server
	status atomic.Int32 // the receiver's answer; 0 means 200
}

type setupOpts struct {
	dir      string // reuse a database directory
	schedule []time.Duration
	noStart  bool
	// databaseURL opens PostgreSQL at this URL (pgtest.URL) instead of SQLite
	// in dir; poll and leaseTTL then tune the queue (see postgres_test.go).
	databaseURL string
	poll        time.Duration
	leaseTTL    time.Duration
	models      []string // served models; default tiny-sd
	logger      *slog.Logger
	observer    Observer
}

func setup(t *testing.T, o setupOpts) *testBundle {
	t.Helper()
	b := &testBundle{dir: o.dir, engine: &fakeEngine{}, hooks: make(chan hook, 16)}
	if b.dir == "" {
		b.dir = t.TempDir()
	}
	b.recv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.hooks <- hook{r.Header.Clone(), body}
		if s := b.status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
	}))
	t.Cleanup(b.recv.Close)
	b.media = newDirMedia(filepath.Join(b.dir, "media"))
	var err error
	if o.databaseURL == "" {
		o.databaseURL = "sqlite:" + filepath.Join(b.dir, "diffute.db")
	}
	schedule := o.schedule
	if schedule == nil {
		schedule = []time.Duration{0, 10 * time.Millisecond, 10 * time.Millisecond}
	}
	whCfg := webhook.Config{AllowPrivate: true, Timeout: 5 * time.Second, RetrySchedule: schedule}
	b.db, err = store.Open(t.Context(), o.databaseURL, testOptions(b.media, whCfg))
	if err != nil {
		t.Fatal(err)
	}
	b.store = b.db.Store()
	if o.models == nil {
		o.models = []string{"tiny-sd"}
	}
	b.queue, err = New(b.db, Config{
		Engine: b.engine, Media: b.media, Concurrency: 2, Models: o.models,
		Webhook:      whCfg,
		PollInterval: cmp.Or(o.poll, 20*time.Millisecond),
		LeaseTTL:     o.leaseTTL,
		Logger:       o.logger,
		Observer:     o.observer,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.queue.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if err := b.db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if !o.noStart {
		b.start(t)
	}
	return b
}

// testOptions are the store options of a queue test: a secret box, manifests
// with media's URLs and the webhook configuration's attempts.
func testOptions(media diffute.MediaStore, wh webhook.Config) store.Options {
	box, err := secretbox.New(bytes.Repeat([]byte{3}, secretbox.KeySize))
	if err != nil {
		panic(err)
	}
	return store.Options{Secrets: box, Manifests: diffute.Manifests{Media: media}, Inference: Inference,
		DeliveryMaxAttempts: wh.WithDefaults().MaxAttempts()}
}

func (b *testBundle) start(t *testing.T) {
	t.Helper()
	if err := b.queue.Start(context.WithoutCancel(t.Context())); err != nil {
		t.Fatal(err)
	}
}

func (b *testBundle) newJob(t *testing.T) *diffute.Job {
	t.Helper()
	job := storetest.NewJob("org", "proj")
	job.Webhook = b.recv.URL + "/hook"
	if err := b.store.CreateJob(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	return job
}

func (b *testBundle) waitHook(t *testing.T) hook {
	t.Helper()
	select {
	case h := <-b.hooks:
		return h
	// A give-up bound, not a speed check: under the race detector on a loaded
	// two-core machine (SQLite is pure Go there, instrumented too) a job that
	// takes milliseconds can take tens of seconds.
	case <-time.After(90 * time.Second):
		t.Fatal("no webhook within 90s")
	}
	return hook{}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

func (b *testBundle) deliveryStatus(t *testing.T, jobID int64) (diffute.DeliveryState, int) {
	t.Helper()
	attempts, err := b.store.Deliveries(t.Context(), "org", "proj", jobID)
	if err != nil || len(attempts) == 0 {
		return "", 0
	}
	d, err := b.store.Delivery(t.Context(), attempts[0].DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	return d.Status, len(attempts)
}

func (ds suite) TestJobSucceedsAndWebhookArrives(t *testing.T) {
	b := ds.setup(t, setupOpts{})
	job := b.newJob(t)
	h := b.waitHook(t)

	var m diffute.Manifest
	if err := json.Unmarshal(h.body, &m); err != nil {
		t.Fatalf("payload %s: %v", h.body, err)
	}
	if m.JobID != job.ID || m.Name != "Houston" || m.Status != diffute.StatusSucceeded || m.Error != "" {
		t.Errorf("manifest = %+v", m)
	}
	for _, p := range job.Prompts {
		urls := m.Images[p.Name]
		if len(urls) != p.NumImages {
			t.Fatalf("%s: %d URLs, want %d", p.Name, len(urls), p.NumImages)
		}
		for i, u := range urls {
			key := diffute.MediaKey("org", "proj", job.ID, p.Name, i, "png")
			if !strings.HasPrefix(u, "https://media.test/"+key+"?ttl=") {
				t.Errorf("URL %q, want one for %s", u, key)
			}
			rc, _, err := b.media.Open(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			want := seedImage(*p.Seed+int64(i), p.Width, p.Height)
			if img.Bounds() != want.Bounds() || !sameColor(img, want) {
				t.Errorf("%s image %d is not the engine's image for seed %d", p.Name, i, *p.Seed+int64(i))
			}
		}
	}
	if got := h.header.Get("Authorization"); got != "Bearer s3cret" {
		t.Errorf("Authorization = %q", got)
	}
	if !strings.HasPrefix(h.header.Get("Webhook-Id"), "msg_") {
		t.Errorf("webhook-id = %q", h.header.Get("Webhook-Id"))
	}

	calls := b.engine.Calls()
	if len(calls) != 3 || calls[0].Prompt != "Yosemite, photography" || calls[0].Seed != 1 || calls[0].NumImages != 3 ||
		calls[0].Model != "tiny-sd" || calls[1].NegativePrompt == nil || *calls[1].NegativePrompt != "blurry" || calls[1].Scheduler != "euler" {
		t.Errorf("engine calls = %+v", calls)
	}
	// The queue carries the rng and tells an absent negative prompt from "".
	if len(calls) == 3 && (calls[1].RNG != diffute.RNGCUDA || calls[0].RNG != "" || calls[0].NegativePrompt != nil ||
		calls[2].NegativePrompt == nil || *calls[2].NegativePrompt != "") {
		t.Errorf("engine calls: rng %q/%q, negative prompts %v/%v, want cuda/\"\", nil and \"\"",
			calls[0].RNG, calls[1].RNG, calls[0].NegativePrompt, calls[2].NegativePrompt)
	}
	waitFor(t, "delivery recorded", 10*time.Second, func() bool {
		s, n := b.deliveryStatus(t, job.ID)
		return s == diffute.DeliveryDelivered && n == 1
	})
	got, err := b.store.Job(t.Context(), "org", "proj", job.ID)
	if err != nil || got.Status != diffute.StatusSucceeded || got.StartedAt.IsZero() || got.FinishedAt.IsZero() ||
		got.Prompts[0].ImagesDone != 3 {
		t.Errorf("job after success = %+v, %v", got, err)
	}
}

func sameColor(a, b image.Image) bool {
	r1, g1, b1, _ := a.At(1, 1).RGBA()
	r2, g2, b2, _ := b.At(1, 1).RGBA()
	return r1 == r2 && g1 == g2 && b1 == b2
}

func (ds suite) TestEngineErrorFailsJobAndWebhookSaysSo(t *testing.T) {
	b := ds.setup(t, setupOpts{})
	b.engine.GenerateFunc = func(ctx context.Context, req diffute.GenerateRequest, p func(diffute.Progress)) ([]image.Image, error) {
		if req.Prompt == "jungle, painting" {
			return nil, errors.New("model exploded")
		}
		return fakeImages(ctx, req, p)
	}
	job := b.newJob(t)
	var m diffute.Manifest
	if err := json.Unmarshal(b.waitHook(t).body, &m); err != nil {
		t.Fatal(err)
	}
	if m.Status != diffute.StatusFailed || m.Error != "model exploded" || len(m.Images["Ansel_Adams"]) != 3 || len(m.Images["Henri_Rousseau"]) != 0 {
		t.Errorf("manifest = %+v", m)
	}
	got, _ := b.store.Job(t.Context(), "org", "proj", job.ID)
	if got.Status != diffute.StatusFailed || got.Error != "model exploded" {
		t.Errorf("job = %s %q", got.Status, got.Error)
	}
	if n := len(b.engine.Calls()); n != 2 {
		t.Errorf("engine called %d times, want 2 (no retry of an engine error)", n)
	}
}

func (ds suite) TestCancelQueuedJobNeverRuns(t *testing.T) {
	b := ds.setup(t, setupOpts{noStart: true})
	canceled := b.newJob(t)
	if _, err := b.store.CancelJob(t.Context(), "org", "proj", canceled.ID); err != nil {
		t.Fatal(err)
	}
	b.start(t)
	// The cancelled job's terminal message comes first, with its status.
	var m diffute.Manifest
	if err := json.Unmarshal(b.waitHook(t).body, &m); err != nil || m.JobID != canceled.ID ||
		m.Status != diffute.StatusCanceled || m.Event != diffute.EventCompleted {
		t.Fatalf("first webhook = %+v (%v), want the cancelled job %d's terminal message", m, err, canceled.ID)
	}
	later := b.newJob(t)
	m = diffute.Manifest{}
	if err := json.Unmarshal(b.waitHook(t).body, &m); err != nil || m.JobID != later.ID {
		t.Fatalf("second webhook is for %d (%v), want the later job %d", m.JobID, err, later.ID)
	}
	if n := len(b.engine.Calls()); n != 3 {
		t.Errorf("%d engine calls, want 3 (the later job only)", n)
	}
	select {
	case h := <-b.hooks:
		t.Errorf("unexpected second webhook: %s", h.body)
	default:
	}
}

func (ds suite) TestCancelRunningJobStopsWorker(t *testing.T) {
	b := ds.setup(t, setupOpts{})
	running := make(chan struct{})
	stopped := make(chan time.Time, 1)
	b.engine.GenerateFunc = func(ctx context.Context, req diffute.GenerateRequest, progress func(diffute.Progress)) ([]image.Image, error) {
		close(running)
		// A long run that reports progress every 10ms, like real denoising steps.
		for s := 1; ; s++ {
			select {
			case <-ctx.Done():
				stopped <- time.Now()
				return nil, ctx.Err()
			case <-time.After(10 * time.Millisecond):
				progress(diffute.Progress{Step: s, Steps: 1 << 30})
			}
		}
	}
	job := b.newJob(t)
	select {
	case <-running:
	case <-time.After(20 * time.Second):
		t.Fatal("job did not start")
	}
	got, err := b.store.CancelJob(t.Context(), "org", "proj", job.ID)
	if err != nil || got.Status != diffute.StatusCanceled {
		t.Fatalf("CancelJob = %v, %v", got, err)
	}
	// The engine would run forever: only the cancel can stop it. How fast is a
	// matter for benchmarks, not for a timed assertion here (the deadline is only
	// there so a broken cancel fails instead of hanging).
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop after the cancel")
	}
	final, _ := b.store.Job(t.Context(), "org", "proj", job.ID)
	if final.Status != diffute.StatusCanceled {
		t.Errorf("status = %s", final.Status)
	}
	_, err = b.store.CancelJob(t.Context(), "org", "proj", job.ID)
	if diffute.ErrorCode(err) != diffute.ECONFLICT {
		t.Errorf("second cancel = %v, want ECONFLICT", err)
	}
	var m diffute.Manifest
	if err := json.Unmarshal(b.waitHook(t).body, &m); err != nil || m.JobID != job.ID || m.Status != diffute.StatusCanceled {
		t.Errorf("webhook after cancel = %+v (%v), want the terminal message with status canceled", m, err)
	}
	select {
	case h := <-b.hooks:
		t.Errorf("a second terminal message: %s", h.body)
	case <-time.After(200 * time.Millisecond):
	}
}

func (ds suite) TestWebhookRetriedUntilDelivered(t *testing.T) {
	b := ds.setup(t, setupOpts{})
	b.status.Store(500)
	job := b.newJob(t)
	first := b.waitHook(t)
	second := b.waitHook(t)
	b.status.Store(0)
	third := b.waitHook(t)
	id := first.header.Get("Webhook-Id")
	if id == "" || second.header.Get("Webhook-Id") != id || third.header.Get("Webhook-Id") != id {
		t.Errorf("webhook-id not stable across retries")
	}
	waitFor(t, "delivered after 3 attempts", 10*time.Second, func() bool {
		s, n := b.deliveryStatus(t, job.ID)
		return s == diffute.DeliveryDelivered && n == 3
	})
	attempts, _ := b.store.Deliveries(t.Context(), job.Org, job.Project, job.ID)
	if attempts[0].StatusCode != 500 || attempts[0].Error == "" || attempts[2].StatusCode != 200 || attempts[2].Attempt != 3 {
		t.Errorf("attempts = %+v", attempts)
	}
}

func (ds suite) TestWebhookFailsAfterLastAttempt(t *testing.T) {
	b := ds.setup(t, setupOpts{schedule: []time.Duration{0, 10 * time.Millisecond}})
	b.status.Store(503)
	job := b.newJob(t)
	b.waitHook(t)
	b.waitHook(t)
	waitFor(t, "failed after 2 attempts", 10*time.Second, func() bool {
		s, n := b.deliveryStatus(t, job.ID)
		return s == diffute.DeliveryFailed && n == 2
	})
}

func (ds suite) TestWebhook410StopsRetries(t *testing.T) {
	b := ds.setup(t, setupOpts{})
	b.status.Store(410)
	job := b.newJob(t)
	b.waitHook(t)
	waitFor(t, "failed after one attempt", 10*time.Second, func() bool {
		s, n := b.deliveryStatus(t, job.ID)
		return s == diffute.DeliveryFailed && n == 1
	})
	// A second job's webhook arriving next proves no retry of the first came
	// before it (the retry would have been due within 10ms).
	b.status.Store(0)
	other := b.newJob(t)
	var m diffute.Manifest
	if err := json.Unmarshal(b.waitHook(t).body, &m); err != nil || m.JobID != other.ID {
		t.Errorf("next webhook is for job %d, want %d: the 410 was retried", m.JobID, other.ID)
	}
}

// TestResumeAfterCrash takes a crash-consistent copy of the database while a job
// is mid-way (prompt 0's images stored, prompt 1 generating), as a killed process
// would leave it, then opens that copy in a new queue: the job finishes, the
// webhook arrives with every image, and prompt 0 is not generated again.
func TestResumeAfterCrash(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	blocked := make(chan struct{})
	b.engine.GenerateFunc = func(ctx context.Context, req diffute.GenerateRequest, p func(diffute.Progress)) ([]image.Image, error) {
		if req.Prompt == "jungle, painting" {
			close(blocked)
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return fakeImages(ctx, req, p)
	}
	job := b.newJob(t)
	select {
	case <-blocked:
	case <-time.After(20 * time.Second):
		t.Fatal("job did not reach prompt 1")
	}
	crashDir := t.TempDir()
	snapshot(t, filepath.Join(b.dir, "diffute.db"), filepath.Join(crashDir, "diffute.db"))
	// The first process is gone: stop it at once (its own file is not used again).
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.queue.Stop(gone); err != nil {
		t.Fatalf("stopping the first queue: %v", err)
	}

	// The "restarted process": the crash image, the same media directory.
	b2 := setup(t, setupOpts{dir: crashDir, noStart: true})
	b2.media = b.media
	b2.queue.cfg.Media = b.media
	var st string
	if err := b2.dbQueryRow(t, `SELECT state FROM river_job WHERE kind = 'diffute.inference'`, &st); err != nil || st != "running" {
		t.Fatalf("crash image: River job %q, %v; want running", st, err)
	}
	b2.recv.Config.Handler = b.recv.Config.Handler // the job's webhook URL points at b's receiver
	b2.start(t)
	var m diffute.Manifest
	if err := json.Unmarshal(b.waitHook(t).body, &m); err != nil {
		t.Fatal(err)
	}
	if m.JobID != job.ID || m.Status != diffute.StatusSucceeded || len(m.Images["Ansel_Adams"]) != 3 ||
		len(m.Images["Henri_Rousseau"]) != 2 || len(m.Images["Rachel_Ruysch"]) != 1 {
		t.Fatalf("manifest after restart = %+v", m)
	}
	calls := b2.engine.Calls()
	if len(calls) != 2 || calls[0].Prompt != "jungle, painting" {
		t.Errorf("restarted engine calls = %+v; want prompts 1 and 2 only", calls)
	}
	if n := b.media.Puts(diffute.MediaKey("org", "proj", job.ID, "Ansel_Adams", 0, "png")); n != 1 {
		t.Errorf("prompt 0 image 0 stored %d times, want 1", n)
	}
	var images int
	if err := b2.dbQueryRow(t, `SELECT count(*) FROM images`, &images); err != nil || images != 6 {
		t.Errorf("%d image rows, want 6", images)
	}
}

// snapshot copies the live database consistently, as of its last commit.
func snapshot(t *testing.T, from, to string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+from)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), `PRAGMA busy_timeout = 5000; VACUUM INTO '`+to+`'`); err != nil {
		t.Fatal(err)
	}
}

func (b *testBundle) dbQueryRow(t *testing.T, q string, dest any) error {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(b.dir, "diffute.db")+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	return db.QueryRowContext(t.Context(), q).Scan(dest)
}
