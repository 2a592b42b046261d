package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/diffute/diffute"
)

// TenancyHarness is what the tenancy suite needs of a store.
type TenancyHarness struct {
	Store   diffute.Store
	Tenancy diffute.TenancyStore
	// RecordUsage meters work for a job (the workers' write).
	RecordUsage func(ctx context.Context, jobID int64, u diffute.Usage, at time.Time) error
}

// RunTenancy runs the idempotency, quota and usage tests; open returns a fresh,
// empty store for each subtest.
func RunTenancy(t *testing.T, open func(t *testing.T) *TenancyHarness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *TenancyHarness)
	}{
		{"IdempotentParallel", testIdempotentParallel},
		{"IdempotencyKeyOtherBody", testIdempotencyOtherBody},
		{"IdempotencyKeyPerTenant", testIdempotencyPerTenant},
		{"IdempotencyKeyExpires", testIdempotencyExpires},
		{"QuotaActiveJobs", testQuotaActiveJobs},
		{"QuotaImagesPerDay", testQuotaImagesPerDay},
		{"Usage", testUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// testIdempotentParallel submits 200 identical requests with one key at once:
// exactly one job exists afterwards and every answer names it.
func testIdempotentParallel(t *testing.T, h *TenancyHarness) {
	ctx := ctxT(t)
	const n = 200
	sub := diffute.Submission{IdempotencyKey: "retry-me", RequestHash: []byte("hash-1")}
	ids := make([]int64, n)
	replays := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], replays[i], errs[i] = h.Tenancy.SubmitJob(ctx, NewJob("acme", "p"), sub)
		}()
	}
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("request %d got job %d, request 0 job %d", i, ids[i], ids[0])
		}
		if !replays[i] {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d requests created a job, want 1", created)
	}
	if _, err := h.Store.Job(ctx, "acme", "p", ids[0]); err != nil {
		t.Fatalf("the job: %v", err)
	}
	// The quota counts jobs, so it tells how many exist: exactly one.
	_, _, err := h.Tenancy.SubmitJob(ctx, NewJob("acme", "p"), diffute.Submission{Quota: diffute.Quota{MaxActiveJobs: 2}})
	if err != nil {
		t.Fatalf("a second job under a limit of 2: %v (more than one job was created)", err)
	}
}

func testIdempotencyOtherBody(t *testing.T, h *TenancyHarness) {
	ctx := ctxT(t)
	id, replayed, err := h.Tenancy.SubmitJob(ctx, NewJob("acme", "p"), diffute.Submission{IdempotencyKey: "k", RequestHash: []byte("a")})
	if err != nil || replayed {
		t.Fatalf("first: %d %v %v", id, replayed, err)
	}
	_, _, err = h.Tenancy.SubmitJob(ctx, NewJob("acme", "p"), diffute.Submission{IdempotencyKey: "k", RequestHash: []byte("b")})
	wantCode(t, err, diffute.EUNPROCESSABLE)
	if diffute.ErrorField(err) != "Idempotency-Key" {
		t.Errorf("field = %q", diffute.ErrorField(err))
	}
	again, replayed, err := h.Tenancy.SubmitJob(ctx, NewJob("acme", "p"), diffute.Submission{IdempotencyKey: "k", RequestHash: []byte("a")})
	if err != nil || !replayed || again != id {
		t.Fatalf("replay: %d %v %v, want %d", again, replayed, err, id)
	}
}

func testIdempotencyPerTenant(t *testing.T, h *TenancyHarness) {
	ctx := ctxT(t)
	sub := diffute.Submission{IdempotencyKey: "shared", RequestHash: []byte("a")}
	a, _, err := h.Tenancy.SubmitJob(ctx, NewJob("acme", "p"), sub)
	if err != nil {
		t.Fatal(err)
	}
	for _, tenant := range [][2]string{{"globex", "p"}, {"acme", "q"}} {
		b, replayed, err := h.Tenancy.SubmitJob(ctx, NewJob(tenant[0], tenant[1]), sub)
		if err != nil || replayed || b == a {
			t.Fatalf("%v: the same key made %d (replayed %v, %v); want a new job", tenant, b, replayed, err)
		}
	}
}

func testIdempotencyExpires(t *testing.T, h *TenancyHarness) {
	ctx := ctxT(t)
	old := NewJob("acme", "p")
	old.CreatedAt = time.Now().UTC().Add(-diffute.IdempotencyWindow - time.Minute)
	sub := diffute.Submission{IdempotencyKey: "k", RequestHash: []byte("a")}
	first, _, err := h.Tenancy.SubmitJob(ctx, old, sub)
	if err != nil {
		t.Fatal(err)
	}
	second, replayed, err := h.Tenancy.SubmitJob(ctx, NewJob("acme", "p"), sub)
	if err != nil || replayed || second == first {
		t.Fatalf("after 24 h: %d replayed=%v %v; want a new job", second, replayed, err)
	}
}

func testQuotaActiveJobs(t *testing.T, h *TenancyHarness) {
	ctx := ctxT(t)
	q := diffute.Submission{Quota: diffute.Quota{MaxActiveJobs: 2}}
	var ids []int64
	for range 2 {
		id, _, err := h.Tenancy.SubmitJob(ctx, NewJob("acme", "p"), q)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	_, _, err := h.Tenancy.SubmitJob(ctx, NewJob("acme", "p"), q)
	wantCode(t, err, diffute.ERATELIMIT)
	// Another project, and another organization, are not held back.
	if _, _, err := h.Tenancy.SubmitJob(ctx, NewJob("acme", "other"), q); err != nil {
		t.Fatalf("another project: %v", err)
	}
	if _, _, err := h.Tenancy.SubmitJob(ctx, NewJob("globex", "p"), q); err != nil {
		t.Fatalf("another organization: %v", err)
	}
	if _, err := h.Store.CancelJob(ctx, "acme", "p", ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Tenancy.SubmitJob(ctx, NewJob("acme", "p"), q); err != nil {
		t.Fatalf("after one ended: %v", err)
	}
}

func testQuotaImagesPerDay(t *testing.T, h *TenancyHarness) {
	ctx := ctxT(t)
	q := diffute.Submission{Quota: diffute.Quota{MaxImagesPerDay: 13}} // NewJob asks for 6
	for range 2 {
		if _, _, err := h.Tenancy.SubmitJob(ctx, NewJob("acme", "p"), q); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := h.Tenancy.SubmitJob(ctx, NewJob("acme", "p"), q)
	wantCode(t, err, diffute.ERATELIMIT)
	// Yesterday's jobs do not count today.
	y := NewJob("globex", "p")
	y.CreatedAt = time.Now().UTC().Add(-25 * time.Hour)
	if _, _, err := h.Tenancy.SubmitJob(ctx, y, diffute.Submission{}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := h.Tenancy.SubmitJob(ctx, NewJob("globex", "p"), q); err != nil {
			t.Fatalf("globex today: %v", err)
		}
	}
}

func testUsage(t *testing.T, h *TenancyHarness) {
	ctx := ctxT(t)
	job := NewJob("acme", "p")
	if _, _, err := h.Tenancy.SubmitJob(ctx, job, diffute.Submission{}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	yesterday := now.Add(-24 * time.Hour)
	u := diffute.Usage{Images: 3, PixelSteps: 3 * 64 * 64 * 2, EngineTime: 1500 * time.Millisecond}
	for _, at := range []time.Time{yesterday, now, now} {
		if err := h.RecordUsage(ctx, job.ID, u, at); err != nil {
			t.Fatal(err)
		}
	}
	days, err := h.Tenancy.Usage(ctx, "acme", "p", now.Add(-7*24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(days) != 2 || days[0].Day != yesterday.Format(diffute.UsageDayFormat) || days[1].Day != now.Format(diffute.UsageDayFormat) {
		t.Fatalf("days = %+v", days)
	}
	if days[1].Images != 6 || days[1].PixelSteps != 2*u.PixelSteps || days[1].EngineTime != 3*time.Second {
		t.Errorf("today = %+v", days[1])
	}
	got, err := h.Store.Job(ctx, "acme", "p", job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Usage.Images != 9 || got.Usage.EngineTime != 4500*time.Millisecond || got.NumImages != 6 {
		t.Errorf("job usage = %+v, num_images %d", got.Usage, got.NumImages)
	}
	if other, err := h.Tenancy.Usage(ctx, "acme", "other", yesterday, now); err != nil || len(other) != 0 {
		t.Errorf("another project's usage = %+v, %v", other, err)
	}
}
