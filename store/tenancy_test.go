package store

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/secretbox"
	"github.com/diffute/diffute/storetest"
)

func (ds suite) TestTenancy(t *testing.T) {
	storetest.RunTenancy(t, func(t *testing.T) *storetest.TenancyHarness {
		db := ds.open(t)
		return &storetest.TenancyHarness{Store: db.Store(), Tenancy: db.Store(), RecordUsage: db.Store().RecordUsage}
	})
}

func (ds suite) TestSecretsEncryptedAtRest(t *testing.T) {
	ctx := t.Context()
	db := ds.open(t)
	job := storetest.NewJob("acme", "p")
	job.Secret = "whsec-very-secret-value"
	if err := db.Store().CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	var raw string
	if err := db.read.QueryRowContext(ctx, `SELECT secret FROM jobs WHERE id = ?`, job.ID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(raw, "very-secret") || !secretbox.IsSealed(raw) {
		t.Fatalf("stored secret = %q, want it sealed", raw)
	}
	got, err := db.Store().Job(ctx, "acme", "p", job.ID)
	if err != nil || got.Secret != job.Secret {
		t.Fatalf("Job().Secret = %q, %v", got.Secret, err)
	}
	// A sealed secret moved into another job's row does not open there.
	other := storetest.NewJob("acme", "p")
	if err := db.Store().CreateJob(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.ExecContext(ctx, `UPDATE jobs SET secret = ? WHERE id = ?`, raw, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Store().Job(ctx, "acme", "p", other.ID); err == nil {
		t.Error("a secret copied to another job opened")
	}
}

func (ds suite) TestRetentionQueries(t *testing.T) {
	ctx := t.Context()
	db := ds.open(t)
	s := db.Store()
	job := storetest.NewJob("acme", "p")
	if err := s.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.StartJob(ctx, job.ID); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := s.RecordImage(ctx, job.ID, 0, 0, "acme/p/1/a/0.png", diffute.Usage{Images: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishJob(ctx, FinishParams{JobID: job.ID, Status: diffute.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ExpiredMedia(ctx, time.Now().Add(-time.Hour), 10); err != nil || len(got) != 0 {
		t.Fatalf("before the cutoff: %+v %v", got, err)
	}
	got, err := s.ExpiredMedia(ctx, time.Now().Add(time.Hour), 10)
	if err != nil || len(got) != 1 || got[0].JobID != job.ID || len(got[0].Keys) != 1 {
		t.Fatalf("after the cutoff: %+v %v", got, err)
	}
	if err := s.MarkMediaDeleted(ctx, job.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ExpiredMedia(ctx, time.Now().Add(time.Hour), 10); err != nil || len(got) != 0 {
		t.Fatalf("after deletion: %+v %v", got, err)
	}
	j, err := s.Job(ctx, "acme", "p", job.ID)
	if err != nil || j.MediaDeletedAt.IsZero() {
		t.Fatalf("MediaDeletedAt = %v, %v", j.MediaDeletedAt, err)
	}
}

// BenchmarkSubmitJob is BenchmarkCreateJob through SubmitJob with a fresh
// Idempotency-Key and both quotas checked: the cost of tenancy on the hot path.
func BenchmarkSubmitJob(b *testing.B) {
	db := openSQLiteTest(b)
	s := db.Store()
	ctx := context.Background()
	tmpl := storetest.NewJob("org", "proj")
	sub := diffute.Submission{RequestHash: make([]byte, 32), Quota: diffute.Quota{MaxActiveJobs: 1 << 30, MaxImagesPerDay: 1 << 30}}
	i := 0
	for b.Loop() {
		job := *tmpl
		job.ID = diffute.NewJobID()
		i++
		sub.IdempotencyKey = "bench-" + strconv.Itoa(i)
		if _, _, err := s.SubmitJob(ctx, &job, sub); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkSubmitJobReplay answers a retried request: the key exists, no job is made.
func BenchmarkSubmitJobReplay(b *testing.B) {
	db := openSQLiteTest(b)
	s := db.Store()
	ctx := context.Background()
	sub := diffute.Submission{IdempotencyKey: "k", RequestHash: make([]byte, 32)}
	if _, _, err := s.SubmitJob(ctx, storetest.NewJob("org", "proj"), sub); err != nil {
		b.Fatal(err)
	}
	tmpl := storetest.NewJob("org", "proj")
	for b.Loop() {
		job := *tmpl
		job.ID = diffute.NewJobID()
		if _, replayed, err := s.SubmitJob(ctx, &job, sub); err != nil || !replayed {
			b.Fatal(replayed, err)
		}
	}
}

func (ds suite) TestSecretKeyMismatchRefused(t *testing.T) {
	ctx := t.Context()
	url := ds.url(t)
	box1, _ := secretbox.New(bytes.Repeat([]byte{1}, secretbox.KeySize))
	box2, _ := secretbox.New(bytes.Repeat([]byte{2}, secretbox.KeySize))
	for i, tc := range []struct {
		box  *secretbox.Box
		want error
	}{{box1, nil}, {box1, nil}, {box2, ErrSecretKeyMismatch}} {
		db, err := Open(ctx, url, Options{Secrets: tc.box, Inference: testInference})
		if !errors.Is(err, tc.want) {
			t.Errorf("open %d: Open = %v, want %v", i+1, err, tc.want)
		}
		if err == nil {
			db.Close()
		}
	}
}
