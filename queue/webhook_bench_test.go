package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/store"
	"github.com/diffute/diffute/storetest"
	"github.com/diffute/diffute/webhook"
)

// benchReceiver is a loopback receiver that answers 200 at once and records when
// each job's terminal message first arrived.
type benchReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	at   map[int64]time.Time
	done chan struct{}
	want int
}

func newBenchReceiver(b *testing.B, want int) *benchReceiver {
	r := &benchReceiver{at: make(map[int64]time.Time, want), done: make(chan struct{}), want: want}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		now := time.Now()
		body, _ := io.ReadAll(req.Body)
		var m struct {
			JobID int64 `json:"job_id"`
		}
		if json.Unmarshal(body, &m) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		if _, seen := r.at[m.JobID]; !seen {
			r.at[m.JobID] = now
			if len(r.at) == r.want {
				close(r.done)
			}
		}
		r.mu.Unlock()
	}))
	b.Cleanup(r.srv.Close)
	return r
}

func (r *benchReceiver) wait(b *testing.B) {
	select {
	case <-r.done:
	case <-time.After(5 * time.Minute):
		r.mu.Lock()
		defer r.mu.Unlock()
		b.Fatalf("%d of %d messages arrived", len(r.at), r.want)
	}
}

func benchQueue(b *testing.B, eng diffute.Engine) (*store.DB, *Queue) {
	b.Helper()
	dir := b.TempDir()
	media := newDirMedia(filepath.Join(dir, "media"))
	wh := webhook.Config{AllowPrivate: true}
	db, err := store.Open(b.Context(), "sqlite:"+filepath.Join(dir, "diffute.db"), testOptions(media, wh))
	if err != nil {
		b.Fatal(err)
	}
	q, err := New(db, Config{
		Engine: eng, Media: media, Concurrency: 2, Models: []string{"tiny-sd"},
		Webhook: wh,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q.Stop(ctx)
		db.Close()
	})
	return db, q
}

// BenchmarkWebhookDeliveryBacklog measures how fast a backlog of b.N terminal
// messages drains to a receiver answering 200: one op is one delivery. The
// messages are written by cancelling queued jobs (the same transaction shape as a
// finishing job: status, message row, River job) before the queue starts.
// Run with a fixed count, e.g. -bench WebhookDeliveryBacklog -benchtime 3000x.
func BenchmarkWebhookDeliveryBacklog(b *testing.B) {
	db, q := benchQueue(b, &fakeEngine{})
	store := db.Store()
	recv := newBenchReceiver(b, b.N)
	ctx := b.Context()
	for range b.N {
		job := storetest.NewJob("org", "proj")
		job.Webhook = recv.srv.URL
		if err := store.CreateJob(ctx, job); err != nil {
			b.Fatal(err)
		}
		if _, err := store.CancelJob(ctx, "org", "proj", job.ID); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	if err := q.Start(context.WithoutCancel(ctx)); err != nil {
		b.Fatal(err)
	}
	recv.wait(b)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
}

// BenchmarkWebhookCompletionToFirstAttempt runs b.N real jobs (instant fake
// engine) through the inference worker and reports the delay from each job's
// completion (finished_at, written in the transaction that writes its message)
// to the receiver getting the message, at p50 and p99.
func BenchmarkWebhookCompletionToFirstAttempt(b *testing.B) {
	eng := &fakeEngine{GenerateFunc: fakeImages}
	db, q := benchQueue(b, eng)
	store := db.Store()
	recv := newBenchReceiver(b, b.N)
	ctx := b.Context()
	if err := q.Start(context.WithoutCancel(ctx)); err != nil {
		b.Fatal(err)
	}
	ids := make([]int64, 0, b.N)
	b.ResetTimer()
	for range b.N {
		job := storetest.NewJob("org", "proj")
		job.Webhook = recv.srv.URL
		job.Prompts = job.Prompts[2:] // one 64x128 image
		job.Prompts[0].Index = 0
		if err := store.CreateJob(ctx, job); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, job.ID)
	}
	recv.wait(b)
	b.StopTimer()
	delays := make([]time.Duration, 0, len(ids))
	for _, id := range ids {
		job, err := store.JobByID(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		recv.mu.Lock()
		delays = append(delays, recv.at[id].Sub(job.FinishedAt))
		recv.mu.Unlock()
	}
	slices.Sort(delays)
	pct := func(p float64) float64 {
		return float64(delays[min(len(delays)-1, int(p*float64(len(delays))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
}

// BenchmarkWebhookLatencyUnderLoad writes terminal messages at a steady rate
// (100 and 500 per second; the second is more than one SQLite writer sustains
// with deliveries running, so it shows the saturated case) from 8 goroutines (cancelling queued jobs, one transaction each, as a finishing job's
// is) while the queue delivers them, and reports the delay from each commit to
// the receiver getting the message, at p50 and p99.
// Run with a fixed count, e.g. -benchtime 2000x.
func BenchmarkWebhookLatencyUnderLoad(b *testing.B) {
	for _, rate := range []int{100, 500} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) { benchLatency(b, rate) })
	}
}

func benchLatency(b *testing.B, rate int) {
	// The engine holds each job until it is cancelled, so every job ends
	// through CancelJob while the queue runs.
	db, q := benchQueue(b, &fakeEngine{GenerateFunc: func(ctx context.Context, _ diffute.GenerateRequest, _ func(diffute.Progress)) ([]image.Image, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	store := db.Store()
	recv := newBenchReceiver(b, b.N)
	ctx := b.Context()
	jobs := make([]*diffute.Job, b.N)
	for i := range jobs {
		jobs[i] = storetest.NewJob("org", "proj")
		jobs[i].Webhook = recv.srv.URL
		if err := store.CreateJob(ctx, jobs[i]); err != nil {
			b.Fatal(err)
		}
	}
	if err := q.Start(context.WithoutCancel(ctx)); err != nil {
		b.Fatal(err)
	}
	committed := make([]time.Time, b.N)
	b.ResetTimer()
	start := time.Now()
	// Several writers, as several workers finishing jobs would be; each paces
	// against the clock, so a slow commit is caught up rather than lowering the
	// offered rate.
	const writers = 8
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < len(jobs); i += writers {
				if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
					time.Sleep(d)
				}
				if _, err := store.CancelJob(ctx, "org", "proj", jobs[i].ID); err != nil {
					b.Error(err)
					return
				}
				committed[i] = time.Now()
			}
		})
	}
	wg.Wait()
	offered := float64(b.N) / time.Since(start).Seconds()
	recv.wait(b)
	b.StopTimer()
	delays := make([]time.Duration, b.N)
	recv.mu.Lock()
	for i, job := range jobs {
		delays[i] = recv.at[job.ID].Sub(committed[i])
	}
	recv.mu.Unlock()
	slices.Sort(delays)
	pct := func(p float64) float64 {
		return float64(delays[min(len(delays)-1, int(p*float64(len(delays))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(offered, "offered/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
}
