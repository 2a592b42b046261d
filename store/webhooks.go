package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/webhook"
)

var _ diffute.WebhookStore = (*Store)(nil)

// defaultDeliveryMaxAttempts is the River MaxAttempts of a delivery when
// Options.DeliveryMaxAttempts is 0: the length of the default retry schedule.
const defaultDeliveryMaxAttempts = 8

// addEventDelivery writes the message of event about job (loaded in tx) when the
// job asked for it. subject is the prompt name of a prompt.completed message.
func (db *DB) addEventDelivery(ctx context.Context, tx *tx, job *diffute.Job, event, subject string) error {
	if !job.WantsEvent(event) {
		return nil
	}
	m, err := db.opts.Manifests.For(ctx, job, event, subject)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return db.addDelivery(ctx, tx, job, event, subject, m)
}

// addDelivery writes a message and the River job that sends it, unless the
// message of that event and subject exists already (a retried worker).
func (db *DB) addDelivery(ctx context.Context, tx *tx, job *diffute.Job, event, subject string, m *diffute.Manifest) error {
	payload, err := m.Body()
	if err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	now := time.Now().UTC()
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO deliveries
		(job_id, webhook_id, event, subject, url, payload, status, attempts, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?) ON CONFLICT (job_id, event, subject) DO NOTHING RETURNING id`,
		job.ID, newMessageID(), event, subject, job.Webhook, string(payload), now, now).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	if _, err := db.river.InsertTx(ctx, tx.Tx, diffute.DeliveryArgs{DeliveryID: id},
		&river.InsertOpts{MaxAttempts: db.opts.DeliveryMaxAttempts, Queue: DeliveryQueue}); err != nil {
		return fmt.Errorf("enqueue delivery: %w", err)
	}
	return nil
}

// PromptCompleted writes the prompt.completed message of prompt (0-based) of job
// id when the job asked for it and all the prompt's images are recorded. Calling
// it again is a no-op, so a worker may call it whenever it finds a prompt done.
func (s *Store) PromptCompleted(ctx context.Context, id int64, prompt int) error {
	// Most jobs do not ask for this event: look at the two columns first, on
	// the read pool, before loading the job in a write transaction.
	var hook, events string
	err := s.db.read.QueryRowContext(ctx, `SELECT webhook, webhook_events FROM jobs WHERE id = ?`, id).Scan(&hook, &events)
	if errors.Is(err, sql.ErrNoRows) {
		return diffute.Errorf(diffute.ENOTFOUND, "job %d not found", id)
	}
	if err != nil {
		return fmt.Errorf("store: prompt completed: %w", err)
	}
	if !(&diffute.Job{Webhook: hook, WebhookEvents: diffute.SplitEvents(events)}).WantsEvent(diffute.EventPromptCompleted) {
		return nil
	}
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: prompt completed: %w", err)
	}
	defer tx.Rollback()
	job, err := loadJob(ctx, tx, id, nil)
	if err != nil {
		return err
	}
	// A job cancelled meanwhile has sent its terminal message; nothing may
	// follow it.
	if job.Status != diffute.StatusRunning || prompt < 0 || prompt >= len(job.Prompts) {
		return nil
	}
	p := job.Prompts[prompt]
	if len(p.Images) < p.NumImages {
		return nil
	}
	if err := s.db.addEventDelivery(ctx, tx, job, diffute.EventPromptCompleted, p.Name); err != nil {
		return fmt.Errorf("store: prompt completed: %w", err)
	}
	return tx.Commit()
}

// WebhookSecrets returns the signing secrets of org/project that still sign,
// current first, creating the first secret when there is none.
func (s *Store) WebhookSecrets(ctx context.Context, org, project string) ([]diffute.WebhookSecret, error) {
	secrets, err := s.db.webhookSecrets(ctx, s.db.read, org, project)
	if err != nil || (len(secrets) > 0 && secrets[0].ExpiresAt == nil) {
		return secrets, err
	}
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: webhook secret: %w", err)
	}
	defer tx.Rollback()
	sealed, err := s.db.sealSigningSecret(org, project, webhook.NewSigningSecret())
	if err != nil {
		return nil, err
	}
	// The partial unique index keeps one current secret when two callers race.
	if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_secrets (org, project, secret, created_at)
		VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, org, project, sealed, time.Now().UTC()); err != nil {
		return nil, fmt.Errorf("store: webhook secret: %w", err)
	}
	if secrets, err = s.db.webhookSecrets(ctx, tx, org, project); err != nil {
		return nil, err
	}
	return secrets, tx.Commit()
}

// RotateWebhookSecret makes a new current secret for org/project; the previous
// one signs too until overlap has passed, and an older one still within the
// overlap of an earlier rotation keeps signing until its own end. An overlap of
// 0 stops every earlier secret at once.
func (s *Store) RotateWebhookSecret(ctx context.Context, org, project string, overlap time.Duration) ([]diffute.WebhookSecret, error) {
	now := time.Now().UTC()
	sealed, err := s.db.sealSigningSecret(org, project, webhook.NewSigningSecret())
	if err != nil {
		return nil, err
	}
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: rotate webhook secret: %w", err)
	}
	defer tx.Rollback()
	type stmt struct {
		sql  string
		args []any
	}
	var stmts []stmt
	if overlap <= 0 {
		// No overlap is an emergency rotation: every earlier secret stops now.
		stmts = append(stmts, stmt{`UPDATE webhook_secrets SET expires_at = ? WHERE org = ? AND project = ? AND expires_at > ?`, []any{now, org, project, now}})
	}
	// A secret still in its overlap from an earlier rotation keeps it: each
	// retired secret signs for the overlap it was promised.
	stmts = append(stmts,
		stmt{`UPDATE webhook_secrets SET expires_at = ? WHERE org = ? AND project = ? AND expires_at IS NULL`, []any{now.Add(max(overlap, 0)), org, project}},
		stmt{`INSERT INTO webhook_secrets (org, project, secret, created_at) VALUES (?, ?, ?, ?)`, []any{org, project, sealed, now}})
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			return nil, fmt.Errorf("store: rotate webhook secret: %w", err)
		}
	}
	secrets, err := s.db.webhookSecrets(ctx, tx, org, project)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: rotate webhook secret: %w", err)
	}
	s.db.secretsGen.Add(1)
	return secrets, nil
}

// SecretsGeneration changes whenever a secret is rotated through this DB, so a
// cache of secrets in this process can tell it is stale at once. (A rotation
// by another process, such as the CLI, is not seen; caches bound their age too.)
func (s *Store) SecretsGeneration() uint64 { return s.db.secretsGen.Load() }

func (db *DB) webhookSecrets(ctx context.Context, q querier, org, project string) ([]diffute.WebhookSecret, error) {
	rows, err := q.QueryContext(ctx, `SELECT secret, created_at, expires_at FROM webhook_secrets
		WHERE org = ? AND project = ? AND (expires_at IS NULL OR expires_at > ?)
		ORDER BY expires_at IS NOT NULL, created_at DESC, id DESC`, org, project, time.Now().UTC())
	if err != nil {
		return nil, fmt.Errorf("store: webhook secrets: %w", err)
	}
	var out []diffute.WebhookSecret
	for rows.Next() {
		var (
			w   diffute.WebhookSecret
			exp sql.NullTime
		)
		if err := rows.Scan(&w.Secret, &w.CreatedAt, &exp); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: webhook secrets: %w", err)
		}
		if exp.Valid {
			t := exp.Time.UTC()
			w.ExpiresAt = &t
		}
		if w.Secret, err = db.openSigningSecret(org, project, w.Secret); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, w)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("store: webhook secrets: %w", err)
	}
	return out, nil
}

// WebhookMessages lists the messages of job jobID of org/project in the order they were written.
func (s *Store) WebhookMessages(ctx context.Context, org, project string, jobID int64) ([]diffute.WebhookMessage, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT d.id, d.webhook_id, d.event, d.subject, d.status, d.attempts, d.created_at, d.updated_at
		FROM deliveries d JOIN jobs j ON j.id = d.job_id WHERE d.job_id = ? AND j.org = ? AND j.project = ? ORDER BY d.id`, jobID, org, project)
	if err != nil {
		return nil, fmt.Errorf("store: webhook messages: %w", err)
	}
	var out []diffute.WebhookMessage
	for rows.Next() {
		var m diffute.WebhookMessage
		if err := rows.Scan(&m.DeliveryID, &m.MessageID, &m.Event, &m.Subject, &m.State, &m.Attempts, &m.CreatedAt, &m.UpdatedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: webhook messages: %w", err)
		}
		out = append(out, m)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("store: webhook messages: %w", err)
	}
	for i := range out {
		if out[i].State != diffute.DeliveryPending {
			continue
		}
		if out[i].NextAttemptAt, err = s.nextAttempt(ctx, out[i].DeliveryID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// nextAttempt returns when the queue next runs delivery id: the scheduled time
// of its River job while that waits (a retry's backoff included); nil while an
// attempt runs or none is queued.
func (s *Store) nextAttempt(ctx context.Context, id int64) (*time.Time, error) {
	var at time.Time
	err := s.db.read.QueryRowContext(ctx, `SELECT scheduled_at FROM river_job
		WHERE kind = ? AND state IN ('available', 'scheduled', 'retryable') AND `+s.db.dialect.jsonInt("args", "delivery_id")+` = ?
		ORDER BY scheduled_at LIMIT 1`, diffute.DeliveryArgs{}.Kind(), id).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: next delivery attempt: %w", err)
	}
	at = at.UTC()
	return &at, nil
}

// Redeliver queues the terminal message of job jobID of org/project again, with
// the same webhook-id; attempt numbers continue from the last. The payload is
// shaped again by Options.Manifests, as the worker shaped it, so that its URLs
// are fresh: a message redelivered days later would otherwise carry URLs that
// have expired.
func (s *Store) Redeliver(ctx context.Context, org, project string, jobID int64) (*diffute.WebhookMessage, error) {
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: redeliver: %w", err)
	}
	defer tx.Rollback()
	job, err := loadJob(ctx, tx, jobID, &scope{org, project})
	if err != nil {
		return nil, err
	}
	var m diffute.WebhookMessage
	err = tx.QueryRowContext(ctx, `SELECT id, webhook_id, event, subject, status, attempts, created_at, updated_at
		FROM deliveries WHERE job_id = ? AND event = ?`, jobID, diffute.EventCompleted).
		Scan(&m.DeliveryID, &m.MessageID, &m.Event, &m.Subject, &m.State, &m.Attempts, &m.CreatedAt, &m.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, diffute.Errorf(diffute.ECONFLICT, "job %d has no terminal webhook message: it has not finished, or it has no webhook", jobID)
	}
	if err != nil {
		return nil, fmt.Errorf("store: redeliver: %w", err)
	}
	if m.State == diffute.DeliveryPending {
		return nil, diffute.Errorf(diffute.ECONFLICT, "the terminal message of job %d is still being delivered", jobID)
	}
	manifest, err := s.db.opts.Manifests.For(ctx, job, diffute.EventCompleted, "")
	if err != nil {
		return nil, fmt.Errorf("store: redeliver: manifest: %w", err)
	}
	payload, err := manifest.Body()
	if err != nil {
		return nil, fmt.Errorf("store: redeliver: %w", err)
	}
	m.State, m.UpdatedAt = diffute.DeliveryPending, time.Now().UTC()
	if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET status = 'pending', payload = ?, updated_at = ? WHERE id = ?`,
		string(payload), m.UpdatedAt, m.DeliveryID); err != nil {
		return nil, fmt.Errorf("store: redeliver: %w", err)
	}
	if _, err := s.db.river.InsertTx(ctx, tx.Tx, diffute.DeliveryArgs{DeliveryID: m.DeliveryID, AttemptBase: m.Attempts},
		&river.InsertOpts{MaxAttempts: s.db.opts.DeliveryMaxAttempts, Queue: DeliveryQueue}); err != nil {
		return nil, fmt.Errorf("store: redeliver: enqueue: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: redeliver: %w", err)
	}
	return &m, nil
}

// deliveryStmts are the statements of every webhook attempt, prepared once:
// parsing SQL was the largest cost of an attempt in profiles.
type deliveryStmts struct {
	get           *sql.Stmt // read pool
	insertAttempt *sql.Stmt // write pool
}

func (d *deliveryStmts) prepare(ctx context.Context, db *DB) error {
	var err error
	if d.get, err = db.read.PrepareContext(ctx, `SELECT d.id, d.job_id, j.org, j.project, d.webhook_id, d.event, d.url, j.secret,
		d.payload, d.status, d.attempts FROM deliveries d JOIN jobs j ON j.id = d.job_id WHERE d.id = ?`); err != nil {
		return fmt.Errorf("store: prepare: %w", err)
	}
	if d.insertAttempt, err = db.write.PrepareContext(ctx, `INSERT INTO delivery_attempts
		(delivery_id, attempt, at, status_code, latency_ms, error, excerpt, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (delivery_id, attempt) DO UPDATE SET at = excluded.at, status_code = excluded.status_code,
		latency_ms = excluded.latency_ms, error = excluded.error, excerpt = excluded.excerpt, outcome = excluded.outcome`); err != nil {
		return fmt.Errorf("store: prepare: %w", err)
	}
	return nil
}

func (d *deliveryStmts) close() error {
	var errs []error
	for _, s := range []*sql.Stmt{d.get, d.insertAttempt} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}
