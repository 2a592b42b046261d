package storetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/diffute/diffute"
)

// Harness is one fresh, empty store under test and the hooks the suite needs
// beyond the diffute interfaces.
type Harness struct {
	Store diffute.Store
	Keys  diffute.KeyStore
	// StartJob marks a job running, as a worker does when it picks it up.
	StartJob func(ctx context.Context, id int64) (bool, error)
	// QueueState returns the state of the job's queue entry as River names it
	// ("available", "cancelled", …).
	QueueState func(ctx context.Context, jobID int64) (string, error)
}

// Run runs the suite; open returns a fresh, empty store for each subtest.
func Run(t *testing.T, open func(t *testing.T) *Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *Harness)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"CreateRejectsUnresolvedSeed", testCreateRejectsUnresolvedSeed},
		{"TenantIsolation", testTenantIsolation},
		{"CancelQueued", testCancelQueued},
		{"CancelRunning", testCancelRunning},
		{"CancelTerminal", testCancelTerminal},
		{"DeliveriesEmpty", testDeliveriesEmpty},
		{"APIKeys", testAPIKeys},
		{"APIKeyDuplicateHash", testAPIKeyDuplicateHash},
		{"Ping", testPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// NewJob returns a queued job of org/project with three prompts, seeds resolved, as
// the API builds it.
func NewJob(org, project string) *diffute.Job {
	g := 7.5
	seed := func(v int64) *int64 { return &v }
	text := func(s string) *string { return &s }
	return &diffute.Job{
		ID: diffute.NewJobID(), Org: org, Project: project, Name: "Houston",
		Model: "tiny-sd", Webhook: "https://example.com/hook", Secret: "s3cret",
		OutputFormat: diffute.FormatPNG, Status: diffute.StatusQueued,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
		Prompts: []diffute.JobPrompt{
			{Index: 0, PromptRequest: diffute.PromptRequest{Name: "Ansel_Adams", Prompt: "Yosemite", NumImages: 3,
				Height: 64, Width: 64, Style: "photography", Seed: seed(1), Steps: 2, GuidanceScale: &g}},
			{Index: 1, PromptRequest: diffute.PromptRequest{Name: "Henri_Rousseau", Prompt: "jungle", NumImages: 2,
				Height: 64, Width: 128, Style: "painting", NegativePrompt: text("blurry"), Seed: seed(diffute.MaxSeed), Scheduler: "euler",
				RNG: diffute.RNGCUDA}},
			// An explicit empty negative prompt differs from none (prompt 0).
			{Index: 2, PromptRequest: diffute.PromptRequest{Name: "Rachel_Ruysch", Prompt: "flowers", NumImages: 1,
				Height: 128, Width: 64, Seed: seed(0), NegativePrompt: text("")}},
		},
	}
}

func mustCreate(t *testing.T, h *Harness, job *diffute.Job) {
	t.Helper()
	if err := h.Store.CreateJob(ctxT(t), job); err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := diffute.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func testCreateAndGet(t *testing.T, h *Harness) {
	ctx := ctxT(t)
	want := NewJob("org1", "proj1")
	mustCreate(t, h, want)
	got, err := h.Store.Job(ctx, "org1", "proj1", want.ID)
	if err != nil {
		t.Fatalf("Job: %v", err)
	}
	if got.ID != want.ID || got.Org != want.Org || got.Project != want.Project || got.Name != want.Name ||
		got.Model != want.Model || got.Webhook != want.Webhook || got.Secret != want.Secret ||
		got.OutputFormat != want.OutputFormat || got.Status != diffute.StatusQueued || got.Error != "" {
		t.Errorf("Job = %+v, want %+v", got, want)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.StartedAt.IsZero() || !got.FinishedAt.IsZero() {
		t.Errorf("times: created %v (want %v) started %v finished %v", got.CreatedAt, want.CreatedAt, got.StartedAt, got.FinishedAt)
	}
	if len(got.Prompts) != len(want.Prompts) {
		t.Fatalf("%d prompts, want %d", len(got.Prompts), len(want.Prompts))
	}
	for i, p := range got.Prompts {
		w := want.Prompts[i]
		if p.Index != i || p.Name != w.Name || p.Prompt != w.Prompt || p.Style != w.Style || p.NumImages != w.NumImages ||
			p.Width != w.Width || p.Height != w.Height || (p.NegativePrompt == nil) != (w.NegativePrompt == nil) ||
			p.NegativeText() != w.NegativeText() || p.RNG != w.RNG || p.Steps != w.Steps ||
			p.Scheduler != w.Scheduler || p.Seed == nil || *p.Seed != *w.Seed || p.ImagesDone != 0 || len(p.Images) != 0 {
			t.Errorf("prompt %d = %+v, want %+v", i, p, w)
		}
		if (p.GuidanceScale == nil) != (w.GuidanceScale == nil) || (p.GuidanceScale != nil && *p.GuidanceScale != *w.GuidanceScale) {
			t.Errorf("prompt %d guidance = %v, want %v", i, p.GuidanceScale, w.GuidanceScale)
		}
	}
	state, err := h.QueueState(ctx, want.ID)
	if err != nil || state != "available" {
		t.Errorf("queue state = %q, %v; want available (job and queue entry written together)", state, err)
	}
}

func testCreateRejectsUnresolvedSeed(t *testing.T, h *Harness) {
	ctx := ctxT(t)
	job := NewJob("org1", "proj1")
	job.Prompts[2].Seed = nil
	if err := h.Store.CreateJob(ctx, job); err == nil {
		t.Fatal("CreateJob with an unresolved seed succeeded")
	}
	_, err := h.Store.Job(ctx, "org1", "proj1", job.ID)
	wantCode(t, err, diffute.ENOTFOUND)
	if _, err := h.QueueState(ctx, job.ID); err == nil {
		t.Error("a queue entry exists for a job that was not created")
	}
}

func testTenantIsolation(t *testing.T, h *Harness) {
	ctx := ctxT(t)
	job := NewJob("org1", "proj1")
	mustCreate(t, h, job)
	for _, c := range []struct{ org, project string }{{"org2", "proj1"}, {"org1", "proj2"}, {"", ""}} {
		_, err := h.Store.Job(ctx, c.org, c.project, job.ID)
		wantCode(t, err, diffute.ENOTFOUND)
		_, err = h.Store.CancelJob(ctx, c.org, c.project, job.ID)
		wantCode(t, err, diffute.ENOTFOUND)
	}
	_, err := h.Store.Job(ctx, "org1", "proj1", job.ID+1)
	wantCode(t, err, diffute.ENOTFOUND)
	got, err := h.Store.Job(ctx, "org1", "proj1", job.ID)
	if err != nil || got.Status != diffute.StatusQueued {
		t.Fatalf("after foreign cancels: %v, %v; want queued", got, err)
	}
}

func testCancelQueued(t *testing.T, h *Harness) {
	ctx := ctxT(t)
	job := NewJob("org1", "proj1")
	mustCreate(t, h, job)
	got, err := h.Store.CancelJob(ctx, "org1", "proj1", job.ID)
	if err != nil {
		t.Fatalf("CancelJob: %v", err)
	}
	if got.Status != diffute.StatusCanceled || got.FinishedAt.IsZero() {
		t.Errorf("CancelJob = status %q finished %v, want canceled with a finish time", got.Status, got.FinishedAt)
	}
	if state, err := h.QueueState(ctx, job.ID); err != nil || state != "cancelled" {
		t.Errorf("queue state = %q, %v; want cancelled", state, err)
	}
	if ok, err := h.StartJob(ctx, job.ID); err != nil || ok {
		t.Errorf("StartJob after cancel = %v, %v; want false", ok, err)
	}
}

func testCancelRunning(t *testing.T, h *Harness) {
	ctx := ctxT(t)
	job := NewJob("org1", "proj1")
	mustCreate(t, h, job)
	if ok, err := h.StartJob(ctx, job.ID); err != nil || !ok {
		t.Fatalf("StartJob = %v, %v", ok, err)
	}
	running, err := h.Store.Job(ctx, "org1", "proj1", job.ID)
	if err != nil || running.Status != diffute.StatusRunning || running.StartedAt.IsZero() {
		t.Fatalf("after StartJob: %+v, %v", running, err)
	}
	got, err := h.Store.CancelJob(ctx, "org1", "proj1", job.ID)
	if err != nil || got.Status != diffute.StatusCanceled {
		t.Fatalf("CancelJob = %+v, %v", got, err)
	}
}

func testCancelTerminal(t *testing.T, h *Harness) {
	ctx := ctxT(t)
	job := NewJob("org1", "proj1")
	mustCreate(t, h, job)
	if _, err := h.Store.CancelJob(ctx, "org1", "proj1", job.ID); err != nil {
		t.Fatal(err)
	}
	_, err := h.Store.CancelJob(ctx, "org1", "proj1", job.ID)
	wantCode(t, err, diffute.ECONFLICT)
}

func testDeliveriesEmpty(t *testing.T, h *Harness) {
	job := NewJob("org1", "proj1")
	mustCreate(t, h, job)
	d, err := h.Store.Deliveries(ctxT(t), "org1", "proj1", job.ID)
	if err != nil || len(d) != 0 {
		t.Errorf("Deliveries of a new job = %v, %v; want none", d, err)
	}
}

func testAPIKeys(t *testing.T, h *Harness) {
	ctx := ctxT(t)
	secret, hash := diffute.NewAPIKeySecret()
	k := &diffute.APIKey{Org: "org1", Project: "proj1", Name: "default"}
	if err := h.Keys.CreateAPIKey(ctx, k, hash); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	if k.ID == 0 || k.CreatedAt.IsZero() {
		t.Errorf("CreateAPIKey left ID %d, CreatedAt %v", k.ID, k.CreatedAt)
	}
	other := &diffute.APIKey{Org: "org2", Name: "ops"}
	_, hash2 := diffute.NewAPIKeySecret()
	if err := h.Keys.CreateAPIKey(ctx, other, hash2); err != nil {
		t.Fatal(err)
	}

	// The product page's "<key>/<label>" form hashes to the same key.
	got, err := h.Keys.APIKeyByHash(ctx, diffute.HashAPIKey(secret+"/default"))
	if err != nil {
		t.Fatalf("APIKeyByHash: %v", err)
	}
	if got.ID != k.ID || got.Org != "org1" || got.Project != "proj1" || got.Name != "default" || !got.Allows("org1", "proj1") {
		t.Errorf("APIKeyByHash = %+v", got)
	}
	_, err = h.Keys.APIKeyByHash(ctx, diffute.HashAPIKey("dfk_nope"))
	wantCode(t, err, diffute.EUNAUTHORIZED)

	list, err := h.Keys.ListAPIKeys(ctx, "org1")
	if err != nil || len(list) != 1 || list[0].ID != k.ID {
		t.Errorf("ListAPIKeys(org1) = %v, %v", list, err)
	}
	all, err := h.Keys.ListAPIKeys(ctx, "")
	if err != nil || len(all) != 2 {
		t.Errorf("ListAPIKeys(\"\") = %d keys, %v; want 2", len(all), err)
	}

	if err := h.Keys.RevokeAPIKey(ctx, k.ID); err != nil {
		t.Fatalf("RevokeAPIKey: %v", err)
	}
	_, err = h.Keys.APIKeyByHash(ctx, hash)
	wantCode(t, err, diffute.EUNAUTHORIZED)
	list, err = h.Keys.ListAPIKeys(ctx, "org1")
	if err != nil || len(list) != 1 || list[0].RevokedAt.IsZero() {
		t.Errorf("revoked key listed as %v, %v", list, err)
	}
	first := list[0].RevokedAt
	if err := h.Keys.RevokeAPIKey(ctx, k.ID); err != nil {
		t.Errorf("revoking again: %v", err)
	}
	if list, _ := h.Keys.ListAPIKeys(ctx, "org1"); len(list) != 1 || !list[0].RevokedAt.Equal(first) {
		t.Errorf("revoking again moved the revocation time")
	}
	wantCode(t, h.Keys.RevokeAPIKey(ctx, k.ID+1000), diffute.ENOTFOUND)
	if _, err := h.Keys.APIKeyByHash(ctx, hash2); err != nil {
		t.Errorf("revoking one key affected another: %v", err)
	}
}

func testAPIKeyDuplicateHash(t *testing.T, h *Harness) {
	ctx := ctxT(t)
	_, hash := diffute.NewAPIKeySecret()
	if err := h.Keys.CreateAPIKey(ctx, &diffute.APIKey{Org: "o"}, hash); err != nil {
		t.Fatal(err)
	}
	if err := h.Keys.CreateAPIKey(ctx, &diffute.APIKey{Org: "p"}, bytes.Clone(hash)); err == nil {
		t.Error("a second key with the same hash was stored")
	}
}

func testPing(t *testing.T, h *Harness) {
	if err := h.Store.Ping(ctxT(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
