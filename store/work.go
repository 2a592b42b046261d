package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/diffute/diffute"
)

// DeliveryQueue is the River queue of webhook deliveries, apart from inference so
// that a slow receiver never waits behind image generation or the reverse.
const DeliveryQueue = "webhooks"

// EventInferenceCompleted is the event of the webhook sent when a job ends
// (succeeded, failed or canceled; the payload's status says which).
const EventInferenceCompleted = diffute.EventCompleted

// StartJob marks job id running, keeping the first start time across retries. It
// reports false when the job is no longer queued or running (it was cancelled or
// finished meanwhile), in which case there is nothing to do.
//
// When the job asked for the started event, its message is written in the same
// transaction (once, however often the job is started).
func (s *Store) StartJob(ctx context.Context, id int64) (bool, error) {
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store: start job: %w", err)
	}
	defer tx.Rollback()
	var events, hook string
	err = tx.QueryRowContext(ctx, `UPDATE jobs SET status = 'running', started_at = coalesce(started_at, ?)
		WHERE id = ? AND status IN ('queued', 'running') RETURNING webhook_events, webhook`, time.Now().UTC(), id).Scan(&events, &hook)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: start job: %w", err)
	}
	if (&diffute.Job{Webhook: hook, WebhookEvents: diffute.SplitEvents(events)}).WantsEvent(diffute.EventStarted) {
		job, err := loadJob(ctx, tx, id, nil)
		if err != nil {
			return false, err
		}
		if err := s.db.addEventDelivery(ctx, tx, job, diffute.EventStarted, ""); err != nil {
			return false, fmt.Errorf("store: start job: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store: start job: %w", err)
	}
	return true, nil
}

// RecordProgress records that step of steps is done for prompt (0-based index) of
// job id. It reports false when the job is no longer running, which is how a
// worker notices a cancellation even if River's notification is late.
func (s *Store) RecordProgress(ctx context.Context, id int64, prompt, step, steps int) (bool, error) {
	res, err := s.db.write.ExecContext(ctx, `UPDATE prompts SET steps_done = ?, steps_total = ?
		WHERE job_id = ? AND idx = ? AND EXISTS (SELECT 1 FROM jobs WHERE id = ? AND status = 'running')`,
		step, steps, id, prompt, id)
	if err != nil {
		return false, fmt.Errorf("store: record progress: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: record progress: %w", err)
	}
	return n > 0, nil
}

// RecordRecipe stores what the engine resolved prompt (0-based) of job id to:
// the record a status and the manifest show to make the images again. A later
// attempt writes it again with the same values.
func (s *Store) RecordRecipe(ctx context.Context, id int64, prompt int, r diffute.Recipe) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: record recipe: %w", err)
	}
	res, err := s.db.write.ExecContext(ctx, `UPDATE prompts SET recipe = ? WHERE job_id = ? AND idx = ?`, string(b), id, prompt)
	if err != nil {
		return fmt.Errorf("store: record recipe: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: record recipe: %w", err)
	} else if n == 0 {
		return fmt.Errorf("store: record recipe: job %d has no prompt %d", id, prompt)
	}
	return nil
}

// RecordImage records that image (0-based) of prompt of job id is stored under
// key, and meters it (u: this image's share of the work) on the job and on its
// project's day, in one transaction: an image recorded is an image billed, even
// when the process dies right after or the job is cancelled meanwhile.
// Recording the same image again is a no-op, meter included, so a retried job
// never counts or bills an image twice.
func (s *Store) RecordImage(ctx context.Context, id int64, prompt, image int, key string, u diffute.Usage) error {
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: record image: %w", err)
	}
	defer tx.Rollback()
	now := time.Now().UTC()
	res, err := tx.ExecContext(ctx, `INSERT INTO images (job_id, prompt_idx, image_idx, media_key, created_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id, prompt_idx, image_idx) DO NOTHING`,
		id, prompt, image, key, now)
	if err != nil {
		return fmt.Errorf("store: record image: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: record image: %w", err)
	} else if n == 0 {
		return nil // recorded and metered by an earlier attempt
	}
	if _, err := tx.ExecContext(ctx, `UPDATE prompts SET images_done =
		(SELECT count(*) FROM images WHERE job_id = ? AND prompt_idx = ?) WHERE job_id = ? AND idx = ?`,
		id, prompt, id, prompt); err != nil {
		return fmt.Errorf("store: record image: %w", err)
	}
	if err := addUsage(ctx, tx, id, u, now); err != nil {
		return fmt.Errorf("store: record image: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: record image: %w", err)
	}
	return nil
}

// FinishParams says how a running job ends.
type FinishParams struct {
	JobID  int64
	Status diffute.JobStatus // StatusSucceeded or StatusFailed
	Error  string            // for StatusFailed
}

// FinishJob ends running job p.JobID in one transaction: the terminal status, and
// when the job has a webhook, the delivery row with its payload and the River job
// that sends it. ECONFLICT when the job is not running (cancelled meanwhile).
func (s *Store) FinishJob(ctx context.Context, p FinishParams) (*diffute.Job, error) {
	if !p.Status.Terminal() || p.Status == diffute.StatusCanceled {
		return nil, diffute.Errorf(diffute.EINTERNAL, "FinishJob: status must be succeeded or failed")
	}
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: finish job: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE jobs SET status = ?, error = ?, finished_at = ? WHERE id = ? AND status = 'running'`,
		string(p.Status), p.Error, time.Now().UTC(), p.JobID)
	if err != nil {
		return nil, fmt.Errorf("store: finish job: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("store: finish job: %w", err)
	} else if n == 0 {
		return nil, diffute.Errorf(diffute.ECONFLICT, "job %d is not running", p.JobID)
	}
	job, err := s.openSecret(loadJob(ctx, tx, p.JobID, nil))
	if err != nil {
		return nil, err
	}
	if err := s.db.addEventDelivery(ctx, tx, job, diffute.EventCompleted, ""); err != nil {
		return nil, fmt.Errorf("store: finish job: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: finish job: commit: %w", err)
	}
	return job, nil
}

// newMessageID returns a webhook message ID in the Standard Webhooks style
// ("msg_" and 26 random base32 characters); it is sent unchanged on every attempt.
func newMessageID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "msg_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// Delivery is one webhook message and its state.
type Delivery struct {
	ID        int64
	JobID     int64
	Org       string
	Project   string
	MessageID string
	Event     string
	URL       string
	Secret    string // the job's secret; never logged
	Payload   []byte
	Status    diffute.DeliveryState
	Attempts  int
}

// Delivery returns delivery id with its job's secret; ENOTFOUND when absent.
func (s *Store) Delivery(ctx context.Context, id int64) (*Delivery, error) {
	var (
		d       Delivery
		payload string
	)
	err := s.db.delivery.get.QueryRowContext(ctx, id).
		Scan(&d.ID, &d.JobID, &d.Org, &d.Project, &d.MessageID, &d.Event, &d.URL, &d.Secret, &payload, &d.Status, &d.Attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, diffute.Errorf(diffute.ENOTFOUND, "delivery %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: delivery: %w", err)
	}
	d.Payload = []byte(payload)
	if s.secrets == nil {
		return nil, errNoSecrets
	}
	if d.Secret, err = s.secrets.Open(d.Secret, secretContext(d.JobID)); err != nil {
		return nil, fmt.Errorf("store: delivery %d: webhook secret: %w", id, err)
	}
	return &d, nil
}

// AttemptRecord is the outcome of one delivery attempt and the delivery's state
// after it.
type AttemptRecord struct {
	DeliveryID int64
	Attempt    int // 1-based; River's attempt number
	At         time.Time
	StatusCode int
	Latency    time.Duration
	Error      string
	Excerpt    string
	Status     diffute.DeliveryState // pending (will retry), delivered or failed
}

// RecordDeliveryAttempt stores an attempt and the delivery's new state
// atomically. Recording the same attempt number again replaces it (a worker that
// crashed after sending may repeat an attempt).
func (s *Store) RecordDeliveryAttempt(ctx context.Context, a AttemptRecord) error {
	switch a.Status {
	case diffute.DeliveryPending, diffute.DeliveryDelivered, diffute.DeliveryFailed:
	default:
		return diffute.Errorf(diffute.EINTERNAL, "RecordDeliveryAttempt: bad status %q", a.Status)
	}
	// One statement: the triggers of migration 0004 update the delivery in the
	// same implicit transaction. An unknown delivery fails the foreign key.
	_, err := s.db.delivery.insertAttempt.ExecContext(ctx, a.DeliveryID, a.Attempt, a.At.UTC(),
		a.StatusCode, a.Latency.Milliseconds(), a.Error, a.Excerpt, string(a.Status))
	if err != nil && isForeignKeyViolation(err) {
		return diffute.Errorf(diffute.ENOTFOUND, "delivery %d not found", a.DeliveryID)
	}
	if err != nil {
		return fmt.Errorf("store: record delivery attempt: %w", err)
	}
	return nil
}

// Deliveries lists the delivery attempts of job jobID, oldest first.
func (s *Store) Deliveries(ctx context.Context, org, project string, jobID int64) ([]diffute.DeliveryAttempt, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT d.id, d.webhook_id, d.event, a.attempt, a.at,
		a.status_code, a.latency_ms, a.error, a.excerpt
		FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id JOIN jobs j ON j.id = d.job_id
		WHERE d.job_id = ? AND j.org = ? AND j.project = ? ORDER BY a.at, d.id, a.attempt`, jobID, org, project)
	if err != nil {
		return nil, fmt.Errorf("store: deliveries: %w", err)
	}
	var out []diffute.DeliveryAttempt
	for rows.Next() {
		var (
			a  diffute.DeliveryAttempt
			ms int64
		)
		if err := rows.Scan(&a.DeliveryID, &a.MessageID, &a.Event, &a.Attempt, &a.At,
			&a.StatusCode, &ms, &a.Error, &a.Excerpt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: deliveries: %w", err)
		}
		a.Latency = time.Duration(ms) * time.Millisecond
		out = append(out, a)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("store: deliveries: %w", err)
	}
	return out, nil
}
