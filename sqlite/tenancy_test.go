package sqlite

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/secretbox"
	"github.com/diffute/diffute/storetest"
)

func TestTenancy(t *testing.T) {
	t.Parallel()
	storetest.RunTenancy(t, func(t *testing.T) *storetest.TenancyHarness {
		db := openTest(t)
		return &storetest.TenancyHarness{Store: db.Store(), Tenancy: db.Store(), RecordUsage: db.Store().RecordUsage}
	})
}

func TestSecretsEncryptedAtRest(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openTest(t)
	box, err := secretbox.New(bytes.Repeat([]byte{1}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	db.UseSecretBox(box)
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

func TestRetentionQueries(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openTest(t)
	s := db.Store()
	job := storetest.NewJob("acme", "p")
	if err := s.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.StartJob(ctx, job.ID); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := s.RecordImage(ctx, job.ID, 0, 0, "acme/p/1/a/0.png"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishJob(ctx, FinishParams{JobID: job.ID, Status: diffute.StatusSucceeded,
		Manifest: func(ctx context.Context, j *diffute.Job) (*diffute.Manifest, error) { return &diffute.Manifest{}, nil }}); err != nil {
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
