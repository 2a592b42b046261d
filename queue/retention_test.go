package queue

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/diffute/diffute"
)

// TestUsageAndRetention runs a job, checks what it metered and the manifest's
// expires_at, then lets retention delete its media.
func (ds suite) TestUsageAndRetention(t *testing.T) {
	b := ds.setup(t, setupOpts{})
	job := b.newJob(t)
	h := b.waitHook(t)
	var m diffute.Manifest
	if err := json.Unmarshal(h.body, &m); err != nil {
		t.Fatal(err)
	}
	got, err := b.store.Job(t.Context(), "org", "proj", job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.ExpiresAt == nil || !m.ExpiresAt.Equal(got.FinishedAt.Add(diffute.DefaultMediaRetention)) {
		t.Errorf("manifest expires_at = %v, want finished_at %v + 7 days", m.ExpiresAt, got.FinishedAt)
	}
	// Prompt 0 asks for 3 images of 64×64 in 2 steps; the others use the
	// engine's steps, which are at least 1.
	if got.Usage.Images != 6 || got.Usage.PixelSteps < 3*64*64*2+2*64*128+128*64 {
		t.Errorf("usage = %+v", got.Usage)
	}
	days, err := b.store.Usage(t.Context(), "org", "proj", time.Now().Add(-24*time.Hour), time.Now())
	if err != nil || len(days) == 0 || days[len(days)-1].Images != 6 {
		t.Errorf("usage days = %+v, %v", days, err)
	}

	key := diffute.MediaKey("org", "proj", job.ID, "Ansel_Adams", 0, "png")
	if n, err := b.queue.DeleteExpiredMedia(t.Context(), time.Now()); err != nil || n != 0 {
		t.Fatalf("before expiry: deleted %d, %v", n, err)
	}
	if _, _, err := b.media.Open(t.Context(), key); err != nil {
		t.Fatalf("media gone before expiry: %v", err)
	}
	later := time.Now().Add(diffute.DefaultMediaRetention + time.Minute)
	if n, err := b.queue.DeleteExpiredMedia(t.Context(), later); err != nil || n != 1 {
		t.Fatalf("after expiry: deleted %d, %v", n, err)
	}
	if _, _, err := b.media.Open(t.Context(), key); diffute.ErrorCode(err) != diffute.ENOTFOUND {
		t.Fatalf("media after retention: %v, want not found", err)
	}
	got, err = b.store.Job(t.Context(), "org", "proj", job.ID)
	if err != nil || got.MediaDeletedAt.IsZero() {
		t.Fatalf("media_deleted_at = %v, %v", got.MediaDeletedAt, err)
	}
	if n, err := b.queue.DeleteExpiredMedia(t.Context(), later); err != nil || n != 0 {
		t.Fatalf("second pass: deleted %d, %v", n, err)
	}
}
