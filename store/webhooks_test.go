package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/secretbox"
	"github.com/diffute/diffute/storetest"
)

func (ds suite) TestWebhookSecretsCreateOnceAndRotate(t *testing.T) {
	ctx := t.Context()
	s := ds.open(t).Store()
	// Concurrent first reads agree on one secret.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	for range 8 {
		wg.Go(func() {
			secrets, err := s.WebhookSecrets(ctx, "org", "proj")
			if err != nil || len(secrets) != 1 {
				t.Errorf("WebhookSecrets = %d, %v", len(secrets), err)
				return
			}
			mu.Lock()
			seen[secrets[0].Secret] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(seen) != 1 {
		t.Fatalf("%d different first secrets", len(seen))
	}
	var first string
	for k := range seen {
		first = k
	}
	if !strings.HasPrefix(first, "whsec_") {
		t.Errorf("secret %q lacks whsec_", first)
	}
	other, err := s.WebhookSecrets(ctx, "org", "other")
	if err != nil || len(other) != 1 || other[0].Secret == first {
		t.Errorf("another project shares the secret: %v", err)
	}

	rotated, err := s.RotateWebhookSecret(ctx, "org", "proj", 24*time.Hour)
	if err != nil || len(rotated) != 2 {
		t.Fatalf("Rotate = %d, %v", len(rotated), err)
	}
	if rotated[0].Secret == first || rotated[0].ExpiresAt != nil || rotated[1].Secret != first || rotated[1].ExpiresAt == nil {
		t.Errorf("after rotation: %+v", rotated)
	} else if d := time.Until(*rotated[1].ExpiresAt); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("old secret expires in %v, want 24h", d)
	}
	got, err := s.WebhookSecrets(ctx, "org", "proj")
	if err != nil || len(got) != 2 || got[0].Secret != rotated[0].Secret {
		t.Errorf("WebhookSecrets after rotation = %+v, %v", got, err)
	}
	// Regression: a second rotation within 24 h used to drop the first secret
	// at once, though it had been promised 24 h. Each keeps its own overlap.
	again, err := s.RotateWebhookSecret(ctx, "org", "proj", 24*time.Hour)
	if err != nil || len(again) != 3 || again[1].Secret != rotated[0].Secret || again[2].Secret != first {
		t.Fatalf("second rotation: %+v, %v; want the new secret, then both earlier ones", again, err)
	}
	if !again[2].ExpiresAt.Equal(*rotated[1].ExpiresAt) {
		t.Errorf("the first secret now expires at %v, was promised %v", again[2].ExpiresAt, rotated[1].ExpiresAt)
	}
	// Zero overlap: every old secret stops signing now.
	now, err := s.RotateWebhookSecret(ctx, "org", "proj", 0)
	if err != nil || len(now) != 1 {
		t.Errorf("rotation without overlap: %d secrets, %v", len(now), err)
	}
}

func (ds suite) TestEventMessagesWrittenOnce(t *testing.T) {
	ctx := t.Context()
	db := ds.openWith(t, func(o *Options) { o.DeliveryMaxAttempts = 3; o.Manifests.Media = keyMedia{} })
	s := db.Store()
	job := storetest.NewJob("org", "proj")
	job.WebhookEvents = []string{diffute.EventStarted, diffute.EventPromptCompleted, diffute.EventCompleted}
	if err := s.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a retried worker starts the job again
		if ok, err := s.StartJob(ctx, job.ID); !ok || err != nil {
			t.Fatalf("StartJob = %v, %v", ok, err)
		}
	}
	// Prompt 2 has one image: not complete before it is recorded.
	if err := s.PromptCompleted(ctx, job.ID, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordImage(ctx, job.ID, 2, 0, "org/proj/x/Rachel_Ruysch/0.png", diffute.Usage{Images: 1}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.PromptCompleted(ctx, job.ID, 2); err != nil {
			t.Fatal(err)
		}
	}
	// After a cancellation, a late prompt.completed is not written.
	if err := s.RecordImage(ctx, job.ID, 0, 0, "k0", diffute.Usage{Images: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelJob(ctx, "org", "proj", job.ID); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 3; i++ {
		if err := s.RecordImage(ctx, job.ID, 0, i, "k", diffute.Usage{Images: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PromptCompleted(ctx, job.ID, 0); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.WebhookMessages(ctx, job.Org, job.Project, job.ID)
	if err != nil || len(msgs) != 3 || msgs[2].Event != diffute.EventCompleted {
		t.Fatalf("WebhookMessages = %+v, %v; want started, one prompt.completed, completed", msgs, err)
	}
	msgs = msgs[:2]
	if err != nil || len(msgs) != 2 {
		t.Fatalf("WebhookMessages = %+v, %v; want started and one prompt.completed", msgs, err)
	}
	if msgs[0].Event != diffute.EventStarted || msgs[1].Event != diffute.EventPromptCompleted || msgs[1].Subject != "Rachel_Ruysch" ||
		msgs[0].State != diffute.DeliveryPending || msgs[0].MessageID == msgs[1].MessageID {
		t.Errorf("messages %+v", msgs)
	}
	d, err := s.Delivery(ctx, msgs[1].DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	var m diffute.Manifest
	if err := json.Unmarshal(d.Payload, &m); err != nil || m.Event != diffute.EventPromptCompleted || m.Prompt != "Rachel_Ruysch" ||
		len(m.Images) != 1 || len(m.Images["Rachel_Ruysch"]) != 1 || m.Status != diffute.StatusRunning {
		t.Errorf("prompt.completed payload %s (%v)", d.Payload, err)
	}
	if d.Org != "org" || d.Project != "proj" || d.Secret != "s3cret" {
		t.Errorf("delivery tenant/secret %q %q", d.Org, d.Project)
	}
	var n int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM river_job WHERE kind = ? AND max_attempts = 3`,
		diffute.DeliveryArgs{}.Kind()).Scan(&n); err != nil || n != 3 {
		t.Errorf("%d delivery River jobs with the hooks' MaxAttempts (%v), want 3", n, err)
	}
}

func (ds suite) TestRedeliver(t *testing.T) {
	ctx := t.Context()
	media := &countingMedia{}
	db := ds.openWith(t, func(o *Options) { o.Manifests.Media = media })
	s := db.Store()
	job := storetest.NewJob("org", "proj")
	if err := s.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	_, err := s.Redeliver(ctx, "org", "proj", job.ID)
	wantCode(t, err, diffute.ECONFLICT) // not finished
	_, err = s.Redeliver(ctx, "org", "other", job.ID)
	wantCode(t, err, diffute.ENOTFOUND)
	if _, err := s.CancelJob(ctx, "org", "proj", job.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.Redeliver(ctx, "org", "proj", job.ID)
	wantCode(t, err, diffute.ECONFLICT) // still pending
	msgs, _ := s.WebhookMessages(ctx, job.Org, job.Project, job.ID)
	if len(msgs) != 1 {
		t.Fatalf("messages %+v", msgs)
	}
	if err := s.RecordDeliveryAttempt(ctx, AttemptRecord{DeliveryID: msgs[0].DeliveryID, Attempt: 2, At: time.Now(),
		StatusCode: 410, Status: diffute.DeliveryFailed}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.ExecContext(ctx, `INSERT INTO images (job_id, prompt_idx, image_idx, media_key, created_at)
		VALUES (?, 0, 0, 'org/proj/x/Ansel_Adams/0.png', ?)`, job.ID, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	before := media.calls.Load()
	m, err := s.Redeliver(ctx, "org", "proj", job.ID)
	if err != nil || m.MessageID != msgs[0].MessageID || m.State != diffute.DeliveryPending {
		t.Fatalf("Redeliver = %+v, %v", m, err)
	}
	// The payload is shaped again, with fresh URLs, by the one manifest shaper.
	d, err := s.Delivery(ctx, m.DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	var payload diffute.Manifest
	if err := json.Unmarshal(d.Payload, &payload); err != nil || payload.Event != diffute.EventCompleted ||
		payload.Status != diffute.StatusCanceled || len(payload.Images["Ansel_Adams"]) != 1 || media.calls.Load() != before+1 {
		t.Errorf("redelivered payload %s (%v), %d URLs made; want the cancelled manifest with its image's fresh URL", d.Payload, err, media.calls.Load()-before)
	}
	var args string
	if err := db.read.QueryRowContext(ctx, `SELECT json(args) FROM river_job WHERE kind = ? ORDER BY id DESC LIMIT 1`,
		diffute.DeliveryArgs{}.Kind()).Scan(&args); err != nil {
		t.Fatal(err)
	}
	var da diffute.DeliveryArgs
	if err := json.Unmarshal([]byte(args), &da); err != nil || da.DeliveryID != m.DeliveryID || da.AttemptBase != 2 {
		t.Errorf("redelivery job args %s (%v), want attempt_base 2", args, err)
	}
}

func (ds suite) TestWebhookSecretsEncryptedAtRest(t *testing.T) {
	ctx := t.Context()
	url := ds.url(t)
	open := func(key []byte) (*DB, error) {
		box, err := secretbox.New(key)
		if err != nil {
			t.Fatal(err)
		}
		return Open(ctx, url, Options{Secrets: box, Inference: testInference})
	}
	db, err := open(testKey)
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := db.Store().WebhookSecrets(ctx, "org", "proj")
	if err != nil || len(secrets) != 1 || !strings.HasPrefix(secrets[0].Secret, "whsec_") {
		t.Fatalf("WebhookSecrets = %+v, %v", secrets, err)
	}
	var raw string
	if err := db.read.QueryRowContext(ctx, `SELECT secret FROM webhook_secrets`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if !secretbox.IsSealed(raw) || strings.Contains(raw, strings.TrimPrefix(secrets[0].Secret, "whsec_")) {
		t.Errorf("stored secret %q is not sealed", raw)
	}
	// Moving the sealed value to another project does not decrypt there.
	if _, err := db.write.ExecContext(ctx, `INSERT INTO webhook_secrets (org, project, secret, created_at) VALUES ('org', 'other', ?, ?)`,
		raw, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Store().WebhookSecrets(ctx, "org", "other"); err == nil {
		t.Error("a sealed secret copied to another project decrypted")
	}
	if _, err := db.write.ExecContext(ctx, `DELETE FROM webhook_secrets WHERE project = 'other'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Another key is refused at open, on either database.
	if db, err := open(bytes.Repeat([]byte{8}, 32)); !errors.Is(err, ErrSecretKeyMismatch) {
		if err == nil {
			db.Close()
		}
		t.Errorf("open with another key = %v, want ErrSecretKeyMismatch", err)
	}
	db, err = open(testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	again, err := db.Store().WebhookSecrets(ctx, "org", "proj")
	if err != nil || again[0].Secret != secrets[0].Secret {
		t.Errorf("reopened: %+v, %v", again, err)
	}
}

// TestSigningSecretsResealedFromOldScheme writes signing secrets as earlier
// versions left them (one sealed under the old key of its own, one in the
// plain) and checks that Open re-seals both with the one secret box, and that
// without the old key it refuses rather than losing the secret.
func (ds suite) TestSigningSecretsResealedFromOldScheme(t *testing.T) {
	ctx := t.Context()
	url := ds.url(t)
	legacyKey := bytes.Repeat([]byte{9}, 32)
	db := openURL(t, url, testOptions())
	old, err := sealLegacy(legacyKey, "org", "proj", "whsec_oldsealed")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, row := range [][]string{{"proj", old}, {"plain", "whsec_oldplain"}} {
		if _, err := db.write.ExecContext(ctx, `INSERT INTO webhook_secrets (org, project, secret, created_at) VALUES ('org', ?, ?, ?)`,
			row[0], row[1], now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(ctx, url, testOptions()); err == nil || !strings.Contains(err.Error(), "key was not given") {
		t.Fatalf("Open without the legacy key = %v, want a refusal naming the missing key", err)
	}
	opts := testOptions()
	opts.LegacySigningKey = legacyKey
	db2 := openURL(t, url, opts)
	for project, want := range map[string]string{"proj": "whsec_oldsealed", "plain": "whsec_oldplain"} {
		got, err := db2.Store().WebhookSecrets(ctx, "org", project)
		if err != nil || len(got) != 1 || got[0].Secret != want {
			t.Errorf("%s: WebhookSecrets = %+v, %v; want %s", project, got, err, want)
		}
	}
	var unsealed int
	if err := db2.read.QueryRowContext(ctx, `SELECT count(*) FROM webhook_secrets WHERE secret NOT LIKE 'enc:v1:%'`).Scan(&unsealed); err != nil || unsealed != 0 {
		t.Errorf("%d signing secrets left outside the box (%v)", unsealed, err)
	}
	// Re-sealed rows need the old key no more.
	openURL(t, url, testOptions())
}

// TestDeliveryLookupsTenantScoped: the delivery log and message list of a job
// are found only under its own organization and project.
func (ds suite) TestDeliveryLookupsTenantScoped(t *testing.T) {
	ctx := t.Context()
	s := ds.open(t).Store()
	job := storetest.NewJob("org", "proj")
	if err := s.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.StartJob(ctx, job.ID); !ok || err != nil {
		t.Fatalf("StartJob = %v, %v", ok, err)
	}
	if _, err := s.FinishJob(ctx, FinishParams{JobID: job.ID, Status: diffute.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.WebhookMessages(ctx, "org", "proj", job.ID)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("own tenant: %d messages, %v", len(msgs), err)
	}
	if err := s.RecordDeliveryAttempt(ctx, AttemptRecord{DeliveryID: msgs[0].DeliveryID, Attempt: 1, At: time.Now(),
		StatusCode: 200, Status: diffute.DeliveryDelivered}); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Deliveries(ctx, "org", "proj", job.ID); err != nil || len(a) != 1 {
		t.Fatalf("own tenant: %d attempts, %v", len(a), err)
	}
	for _, tenant := range [][2]string{{"other", "proj"}, {"org", "other"}} {
		if a, err := s.Deliveries(ctx, tenant[0], tenant[1], job.ID); err != nil || len(a) != 0 {
			t.Errorf("%s/%s sees %d attempts (%v)", tenant[0], tenant[1], len(a), err)
		}
		if m, err := s.WebhookMessages(ctx, tenant[0], tenant[1], job.ID); err != nil || len(m) != 0 {
			t.Errorf("%s/%s sees %d messages (%v)", tenant[0], tenant[1], len(m), err)
		}
	}
}

func (ds suite) TestPendingMessageShowsNextAttempt(t *testing.T) {
	ctx := t.Context()
	db := ds.open(t)
	s := db.Store()
	job := storetest.NewJob("org", "proj")
	if err := s.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelJob(ctx, "org", "proj", job.ID); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.WebhookMessages(ctx, "org", "proj", job.ID)
	if err != nil || len(msgs) != 1 || msgs[0].State != diffute.DeliveryPending {
		t.Fatalf("WebhookMessages = %+v, %v; want one pending message", msgs, err)
	}
	// Queued and due: its next attempt is now.
	if at := msgs[0].NextAttemptAt; at == nil || time.Since(*at) < -time.Second || time.Since(*at) > time.Minute {
		t.Errorf("a message just queued has its next attempt at %v, want about now", at)
	}
	// A failed attempt puts the queue job off until its retry.
	retry := time.Now().Add(90 * time.Second).UTC().Truncate(time.Second)
	if _, err := db.write.ExecContext(ctx, `UPDATE river_job SET state = 'retryable', scheduled_at = ? WHERE kind = ?`,
		retry, diffute.DeliveryArgs{}.Kind()); err != nil {
		t.Fatal(err)
	}
	msgs, err = s.WebhookMessages(ctx, "org", "proj", job.ID)
	if err != nil || len(msgs) != 1 || msgs[0].NextAttemptAt == nil || !msgs[0].NextAttemptAt.Equal(retry) {
		t.Fatalf("after a failed attempt, WebhookMessages = %+v, %v; want the next attempt at %s", msgs, err, retry)
	}
	// An attempt in flight, then a final state: no next attempt.
	if _, err := db.write.ExecContext(ctx, `UPDATE river_job SET state = 'running' WHERE kind = ?`, diffute.DeliveryArgs{}.Kind()); err != nil {
		t.Fatal(err)
	}
	if msgs, err = s.WebhookMessages(ctx, "org", "proj", job.ID); err != nil || msgs[0].NextAttemptAt != nil {
		t.Errorf("while an attempt runs, next attempt = %v (%v), want none", msgs[0].NextAttemptAt, err)
	}
	if err := s.RecordDeliveryAttempt(ctx, AttemptRecord{DeliveryID: msgs[0].DeliveryID, Attempt: 1, At: time.Now(),
		StatusCode: 200, Status: diffute.DeliveryDelivered}); err != nil {
		t.Fatal(err)
	}
	if msgs, err = s.WebhookMessages(ctx, "org", "proj", job.ID); err != nil || msgs[0].State != diffute.DeliveryDelivered || msgs[0].NextAttemptAt != nil {
		t.Errorf("a delivered message: %+v (%v), want no next attempt", msgs[0], err)
	}
}
